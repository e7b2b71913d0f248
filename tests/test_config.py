"""The typed, nested run config: one set of names, checked values, a hash over content only."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from cfpair.config import (
    PARTS,
    ClientSettings,
    ContentSettings,
    ExecutionSettings,
    GenerateConfig,
    LabelSettings,
    load_toml,
)
from cfpair.errors import ConfigError

#: the hash of the default config before the config became typed parts (records unchanged)
DEFAULT_HASH = "1cf8417d1b732959"


def test_default_hash_is_unchanged_and_covers_content_only():
    cfg = GenerateConfig()
    assert cfg.hash() == DEFAULT_HASH
    assert cfg.splits == ("train", "val", "test")          # declared by the synthetic source
    every_other = GenerateConfig(out="elsewhere", workers=7, executor="dask", overwrite=True,
                                 base_url="http://x/v1", concurrency=3, request_timeout=5.0,
                                 price_input=1.0, llm_cache="none",
                                 model="m", temperature=0.7, prompt_version="v1")
    assert every_other.hash() == DEFAULT_HASH              # execution, client; label unused
    assert GenerateConfig(seed=1).hash() != DEFAULT_HASH
    assert GenerateConfig(n_candidates=64).hash() != DEFAULT_HASH


def test_label_part_is_hashed_only_when_the_llm_writes_labels():
    a = GenerateConfig(labeler="openai", model="m1", llm_cache="none")
    assert a.hash() != GenerateConfig(labeler="openai", model="m2", llm_cache="none").hash()
    assert a.hash() == GenerateConfig(labeler="openai", model="m1", llm_cache="none",
                                      base_url="http://other/v1", concurrency=1).hash()
    assert set(a.hashed()) == ({f.name for f in fields(ContentSettings)}
                               | {f.name for f in fields(LabelSettings)})


def test_names_are_unique_across_parts_and_flat_access_works():
    names = [f.name for cls in PARTS.values() for f in fields(cls)]
    assert len(names) == len(set(names))
    cfg = GenerateConfig(workers=3, seed=5)
    assert isinstance(cfg.execution, ExecutionSettings) and cfg.execution.workers == 3
    assert cfg.workers == 3 and cfg.content.seed == cfg.seed == 5
    assert cfg.updated(seed=6).seed == 6 and cfg.updated(seed=6).workers == 3
    with pytest.raises(AttributeError):
        cfg.nonexistent  # noqa: B018


def test_llm_settings_use_the_config_names():
    cfg = GenerateConfig(labeler="openai", model="m", request_timeout=3.0,
                         label_fallback="skip", llm_cache="none", root=None)
    s = asdict(cfg.llm_settings())
    for part in (cfg.label, cfg.client):
        for key, value in asdict(part).items():
            if key != "llm_cache":
                assert s[key] == value, key
    assert s["llm_cache"] is None and s["request_timeout"] == 3.0


@pytest.mark.parametrize(("settings", "message"), [
    ({"limit": True}, r"limit: expected an integer, got true \(a boolean\)"),
    ({"overwrite": "false"}, r"overwrite: expected true or false, got 'false' \(a string\)"),
    ({"workers": 1.5}, r"workers: expected an integer"),
    ({"workers": 0}, r"workers: must be >= 1"),
    ({"n_candidates": 4}, r"n_candidates: must be >= 8"),
    ({"request_timeout": 0}, r"request_timeout: must be > 0"),
    ({"splits": "train"}, r"splits: expected a list of strings"),
    ({"source_options": ["n_scenes"]}, r"source_options: expected a table"),
    ({"executor": "dsak"}, r"executor: expected one of local, dask.*did you mean 'dask'"),
    ({"labeler": "llm"}, r"labeler: expected one of rules, openai"),
    ({"limt": 3}, r"unknown setting 'limt'; did you mean 'limit'"),
    ({"source": "navsm"}, r"unknown source 'navsm'; did you mean 'navsim'"),
    ({"source": "navsim"}, r"root: --root is required for source 'navsim'"),
    ({"labeler": "openai"}, r"model: --model is required with --labeler openai"),
    ({"scheduler": "tcp://h:1"}, r"scheduler: only used with --executor dask"),
    ({"labeler": "openai", "model": "m", "prompt_version": "v9"}, r"prompt version 'v9'"),
    ({"source_options": {"n_scene": 3}},
     r"source 'synthetic' has no option 'n_scene'; did you mean 'n_scenes'"),
    ({"source_options": {"n_scenes": "3"}}, r"source_options\.n_scenes: expected an integer"),
    ({"source_options": {"families": ["merge", 3]}},
     r"source_options\.families: expected a list of strings"),
    ({"source": "navsim", "root": "/r", "source_options": {"num_history": 2.5}},
     r"source_options\.num_history: expected an integer, got 2\.5"),
    ({"source": "carla", "root": "/r", "source_options": {"town": "x"}},
     r"source 'carla' has no option 'town' \(options: none\)"),
])
def test_every_bad_value_is_a_config_error_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        GenerateConfig(**settings)


def test_toml_flat_and_sectioned(tmp_path: Path):
    flat = tmp_path / "flat.toml"
    flat.write_text('seed = 3\nworkers = 1\nsplits = ["train"]\n[source_options]\nn_scenes = 5\n')
    sectioned = tmp_path / "sectioned.toml"
    sectioned.write_text('[content]\nseed = 3\nsplits = ["train"]\n[content.source_options]\n'
                         'n_scenes = 5\n[execution]\nworkers = 1\n')
    a, b = GenerateConfig(**load_toml(flat)), GenerateConfig(**load_toml(sectioned))
    assert a == b and a.source_options == {"n_scenes": 5} and a.splits == ("train",)
    assert isinstance(a.client, ClientSettings)


@pytest.mark.parametrize(("text", "message"), [
    ("overwrite = \"false\"\n", r"bad\.toml: overwrite: expected true or false"),
    ("limit = true\n", r"bad\.toml: limit: expected an integer, got true"),
    ("sead = 1\n", r"bad\.toml: unknown setting 'sead'; did you mean 'seed'"),
    ("[execution]\nseed = 1\n", r"bad\.toml: \[execution\] unknown setting 'seed'"),
    ("execution = 3\n", r"bad\.toml: \[execution\] must be a table"),
    ("seed = [\n", r"bad\.toml: cannot read TOML"),
])
def test_bad_toml_names_the_file_and_the_key(tmp_path: Path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(bad)


def test_sources_declare_their_splits_and_defaults():
    from cfpair.sources.base import SOURCES, source_class

    for name in SOURCES:
        cls = source_class(name)
        assert cls.default_splits and isinstance(cls.needs_root, bool) and callable(cls.splits)
    assert GenerateConfig(source="navsim", root="/nowhere").splits == ("mini",)
    assert GenerateConfig(source="carla", root="/nowhere").splits == ("all",)


def test_cli_config_errors_are_one_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('overwrite = "false"\n')
    for args in (["--config", str(bad)], ["--executor", "dsak"], ["--limit", "0"],
                 ["--source-option", "oops"], ["--source", "navsm"]):
        r = subprocess.run([sys.executable, "-m", "cfpair", "generate", *args,
                            "--out", str(tmp_path / "o")], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == "", (args, r.stderr)
        assert not (tmp_path / "o").exists(), args
    assert r.stderr.strip().count("\n") == 0
