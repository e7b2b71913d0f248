"""``cfpair export``: pair shards -> datasets for TRL (SFT, DPO, GRPO), LLaMA-Factory
(sharegpt + ``dataset_info.json``) and verl (RL Parquet).

Every row carries one image (the front camera where the scene has a readable one, else the
bird's-eye observation render), so every export can train a vision-language model. The prompt
is :func:`cfpair.export.text.scene_prompt`; answers use the reversible trajectory text form.

- trl-sft: ``messages`` (system, user [image, text], assistant [analysis + positive]) +
  ``images``;
- trl-dpo: ``prompt`` (system, user) / ``chosen`` / ``rejected`` + ``images``; as the prompt
  asks, each answer is an assessment then a trajectory: chosen = the label's analysis + the
  positive, rejected = the negative's own (wrong) assessment in the same form + the negative;
- trl-grpo: ``prompt`` + ``images`` + what a reward function needs: ``scene`` (the record
  as JSON, label removed, for :func:`cfpair.export.reward.score_completion`), the three
  anchors' poses and the negative / positive facts;
- llamafactory: ``images/``, ``cfpair_{sft,dpo}_<split>.json`` (sharegpt; DPO with
  ``ranking``) and ``dataset_info.json``; one ``<image>`` per image at the start of the
  human turn, and no literal ``<image>`` anywhere else;
- verl: ``<split>.parquet`` with data_source / prompt / ability / reward_model {style: rule,
  ground_truth: JSON} / extra_info and ``images``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cfpair import __version__
from cfpair.errors import ConfigError, ShardError
from cfpair.export import arrow as A
from cfpair.export.images import IMAGE_MODES, SceneImage, scene_image
from cfpair.export.text import (
    IMAGE_TOKEN,
    SYSTEM,
    XY_DECIMALS,
    YAW_DECIMALS,
    answer,
    scene_prompt,
)
from cfpair.lock import FolderLock
from cfpair.outdir import LOCK_NAME, check_apart, remove_listed
from cfpair.progress import track
from cfpair.records.manifest import RunManifest
from cfpair.records.schema import PairRecord
from cfpair.records.shards import (
    atomic_write,
    card_yaml,
    load_records,
    parquet_bytes,
    read_manifest,
)

FORMATS = ("trl-sft", "trl-dpo", "trl-grpo", "llamafactory", "verl")
EXPORT_KIND = "cfpair-export/1"
#: names an export writes (only such names are ever removed as stale)
_OWN_PATTERNS = ("data/*-00000-of-00001.parquet", "*.parquet", "images/*.png", "images/*.jpg",
                 "images/*.jpeg", "cfpair_sft_*.json", "cfpair_dpo_*.json", "dataset_info.json")
_OWN_FILE = re.compile(r"(data/[^/]+\.parquet|[^/]+\.parquet|images/[0-9A-Za-z_-]+\.(png|jpe?g)"
                       r"|cfpair_(sft|dpo)_[^/]+\.json|dataset_info\.json|README\.md|export\.json)")
_PAIR_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
DATA_SOURCE = "cfpair"
ABILITY = "driving_safety"


@dataclass
class ExportResult:
    """What an export wrote: rows per split, images by kind, skipped records by reason."""

    dest: Path
    format: str
    rows: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)


def _parts(text: str | None, image: bool = False) -> list[dict[str, Any]]:
    head = [{"type": "image", "text": None}] if image else []
    return head + ([{"type": "text", "text": text}] if text is not None else [])


def _prompt_parts(rec: PairRecord) -> list[dict[str, Any]]:
    return [{"role": "system", "content": _parts(SYSTEM)},
            {"role": "user", "content": _parts(scene_prompt(rec), image=True)}]


def _image_cell(img: SceneImage) -> list[dict[str, Any]]:
    return [{"bytes": img.data, "path": None}]


def scene_json(rec: PairRecord) -> str:
    """The record without its label, as compact JSON: all a reward needs to rescore."""
    return rec.model_copy(update={"label": None}).model_dump_json()


def _anchors(rec: PairRecord) -> dict[str, Any]:
    return {f"{r}_poses": getattr(rec, r).poses for r in ("expert", "negative", "positive")}


def _facts(rec: PairRecord) -> dict[str, Any]:
    return {"negative_facts": rec.negative.facts.model_dump(mode="json"),
            "positive_facts": rec.positive.facts.model_dump(mode="json")}


def sft_row(rec: PairRecord, img: SceneImage) -> dict[str, Any]:
    """trl-sft: the conversation with the positive answer (with the label's analysis)."""
    msgs = _prompt_parts(rec) + [{"role": "assistant", "content": _parts(answer(rec))}]
    return {"pair_id": rec.pair_id, "messages": msgs, "images": _image_cell(img)}


def dpo_row(rec: PairRecord, img: SceneImage) -> dict[str, Any]:
    """trl-dpo: chosen = the label's assessment + the positive, rejected = the negative's own
    assessment + the negative (``text.answer``)."""
    def turn(role: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": _parts(answer(rec, role))}]
    return {"pair_id": rec.pair_id, "prompt": _prompt_parts(rec), "chosen": turn("positive"),
            "rejected": turn("negative"), "images": _image_cell(img)}


def grpo_row(rec: PairRecord, img: SceneImage) -> dict[str, Any]:
    """trl-grpo: the prompt plus the columns a reward function reads."""
    return {"pair_id": rec.pair_id, "prompt": _prompt_parts(rec), "images": _image_cell(img),
            "scene": scene_json(rec), **_anchors(rec), **_facts(rec),
            "risk_level": str(rec.label.risk_level) if rec.label else None}


def verl_row(rec: PairRecord, img: SceneImage, split: str, index: int) -> dict[str, Any]:
    """verl: five fields plus images; the scene and anchors go into ground_truth."""
    truth = {"scene": json.loads(scene_json(rec)), **_anchors(rec), **_facts(rec)}
    return {"data_source": DATA_SOURCE,
            "prompt": [{"role": "system", "content": SYSTEM},
                       {"role": "user", "content": IMAGE_TOKEN + scene_prompt(rec)}],
            "images": _image_cell(img), "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": json.dumps(truth)},
            "extra_info": {"split": split, "index": index, "pair_id": rec.pair_id,
                           "source": rec.provenance.source,
                           "scenario_id": rec.provenance.scenario_id,
                           "answer": answer(rec)}}


_ID = [("pair_id", pa.string())]
_IMAGES = [("images", pa.list_(A.IMAGE))]
_CONV = pa.list_(A.MESSAGE_PARTS)
SCHEMAS = {
    "trl-sft": pa.schema(_ID + [("messages", _CONV)] + _IMAGES),
    "trl-dpo": pa.schema(_ID + [("prompt", _CONV), ("chosen", _CONV), ("rejected", _CONV)]
                         + _IMAGES),
    "trl-grpo": pa.schema(_ID + [("prompt", _CONV)] + _IMAGES + [
        ("scene", pa.string()), ("expert_poses", A.POSES), ("negative_poses", A.POSES),
        ("positive_poses", A.POSES), ("negative_facts", A.FACTS), ("positive_facts", A.FACTS),
        ("risk_level", pa.string())]),
    "verl": pa.schema([("data_source", pa.string()), ("prompt", pa.list_(A.MESSAGE_TEXT))]
                      + _IMAGES + [
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([("split", pa.string()), ("index", pa.int64()),
                                  ("pair_id", pa.string()), ("source", pa.string()),
                                  ("scenario_id", pa.string()), ("answer", pa.string())]))]),
}


