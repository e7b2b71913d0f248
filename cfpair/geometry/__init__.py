"""Pure geometry on plain numpy arrays (any leading dimensions); no dataclasses."""
