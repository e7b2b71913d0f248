"""Arrow schemas of the export formats and the Hugging Face ``features`` metadata that makes
``datasets`` decode the image columns as images."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from cfpair.records.schema import Facts
from cfpair.records.shards import arrow_struct

PART = pa.struct([("type", pa.string()), ("text", pa.string())])
#: a chat message whose content is a list of parts (TRL's vision form)
MESSAGE_PARTS = pa.struct([("role", pa.string()), ("content", pa.list_(PART))])
#: a chat message with plain string content (verl)
MESSAGE_TEXT = pa.struct([("role", pa.string()), ("content", pa.string())])
#: the Hugging Face ``Image`` storage layout
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
POSES = pa.list_(pa.list_(pa.float64()))
FACTS = arrow_struct(Facts)

_VALUES = {pa.string(): "string", pa.float64(): "float64", pa.int64(): "int64",
           pa.bool_(): "bool", pa.binary(): "binary", pa.int32(): "int32"}


def hf_feature(t: pa.DataType, image: bool = False) -> Any:
    """The ``datasets`` feature JSON of an Arrow type (``image`` marks IMAGE structs)."""
    if image and t == IMAGE:
        return {"_type": "Image"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"_type": "List", "feature": hf_feature(t.value_type, image)}
    if pa.types.is_struct(t):
        return {f.name: hf_feature(f.type, image) for f in t}
    if t in _VALUES:
        return {"_type": "Value", "dtype": _VALUES[t]}
    raise TypeError(f"no datasets feature for Arrow type {t}")


def with_hf_features(schema: pa.Schema, image_columns: tuple[str, ...] = ("images",)
                     ) -> pa.Schema:
    """``schema`` with the ``huggingface`` metadata ``datasets`` reads (images as Image)."""
    feats = {f.name: hf_feature(f.type, f.name in image_columns) for f in schema}
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": feats}}).encode()
    return schema.with_metadata(meta)
