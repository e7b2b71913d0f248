"""``generate()``: source -> candidates -> pairing -> labels -> Parquet shards, resumable, on a
local process pool or Dask.

Work is cut into shards up front (per split, ``shard_size`` scenes each, in the source's
order), so the output does not depend on how many workers run or in which order shards
finish. Workers return Parquet bytes; only this process touches the output folder.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cfpair.config import GenerateConfig
from cfpair.counterfactual.candidates import build_candidates
from cfpair.counterfactual.context import build_context
from cfpair.counterfactual.pairing import make_pair
from cfpair.counterfactual.record import build_record
from cfpair.errors import CfpairError, ConfigError, SceneRejected, SourceUnavailable
from cfpair.labels import rules
from cfpair.labels.grounding import check_label
from cfpair.labels.models import PairRecord, SafetyLabel
from cfpair.metrics.pdms import score_candidates
from cfpair.shards import (
    Manifest,
    atomic_write,
    parquet_bytes,
    sha256,
    shard_name,
    table_of,
    write_card,
    write_rejects,
)
from cfpair.sources.base import ScenarioRef, ScenarioSource, get_source
from cfpair.types import Scenario


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: a slice of one split's scenarios."""

    split: str
    index: int
    total: int
    refs: tuple[ScenarioRef, ...]

    @property
    def name(self) -> str:
        """Shard path relative to the output folder."""
        return shard_name(self.split, self.index, self.total)


@dataclass
class ShardResult:
    """What a worker sends back for one shard."""

    name: str
    split: str
    data: bytes
    rows: int
    scenes: int
    rejects: list[dict[str, Any]]
    labels_by_labeler: dict[str, int]
    label_status: dict[str, int]
    contradictions: dict[str, int]
    seconds: float
    llm: dict[str, float] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        """The manifest entry (without the bytes)."""
        return {"split": self.split, "rows": self.rows, "scenes": self.scenes,
                "sha256": sha256(self.data), "bytes": len(self.data), "rejects": self.rejects,
                "labels_by_labeler": self.labels_by_labeler, "label_status": self.label_status,
                "contradictions": self.contradictions, "llm": self.llm}


_SOURCES: dict[tuple[str, str | None, str], ScenarioSource] = {}


def _source(cfg: GenerateConfig) -> ScenarioSource:
    """One source instance per process and config."""
    key = (cfg.source, cfg.root, repr(sorted(cfg.source_options.items())))
    if key not in _SOURCES:
        _SOURCES[key] = get_source(cfg.source, cfg.root, **cfg.source_options)
    return _SOURCES[key]


def _split_refs(src: ScenarioSource, cfg: GenerateConfig, split: str) -> list[ScenarioRef]:
    """The refs of one split; a split the source does not have is an error listing those it has."""
    known = src.splits() if hasattr(src, "splits") else None
    if known is not None and split not in known:
        raise ConfigError(f"source {cfg.source!r}{f' at {cfg.root}' if cfg.root else ''} has no "
                          f"split {split!r}; splits that exist: {', '.join(known) or 'none'}")
    return src.list(split)


def plan(cfg: GenerateConfig) -> list[ShardSpec]:
    """All shards of the run, in order; a run with no scene at all is an error."""
    src = _source(cfg)
    specs = []
    for split in cfg.splits:
        refs = _split_refs(src, cfg, split)
        refs = refs[: cfg.limit] if cfg.limit is not None else refs
        chunks = [refs[i:i + cfg.shard_size] for i in range(0, len(refs), cfg.shard_size)]
        specs += [ShardSpec(split, i, len(chunks), tuple(c)) for i, c in enumerate(chunks)]
    if not specs:
        known = src.splits() if hasattr(src, "splits") else []
        raise ConfigError(f"0 scenes in split(s) {', '.join(cfg.splits)} of source "
                          f"{cfg.source!r}{f' at {cfg.root}' if cfg.root else ''}; splits that "
                          f"exist: {', '.join(known) or 'none'}")
    return specs


