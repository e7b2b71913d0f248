"""``cfpair export``: every format loads with ``datasets``; TRL's data helpers accept the TRL
formats; LLaMA-Factory's image tokens and registry are right; verl rows have their five fields;
the trajectory text form round-trips; the examples run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cfpair.export.formats import FORMATS, export
from cfpair.export.text import (
    IMAGE_TOKEN,
    XY_DECIMALS,
    YAW_DECIMALS,
    TrajectoryParseError,
    answer,
    format_trajectory,
    parse_trajectory,
    scene_prompt,
)
from cfpair.shards import load_records

datasets = pytest.importorskip("datasets")
ROOT = Path(__file__).resolve().parents[1]


# ---- the trajectory text form -------------------------------------------------------------

finite = st.floats(-500, 500, allow_nan=False, allow_infinity=False)


def _nearest(v: np.ndarray, decimals: int) -> np.ndarray:
    """The decimal nearest to each double (np.round scales first and can land on the other
    side of a tie: 0.005 is stored as 0.00500000000000000010, nearest 0.01, np.round 0.0)."""
    return np.vectorize(lambda x: float(f"{x:.{decimals}f}"))(v)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite, st.floats(-3.2, 3.2)), min_size=8, max_size=8))
@example([(0.0, 0.0, 0.0)] * 7 + [(0.0, 0.005, 0.0)])
def test_trajectory_text_round_trips_to_the_stated_rounding(poses) -> None:
    p = np.asarray(poses)
    back = parse_trajectory(format_trajectory(p))
    assert np.array_equal(back[:, :2], _nearest(p[:, :2], XY_DECIMALS))
    assert np.array_equal(back[:, 2], _nearest(p[:, 2], YAW_DECIMALS))
    assert format_trajectory(back) == format_trajectory(p)   # a fixed point


def test_trajectory_text_by_hand() -> None:
    p = [[1.004, -0.006, 0.0004]] + [[2.0, 0.0, -0.0001]] * 7
    text = format_trajectory(p)
    assert text.startswith("<trajectory>[(1.00, -0.01, 0.000), (2.00, 0.00, 0.000)")
    assert "-0.00," not in text   # no negative zero
    # the last block wins, whatever reasoning comes before it
    assert parse_trajectory("think <trajectory>[(9, 9, 9)]</trajectory> then " + text)[0, 0] \
        == 1.0


@pytest.mark.parametrize(("text", "message"), [
    ("no block here", "found none"),
    ("<trajectory>(1, 2, 3)</trajectory>", r"expected \[...\]"),
    ("<trajectory>[(1, 2, 3)]</trajectory>", "expected 8 .* got 1"),
    ("<trajectory>[(1, 2, 3), oops]</trajectory>", "unexpected text"),
    ("<trajectory>[(1, 2)]</trajectory>", "unexpected text"),
])
def test_bad_trajectory_text_says_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(TrajectoryParseError, match=message):
        parse_trajectory(text)


def test_the_prompt_leaks_neither_future_nor_label(small_run: Path) -> None:
    for rec in load_records(small_run, limit=6):
        prompt = scene_prompt(rec)
        assert "critical" not in prompt
        assert re.search(r"<trajectory>\[\(\s*-?\d", prompt) is None   # only the template
        assert format_trajectory(rec.positive.poses)[13:30] not in prompt
        assert rec.label is not None and rec.label.failure_description not in prompt
        assert parse_trajectory(answer(rec)).shape == (8, 3)


# ---- every format -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exports(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in FORMATS:
        res = export(small_run, base / fmt, fmt)
        assert sum(res.rows.values()) == len(load_records(small_run))
        assert res.images == {"bev": sum(res.rows.values())}
        out[fmt] = base / fmt
    return out


#: a private datasets cache: the shared one is keyed by file names, so another run's exports of
#: the same names would be read back instead of these
_HF_CACHE = tempfile.mkdtemp(prefix="cfpair-test-hf-")


def _load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    return datasets.load_dataset(*args, cache_dir=_HF_CACHE, **kwargs)


def _load_trl(folder: Path, split: str = "train"):
    return _load(str(folder), split=split)   # via the export's card


@pytest.mark.parametrize("fmt", ["trl-sft", "trl-dpo", "trl-grpo"])
def test_trl_exports_load_with_images(exports: dict[str, Path], fmt: str) -> None:
    dd = _load(str(exports[fmt]))
    assert set(dd) == set(json.loads((exports[fmt] / "export.json").read_text())["rows"])
    ds = dd["train"]
    img = ds[0]["images"][0]
    assert img.size == (448, 448) and img.mode == "RGB"   # decoded as a PIL image
    expected = {"trl-sft": {"messages"}, "trl-dpo": {"prompt", "chosen", "rejected"},
                "trl-grpo": {"prompt", "scene", "negative_facts", "positive_poses"}}[fmt]
    assert expected <= set(ds.column_names)


def test_trl_sft_is_accepted_by_trl_helpers(exports: dict[str, Path], tokenizer) -> None:
    from trl.data_utils import apply_chat_template, is_conversational, prepare_multimodal_messages

    ds = _load_trl(exports["trl-sft"])
    row = ds[0]
    assert is_conversational(row)
    msgs = prepare_multimodal_messages(row["messages"], row["images"])
    filled = [p for m in msgs for p in m["content"] if p["type"] == "image"]
    assert len(filled) == 1 and filled[0]["image"] is row["images"][0]
    text = apply_chat_template({"messages": row["messages"]}, tokenizer)["text"]
    assert text.count("<|image|>") == 1 and "<|assistant|>Risk:" in text
    assert text.rstrip().endswith("</trajectory><|end|>")


def test_trl_dpo_is_accepted_by_trl_helpers(exports: dict[str, Path], tokenizer) -> None:
    from trl.data_utils import (
        apply_chat_template,
        is_conversational,
        maybe_extract_prompt,
        unpair_preference_dataset,
    )

    ds = _load_trl(exports["trl-dpo"])
    row = ds[0]
    assert is_conversational(row)
    assert maybe_extract_prompt(row)["prompt"] == row["prompt"]   # explicit prompt kept
    out = apply_chat_template(row, tokenizer)
    assert out["prompt"].endswith("<|assistant|>")
    assert parse_trajectory(out["chosen"]).shape == (8, 3)
    assert out["chosen"] != out["rejected"]
    unpaired = unpair_preference_dataset(ds.select(range(4)))
    assert len(unpaired) == 8 and sorted(set(unpaired["label"])) == [False, True]


def test_dpo_chosen_is_the_positive_and_rejected_the_negative(small_run: Path,
                                                               exports: dict[str, Path]) -> None:
    recs = {r.pair_id: r for r in load_records(small_run, "train")}
    for row in _load_trl(exports["trl-dpo"]):
        rec = recs[row["pair_id"]]
        chosen = parse_trajectory(row["chosen"][0]["content"][0]["text"])
        rejected = parse_trajectory(row["rejected"][0]["content"][0]["text"])
        assert np.allclose(chosen[:, :2], np.asarray(rec.positive.poses)[:, :2], atol=0.006)
        assert np.allclose(rejected[:, :2], np.asarray(rec.negative.poses)[:, :2], atol=0.006)


def test_answers_contain_what_the_prompt_asks_for(small_run: Path,
                                                  exports: dict[str, Path]) -> None:
    """The prompt asks for the risk assessment, then the trajectory: chosen carries the label's
    assessment and the positive; rejected the negative's own (wrong) assessment and the
    negative, in the same form."""
    recs = {r.pair_id: r for r in load_records(small_run, "train")}
    # read the file itself (the datasets cache can serve a stale copy of a reused tmp path)
    shard = exports["trl-dpo"] / "data" / "train-00000-of-00001.parquet"
    for row in pq.read_table(shard).to_pylist():
        rec = recs[row["pair_id"]]
        prompt_text = row["prompt"][1]["content"][-1]["text"]
        assert "risk assessment, then the trajectory" in prompt_text
        chosen = row["chosen"][0]["content"][0]["text"]
        rejected = row["rejected"][0]["content"][0]["text"]
        assert rec.label is not None
        assert chosen.startswith(f"Risk: {rec.label.risk_level} ({rec.label.hazard_type})")
        assert rec.label.failure_description in chosen
        assert chosen.index("Risk:") < chosen.index("<trajectory>")
        assert rejected.startswith("Risk: none (none)") and "<trajectory>" in rejected
        neg = rec.positive_vs_negative.negative_action if rec.positive_vs_negative else None
        assert neg is not None and f"Action: {neg.longitudinal}, {neg.lateral}." in rejected
        # same structure: the preference is about the content, not the form
        def heads(text: str) -> list[str]:
            return [ln.split(":")[0] if ":" in ln else ln[:12] for ln in text.splitlines()]
        assert heads(chosen) == heads(rejected) == [
            "Risk", "What would go wrong", "Correction", "Action", "<trajectory>"]
    lf = json.loads((exports["llamafactory"] / "cfpair_dpo_train.json").read_text())
    assert all(r["chosen"]["value"].startswith("Risk:") and r["rejected"]["value"].startswith(
        "Risk: none") for r in lf)


def test_trl_grpo_rows_feed_the_example_reward(exports: dict[str, Path], tokenizer) -> None:
    from trl.data_utils import apply_chat_template, is_conversational

    sys.path.insert(0, str(ROOT / "examples"))
    from trl_grpo_reward import cfpair_reward

    ds = _load_trl(exports["trl-grpo"]).select(range(6))
    assert is_conversational(ds[0])
    assert apply_chat_template({"prompt": ds[0]["prompt"]}, tokenizer)["prompt"].endswith(
        "<|assistant|>")
    kwargs = {k: ds[k] for k in ds.column_names if k != "prompt"}   # what TRL passes
    pos = cfpair_reward([[{"role": "assistant", "content": format_trajectory(p)}]
                         for p in ds["positive_poses"]], prompts=ds["prompt"], **kwargs)
    neg = cfpair_reward([format_trajectory(p) for p in ds["negative_poses"]],
                        prompts=ds["prompt"], **kwargs)
    junk = cfpair_reward(["I would drive carefully."] * len(ds), prompts=ds["prompt"],
                         **kwargs)
    assert all(0.0 <= r <= 1.0 for r in pos + neg) and junk == [-1.0] * len(ds)
    assert np.mean(pos) > np.mean(neg) + 0.3
    # an at-fault collision scores 0 PDMS and 0 safety, whatever the rounding
    for r, f in zip(neg, ds["negative_facts"], strict=True):
        if f["collides"] and f["at_fault"]:
            assert r < 0.2


def test_llamafactory_export(exports: dict[str, Path]) -> None:
    folder = exports["llamafactory"]
    info = json.loads((folder / "dataset_info.json").read_text())
    assert {"cfpair_sft_train", "cfpair_dpo_train"} <= set(info)
    for name, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        assert entry.get("ranking", False) == name.startswith("cfpair_dpo")
        rows = json.loads((folder / entry["file_name"]).read_text())
        assert rows
        for row in rows:
            texts = [m["value"] for m in row["conversations"]]
            texts += [row[k]["value"] for k in ("chosen", "rejected") if k in row]
            # one <image> per image, at the start of the first human turn, none elsewhere
            assert sum(t.count(IMAGE_TOKEN) for t in texts + [row["system"]]) == \
                len(row["images"]) == 1
            assert texts[0].startswith(IMAGE_TOKEN)
            assert [m["from"] for m in row["conversations"]] == (
                ["human"] if "chosen" in row else ["human", "gpt"])
            assert all((folder / p).is_file() for p in row["images"])
    ds = _load(str(folder), "dpo", split="train")
    assert {"conversations", "chosen", "rejected", "images", "system"} <= set(ds.column_names)


def test_a_literal_image_token_in_a_label_is_escaped(small_run: Path, tmp_path: Path) -> None:
    rec = load_records(small_run, limit=1)[0]
    lab = rec.label.model_copy(update={"failure_description": "a sign saying <image> fell"})
    text = answer(rec.model_copy(update={"label": lab}))
    assert IMAGE_TOKEN not in text and "[image]" in text


def test_verl_export(exports: dict[str, Path]) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    from verl_reward import compute_score

    ds = _load("parquet", data_files=str(exports["verl"] / "train.parquet"),
                               split="train")
    assert set(_load(str(exports["verl"]))) == {"train", "val"}
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info", "images"} <= \
        set(ds.column_names)
    row = ds[0]
    assert row["data_source"] == "cfpair" and row["reward_model"]["style"] == "rule"
    assert row["prompt"][-1]["role"] == "user"
    assert row["prompt"][-1]["content"].count(IMAGE_TOKEN) == len(row["images"]) == 1
    assert row["extra_info"]["index"] == 0 and row["extra_info"]["split"] == "train"
    truth = json.loads(row["reward_model"]["ground_truth"])
    good = compute_score("cfpair", row["extra_info"]["answer"], row["reward_model"]
                         ["ground_truth"], row["extra_info"])
    bad = compute_score("cfpair", format_trajectory(truth["negative_poses"]),
                        row["reward_model"]["ground_truth"])
    assert good > bad and compute_score("cfpair", "no plan", row["reward_model"]
                                        ["ground_truth"]) == -1.0


def test_camera_images_are_used_where_the_scene_has_them(tmp_path: Path) -> None:
    """A NAVSIM sample with a real front-camera file exports it; the others get the render."""
    from PIL import Image

    from cfpair.config import GenerateConfig
    from cfpair.pipeline import generate

    root = tmp_path / "navsim"
    shutil.copytree(ROOT / "examples" / "data" / "navsim", root)
    out = tmp_path / "out"
    generate(GenerateConfig(source="navsim", root=str(root), out=str(out), workers=1,
                            n_candidates=64))
    recs = load_records(out)
    cam = recs[0].context.cameras[0]
    assert cam.path.startswith("sensor_blobs/")
    (root / cam.path).parent.mkdir(parents=True)
    Image.new("RGB", (64, 32), (200, 10, 10)).save(root / cam.path, format="jpeg")
    res = export(out, tmp_path / "sft", "trl-sft")
    assert res.images == {"camera": 1, "bev": len(recs) - 1}
    ds = _load_trl(tmp_path / "sft", "mini")
    sizes = sorted(r["images"][0].size for r in ds)
    assert sizes[0] == (64, 32)
    bev = export(out, tmp_path / "bev", "trl-sft", images="bev")
    assert bev.images == {"bev": len(recs)}


def test_cli_export_and_the_load_example(small_run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dpo"
    p = subprocess.run([sys.executable, "-m", "cfpair", "export", str(small_run), "--format",
                        "trl-dpo", "--out", str(dest), "--split", "train", "--limit", "3"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "trl-dpo: 3 rows (train: 3)" in p.stdout and "bev: 3" in p.stdout
    meta = json.loads((dest / "export.json").read_text())
    assert meta["trajectory_text"]["xy_decimals"] == XY_DECIMALS and meta["rows"] == {"train": 3}
    q = subprocess.run([sys.executable, str(ROOT / "examples" / "load_export.py"), "trl-dpo",
                        str(dest)], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr
    assert re.search(r"num_rows: 3", q.stdout) and "chosen:" in q.stdout
    bad = subprocess.run([sys.executable, "-m", "cfpair", "export", str(small_run), "-f",
                          "csv", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "unknown export format 'csv'" in bad.stderr