def _splits(out: Path, splits: list[str] | None) -> list[str]:
    found = sorted({p.name.split("-")[0] for p in (out / "data").glob("*.parquet")})
    if splits:
        unknown = sorted(set(splits) - set(found))
        if unknown:
            raise ConfigError(f"{out}: no shards for split(s) {unknown}; found {found}")
        return [s for s in found if s in splits]
    if not found:
        raise ConfigError(f"{out}/data has no shards")
    return found


def _records(out: Path, split: str, limit: int | None, res: ExportResult,
             need_label: bool) -> Iterator[PairRecord]:
    for rec in load_records(out, split, limit):
        if need_label and rec.label is None:
            res.skipped["unlabeled"] += 1
            continue
        yield rec


def _write_parquet(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=A.with_hf_features(schema))
    atomic_write(path, parquet_bytes(table))


def export(out: str | Path, dest: str | Path, fmt: str, images: str = "camera",
           data_root: str | Path | None = None, splits: list[str] | None = None,
           limit: int | None = None, pixels: int = 448, overwrite: bool = False
           ) -> ExportResult:
    """Export the pairs of ``out`` to ``dest`` in format ``fmt`` (see the module docstring).
    ``data_root`` is the dataset root the camera paths are relative to (default: the
    ``root`` of the generate run, from its manifest).

    ``dest`` may not be ``out`` or overlap it; it must be empty, missing or an earlier cfpair
    export (whose files that this export does not write again are then removed); any other
    non-empty folder is refused unless ``overwrite`` (its other files are left alone)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if images not in IMAGE_MODES:
        raise ConfigError(f"unknown --images {images!r}; expected one of "
                          f"{', '.join(IMAGE_MODES)}")
    out, dest = Path(out), Path(dest)
    check_apart(dest, out, "export folder", "pairs folder")
    if dest.exists() and not dest.is_dir():
        raise ShardError(f"{dest} is a file, not a folder")
    man = read_manifest(out)
    root = data_root if data_root is not None else man.config.get("root") if man else None
    if root is not None:
        check_apart(dest, root, "export folder", "dataset root")
    with FolderLock(dest, "export folder"):
        previous = _previous_export(dest, overwrite)
        res = _export(out, dest, fmt, images, root, splits, limit, pixels, man)
        rel = {p.relative_to(dest).as_posix() for p in res.files} | {"README.md"}
        remove_listed(dest, sorted(set(previous) - rel))
        _record_files(res, sorted(rel))
    return res


def _previous_export(dest: Path, overwrite: bool) -> list[str]:
    """Files of the cfpair export already in ``dest`` (to remove those not written again);
    refuses a non-empty folder that is not a cfpair export unless ``overwrite``."""
    entries = [p for p in dest.iterdir() if p.name != LOCK_NAME] if dest.is_dir() else []
    if not entries:
        return []
    rec = _export_record(dest / "export.json")
    if rec is None:
        if not overwrite:
            raise ShardError(f"{dest} is not empty and holds no cfpair export "
                             f"({', '.join(sorted(p.name for p in entries)[:5])}); refusing to "
                             "write there. Choose an empty folder, or --overwrite to write "
                             "into it anyway (files cfpair does not write are left alone)")
        return []
    files = rec.get("files")
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        return [f for f in files if _OWN_FILE.fullmatch(f)]
    return [p.relative_to(dest).as_posix() for pattern in _OWN_PATTERNS
            for p in sorted(dest.glob(pattern)) if p.is_file()]


def _export_record(path: Path) -> dict[str, Any] | None:
    """export.json when cfpair wrote it, else None."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(rec, dict) and (rec.get("kind") == EXPORT_KIND or (
            "cfpair_version" in rec and "source_dir" in rec and "format" in rec)):
        return rec
    return None