def _reject(ref: ScenarioRef, anchor: int | None, reason: str, detail: str) -> dict[str, Any]:
    return {"source": ref.source, "scenario_id": ref.scenario_id, "split": ref.split,
            "anchor": anchor, "reason": reason, "detail": detail[:500]}


def pairs_of(scn: Scenario, ref: ScenarioRef, cfg: GenerateConfig, config_hash: str
             ) -> Iterator[PairRecord | dict[str, Any]]:
    """Unlabelled records of every anchor of one scenario, or reject entries."""
    anchors = scn.anchors[: cfg.max_anchors] if cfg.max_anchors else scn.anchors
    for anchor in anchors:
        try:
            ctx = build_context(scn, anchor)
            cands = build_candidates(ctx, cfg.n_candidates, cfg.seed)
            scores = score_candidates(ctx, cands.x, cands.y, cands.yaw, cands.v, cands.path.xy)
            pair = make_pair(ctx, cands, scores)
            yield build_record(ctx, cands, pair, ref.split, cfg.seed, config_hash)
        except SceneRejected as exc:
            yield _reject(ref, anchor, exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the run; counted
            yield _reject(ref, anchor, "internal_error",
                          f"{type(exc).__name__}: {exc} | "
                          + "".join(traceback.format_exception(exc)[-2:]).strip())


def _with_label(rec: PairRecord, lab: SafetyLabel | None, status: str, labeler: str,
                prompt_version: str | None = None, model: str | None = None) -> PairRecord:
    prov = rec.provenance.model_copy(update={"labeler": labeler,
                                             "prompt_version": prompt_version,
                                             "label_model": model})
    return rec.model_copy(update={"label": lab, "label_status": status, "provenance": prov})


def label_record(rec: PairRecord, counts: dict[str, Counter]) -> PairRecord:
    """Attach the rules label and check it against the facts."""
    lab = rules.label(rec)
    bad = check_label(lab, rec)
    counts["contradictions"].update(c.kind for c in bad)
    status = "ok" if not bad else "unlabeled"
    counts["labels_by_labeler"][rules.NAME] += 1
    counts["label_status"][status] += 1
    return _with_label(rec, lab if not bad else None, status, rules.NAME)


def label_records(records: list[PairRecord], cfg: GenerateConfig,
                  counts: dict[str, Counter]) -> tuple[list[PairRecord], dict[str, float]]:
    """Label a shard's records with the configured labeler; LLM stats (empty for rules)."""
    if cfg.labeler == "rules":
        return [label_record(r, counts) for r in records], {}
    from cfpair.labels.llm import LLMLabeler

    labeler = LLMLabeler(cfg.llm_settings())
    try:
        outcomes = labeler.run(records)
    finally:
        labeler.close()
    counts["contradictions"].update(labeler.contradictions)
    out = []
    for rec, o in zip(records, outcomes, strict=True):
        counts["label_status"][o.status] += 1
        if o.label is not None:
            counts["labels_by_labeler"][o.labeler] += 1
        llm = o.labeler != rules.NAME
        out.append(_with_label(rec, o.label, o.status, o.labeler,
                               cfg.prompt_version if llm else None, cfg.model if llm else None))
    return out, labeler.stats.as_dict()


def process_shard(spec: ShardSpec, cfg: GenerateConfig) -> ShardResult:
    """Load, pair and label every scenario of a shard; return the Parquet bytes."""
    started = time.perf_counter()
    src = _source(cfg)
    chash = cfg.hash()
    records: list[PairRecord] = []
    rejects: list[dict[str, Any]] = []
    counts: dict[str, Counter] = {k: Counter() for k in
                                  ("labels_by_labeler", "label_status", "contradictions")}
    for ref in spec.refs:
        try:
            scn = src.load(ref)
        except CfpairError as exc:
            rejects.append(_reject(ref, None, "load_error", str(exc)))
            continue
        for item in pairs_of(scn, ref, cfg, chash):
            if isinstance(item, dict):
                rejects.append(item)
            else:
                records.append(item)
    records, llm = label_records(records, cfg, counts)
    data = parquet_bytes(table_of(records))
    return ShardResult(spec.name, spec.split, data, len(records), len(spec.refs), rejects,
                       dict(counts["labels_by_labeler"]), dict(counts["label_status"]),
                       dict(counts["contradictions"]), time.perf_counter() - started, llm)


@dataclass
class RunSummary:
    """What ``generate`` did."""

    out: Path
    shards_total: int
    shards_written: int
    shards_resumed: int
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def scenes_per_s(self) -> float:
        """Scenes processed in this run per wall-clock second."""
        done = self.counts.get("scenes_this_run", 0)
        return done / self.seconds if self.seconds > 0 else 0.0


Callback = Callable[[ShardResult | None, int], None]


def _bounded(submit: Callable[[ShardSpec], Any], specs: list[ShardSpec], limit: int,
             wait_one: Callable[[set[Any]], tuple[set[Any], set[Any]]]
             ) -> Iterator[ShardResult]:
    """Keep at most ``limit`` shards in flight; yield results as they finish."""
    todo = list(reversed(specs))
    running: set[Any] = set()
    while todo or running:
        while todo and len(running) < limit:
            running.add(submit(todo.pop()))
        done, running = wait_one(running)
        for fut in done:
            yield fut.result()


def _run_local(specs: list[ShardSpec], cfg: GenerateConfig) -> Iterator[ShardResult]:
    if cfg.workers == 1:
        for spec in specs:
            yield process_shard(spec, cfg)
        return
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("forkserver"),
                             initializer=_ignore_sigint) as pool:
        try:
            yield from _bounded(lambda s: pool.submit(process_shard, s, cfg), specs,
                                2 * cfg.workers,
                                lambda fs: _as_sets(wait(fs, return_when=FIRST_COMPLETED)))
        except KeyboardInterrupt:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()    # shards in flight are lost; they are redone on resume
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which reports what was written and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _as_sets(res: Any) -> tuple[set[Future], set[Future]]:
    return set(res.done), set(res.not_done)


