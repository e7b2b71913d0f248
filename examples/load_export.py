"""Load a cfpair export with Hugging Face ``datasets`` and show one row.

    python examples/load_export.py trl-sft sft/        # or trl-dpo, trl-grpo, verl, llamafactory
"""

from __future__ import annotations

import sys

from datasets import load_dataset


def load(fmt: str, folder: str, split: str = "train"):  # noqa: ANN201 - a datasets.Dataset
    """The export's ``split`` as a Dataset (images decode to PIL images). Every export has a
    dataset card whose ``configs`` name the files of each split; LLaMA-Factory exports have
    two configs, ``sft`` and ``dpo``."""
    if fmt not in ("trl-sft", "trl-dpo", "trl-grpo", "verl", "llamafactory"):
        raise SystemExit(f"unknown format {fmt!r}")
    return load_dataset(folder, "sft" if fmt == "llamafactory" else None, split=split)


if __name__ == "__main__":
    fmt, folder = sys.argv[1], sys.argv[2]
    ds = load(fmt, folder)
    print(ds)
    row = ds[0]
    for key, value in row.items():
        text = repr(value)
        print(f"{key}: {text[:300]}{' ...' if len(text) > 300 else ''}")