def _record_files(res: ExportResult, files: list[str]) -> None:
    """Add the list of written files to export.json (so a later export can remove stale
    ones, and only those)."""
    path = res.dest / "export.json"
    meta = json.loads(path.read_text())
    meta["files"] = files
    atomic_write(path, json.dumps(meta, indent=1).encode())


def _export(out: Path, dest: Path, fmt: str, images: str, root: str | Path | None,
            splits: list[str] | None, limit: int | None, pixels: int, man: RunManifest | None
            ) -> ExportResult:
    res = ExportResult(dest, fmt)

    def image(rec: PairRecord) -> SceneImage:
        img = scene_image(rec, images, root, pixels)
        res.images[img.kind] += 1
        return img

    need_label = fmt in ("trl-sft", "trl-dpo", "llamafactory")
    writer: Callable[..., list[Path]] = (_llamafactory if fmt == "llamafactory" else _parquet)
    for split in _splits(out, splits):
        recs = list(_records(out, split, limit, res, need_label))
        res.rows[split] = len(recs)
        res.files += writer(recs, split, dest, fmt, image)
    if fmt == "llamafactory":
        info = dest / "dataset_info.json"
        atomic_write(info, json.dumps(dataset_info(list(res.rows)), indent=1).encode())
        res.files.append(info)
    res.files.append(_write_card(res, out, images, man))
    return res


def _parquet(recs: list[PairRecord], split: str, dest: Path, fmt: str,
             image: Callable[[PairRecord], SceneImage]) -> list[Path]:
    recs = track(recs, f"export {split}", len(recs), "rows")  # type: ignore[assignment]
    if fmt == "verl":
        rows = [verl_row(r, image(r), split, i) for i, r in enumerate(recs)]
        path = dest / f"{split}.parquet"
    else:
        build = {"trl-sft": sft_row, "trl-dpo": dpo_row, "trl-grpo": grpo_row}[fmt]
        rows = [build(r, image(r)) for r in recs]
        (dest / "data").mkdir(exist_ok=True)
        path = dest / "data" / f"{split}-00000-of-00001.parquet"
    _write_parquet(path, rows, SCHEMAS[fmt])
    return [path]