def _run_dask(specs: list[ShardSpec], cfg: GenerateConfig) -> Iterator[ShardResult]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import wait as dask_wait
    except ImportError:
        raise CfpairError("--executor dask needs dask.distributed: "
                          "pip install 'cfpair[dask]'") from None
    cluster = None
    if cfg.scheduler:
        try:
            client = Client(cfg.scheduler, timeout=5)
        except (OSError, TimeoutError) as exc:
            raise SourceUnavailable(f"no Dask scheduler answered at {cfg.scheduler} within 5 s "
                                    f"({type(exc).__name__}); start one with `dask scheduler` "
                                    "or leave out --scheduler for a local cluster") from None
    else:
        cluster = LocalCluster(n_workers=cfg.workers, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None, processes=True)
        client = Client(cluster)
    try:
        yield from _bounded(lambda s: client.submit(process_shard, s, cfg, pure=False), specs,
                            2 * cfg.workers,
                            lambda fs: _as_sets(dask_wait(list(fs), return_when="FIRST_COMPLETED")))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def generate(cfg: GenerateConfig, on_progress: Callback | None = None,
             on_plan: Callable[[list[ShardSpec]], None] | None = None) -> RunSummary:
    """Run (or resume) a generation into ``cfg.out``; ``on_plan`` sees the shards first."""
    started = time.perf_counter()
    specs = plan(cfg)
    if on_plan:
        on_plan(specs)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.open(out, cfg.hashed(), cfg.hash(), cfg.overwrite)
    todo = [s for s in specs if not manifest.done(s.name)]
    resumed = len(specs) - len(todo)
    if on_progress:
        on_progress(None, sum(len(s.refs) for s in specs if manifest.done(s.name)))
    runner = _run_dask if cfg.executor == "dask" else _run_local
    scenes = 0
    for res in runner(todo, cfg):
        atomic_write(out / res.name, res.data)
        manifest.add(res.name, res.entry())
        scenes += res.scenes
        if on_progress:
            on_progress(res, res.scenes)
    manifest.save()
    write_rejects(out, manifest)
    write_card(out, manifest)
    counts = dict(manifest.data["counts"], scenes_this_run=scenes)
    return RunSummary(out, len(specs), len(todo), resumed, time.perf_counter() - started, counts)
