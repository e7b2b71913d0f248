"""cfpair: counterfactual safety pairs for training safer driving VLA models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: the Python API, imported on first use so that ``import cfpair`` stays cheap
_API = {"load": "cfpair.api", "load_pandas": "cfpair.api", "load_hf": "cfpair.api",
        "score": "cfpair.api", "Records": "cfpair.api", "GenerateConfig": "cfpair.config",
        "generate": "cfpair.pipeline"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cfpair' has no attribute {name!r}")