def _llamafactory(recs: list[PairRecord], split: str, dest: Path, fmt: str,
                  image: Callable[[PairRecord], SceneImage]) -> list[Path]:
    (dest / "images").mkdir(exist_ok=True)
    sft, dpo = [], []
    files = []
    for rec in track(recs, f"export {split}", unit="rows"):
        if not _PAIR_ID.fullmatch(rec.pair_id):
            raise ShardError(f"pair id {rec.pair_id[:80]!r} is not a cfpair id (hex); the "
                             "pairs folder was edited - run cfpair validate on it")
        img = image(rec)
        rel = f"images/{rec.pair_id}{img.suffix}"
        atomic_write(dest / rel, img.data)
        files.append(dest / rel)
        human = {"from": "human", "value": IMAGE_TOKEN + scene_prompt(rec)}
        sft.append({"conversations": [human, {"from": "gpt", "value": answer(rec)}],
                    "system": SYSTEM, "images": [rel]})
        dpo.append({"conversations": [human],
                    "chosen": {"from": "gpt", "value": answer(rec, "positive")},
                    "rejected": {"from": "gpt", "value": answer(rec, "negative")},
                    "system": SYSTEM, "images": [rel]})
    for kind, rows in (("sft", sft), ("dpo", dpo)):
        path = dest / f"cfpair_{kind}_{split}.json"
        atomic_write(path, json.dumps(rows, indent=1).encode())
        files.append(path)
    return files


def dataset_info(splits: list[str]) -> dict[str, Any]:
    """LLaMA-Factory's registry: ``cfpair_sft_<split>`` and ``cfpair_dpo_<split>`` (ranking)."""
    cols = {"messages": "conversations", "system": "system", "images": "images"}
    info: dict[str, Any] = {}
    for split in splits:
        info[f"cfpair_sft_{split}"] = {"file_name": f"cfpair_sft_{split}.json",
                                       "formatting": "sharegpt", "columns": cols}
        info[f"cfpair_dpo_{split}"] = {"file_name": f"cfpair_dpo_{split}.json",
                                       "formatting": "sharegpt", "ranking": True,
                                       "columns": {**cols, "chosen": "chosen",
                                                   "rejected": "rejected"}}
    return info


def _write_card(res: ExportResult, out: Path, images: str, man: RunManifest | None) -> Path:
    config_hash = man.config_hash if man else None
    meta = {"kind": EXPORT_KIND, "format": res.format, "cfpair_version": __version__,
            "source_dir": str(out),
            "source_config_hash": config_hash, "rows": dict(res.rows),
            "images": dict(res.images), "image_mode": images, "skipped": dict(res.skipped),
            "trajectory_text": {"form": "<trajectory>[(x, y, yaw), ...]</trajectory>",
                                "poses": "8 at 0.5 s .. 4.0 s, rear axle, ego frame at "
                                         "the anchor (x forward, y left, yaw CCW rad)",
                                "xy_decimals": XY_DECIMALS, "yaw_decimals": YAW_DECIMALS}}
    path = res.dest / "export.json"
    atomic_write(path, json.dumps(meta, indent=1).encode())
    splits = list(res.rows)
    if res.format == "llamafactory":
        configs = {k: {s: f"cfpair_{k}_{s}.json" for s in splits} for k in ("sft", "dpo")}
    elif res.format == "verl":
        configs = {"default": {s: f"{s}.parquet" for s in splits}}
    else:
        configs = {"default": {s: f"data/{s}-*.parquet" for s in splits}}
    body = [f"# cfpair export: {res.format}", "",
            f"Made by `cfpair export --format {res.format}` (cfpair {__version__}) from "
            f"`{out}` (config hash `{config_hash}`).", "",
            "| split | rows |", "|---|---|", *[f"| {s} | {n} |" for s, n in res.rows.items()],
            "", "Images: " + ", ".join(f"{k} {v}" for k, v in sorted(res.images.items()))
            + " (camera = the front camera of the anchor frame, bev = cfpair's bird's-eye "
            "render of the scene at the anchor: map, road users and their last second, no "
            "future).", "",
            "Trajectories are written as `<trajectory>[(x, y, yaw), ...]</trajectory>`: 8 "
            "poses at 0.5 s .. 4 s of the ego rear axle in the ego frame at the anchor (x "
            f"forward, y left, metres, {XY_DECIMALS} decimals; yaw CCW radians, "
            f"{YAW_DECIMALS} decimals); `cfpair.export.text.parse_trajectory` reads them "
            "back. See `export.json` for the counts.", ""]
    atomic_write(res.dest / "README.md", "\n".join(card_yaml(configs, res.dest) + body).encode())
    return path
