"""Test helpers and tests of the records layer (row schema, label schema, manifest, shards)."""
