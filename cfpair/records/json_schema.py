"""Write ``schemas/*.json`` from the Pydantic models: ``python -m cfpair.records.json_schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from cfpair.records.label import SafetyLabel
from cfpair.records.schema import PairRecord

SCHEMAS: dict[str, type[BaseModel]] = {"safety_label.json": SafetyLabel,
                                       "pair_record.json": PairRecord}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def render(model: type[BaseModel]) -> str:
    """Canonical JSON Schema text of a model."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema file; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, model in SCHEMAS.items():
        path = folder / name
        path.write_text(render(model))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(p)
