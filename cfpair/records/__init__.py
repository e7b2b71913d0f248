"""The records layer: the on-disk row and label schema, the typed manifest, shards."""
