"""``generate()``: source -> candidates -> pairing -> labels -> Parquet shards, resumable, on a
local process pool or Dask.

Work is cut into shards up front (per split, ``shard_size`` scenes each, in the source's
order), so the output does not depend on how many workers run or in which order shards
finish. Workers return Parquet bytes; only this process touches the output folder, and only
while it holds the folder's lock. Every exception inside one clip becomes a reject
(:mod:`cfpair.rejects`); the manifest lists the planned shards before the first one and says
``complete`` or ``incomplete`` at the end, however the run ends.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cfpair.config import GenerateConfig
from cfpair.counterfactual.candidates import build_candidates
from cfpair.counterfactual.pairing import make_pair
from cfpair.counterfactual.record import build_record
from cfpair.errors import CfpairError, ConfigError, SceneRejected, ShardError, SourceUnavailable
from cfpair.labels.base import make_labeler
from cfpair.labels.risk import risk_level
from cfpair.lock import FolderLock
from cfpair.outdir import check_apart
from cfpair.records.label import SafetyLabel
from cfpair.records.manifest import Reject, ShardEntry
from cfpair.records.schema import PairRecord
from cfpair.records.shards import (
    Manifest,
    atomic_write,
    clean_tmp,
    parquet_bytes,
    row_digests,
    sha256,
    shard_name,
    table_of,
    write_card,
    write_rejects,
)
from cfpair.rejects import contained, internal, reject
from cfpair.scoring.context import build_context
from cfpair.scoring.views import score_trajectories
from cfpair.sources.base import ScenarioRef, ScenarioSource, get_source, iter_refs
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
    risk_levels: dict[str, int] = field(default_factory=dict)
    row_sha256: list[str] = field(default_factory=list)

    def entry(self) -> ShardEntry:
        """The manifest entry (without the bytes)."""
        return ShardEntry(split=self.split, rows=self.rows, scenes=self.scenes,
                          sha256=sha256(self.data), bytes=len(self.data),
                          rejects=[Reject.model_validate(r) for r in self.rejects],
                          row_sha256=self.row_sha256, labels_by_labeler=self.labels_by_labeler,
                          label_status=self.label_status, contradictions=self.contradictions,
                          llm=self.llm, risk_levels=self.risk_levels)


_SOURCES: dict[tuple[str, str | None, str], ScenarioSource] = {}


def _source(cfg: GenerateConfig) -> ScenarioSource:
    """One source instance per process and config."""
    key = (cfg.source, cfg.root, repr(sorted(cfg.source_options.items())))
    if key not in _SOURCES:
        _SOURCES[key] = get_source(cfg.source, cfg.root, **cfg.source_options)
    return _SOURCES[key]


#: the most scenes one split of one run may plan (memory stays bounded; use --limit)
MAX_SCENES_PER_SPLIT = 5_000_000


def _split_refs(src: ScenarioSource, cfg: GenerateConfig, split: str) -> list[ScenarioRef]:
    """The refs of one split, at most ``limit``, without listing more than needed; a split the
    source does not have is an error listing those it has."""
    known = src.splits() if hasattr(src, "splits") else None
    if known is not None and split not in known:
        raise ConfigError(f"source {cfg.source!r}{f' at {cfg.root}' if cfg.root else ''} has no "
                          f"split {split!r}; splits that exist: {', '.join(known) or 'none'}")
    refs: Iterable[ScenarioRef] = iter_refs(src, split)
    if cfg.limit is not None and cfg.limit <= MAX_SCENES_PER_SPLIT:
        return list(itertools.islice(refs, cfg.limit))
    out = list(itertools.islice(refs, MAX_SCENES_PER_SPLIT + 1))
    if len(out) > MAX_SCENES_PER_SPLIT:
        raise ConfigError(f"split {split!r} has more than {MAX_SCENES_PER_SPLIT} scenes; "
                          "run it in parts with --limit")
    return out


def plan(cfg: GenerateConfig) -> list[ShardSpec]:
    """All shards of the run, in order; a run with no scene at all is an error."""
    src = _source(cfg)
    specs = []
    for split in cfg.splits:
        refs = _split_refs(src, cfg, split)
        chunks = [refs[i:i + cfg.shard_size] for i in range(0, len(refs), cfg.shard_size)]
        specs += [ShardSpec(split, i, len(chunks), tuple(c)) for i, c in enumerate(chunks)]
    if not specs:
        known = src.splits() if hasattr(src, "splits") else []
        raise ConfigError(f"0 scenes in split(s) {', '.join(cfg.splits)} of source "
                          f"{cfg.source!r}{f' at {cfg.root}' if cfg.root else ''}; splits that "
                          f"exist: {', '.join(known) or 'none'}")
    return specs


def pairs_of(scn: Scenario, ref: ScenarioRef, cfg: GenerateConfig, config_hash: str
             ) -> Iterator[PairRecord | dict[str, Any]]:
    """Unlabelled records of every anchor of one scenario, or reject entries."""
    anchors = scn.anchors[: cfg.max_anchors] if cfg.max_anchors else scn.anchors
    for anchor in anchors:
        try:
            ctx = build_context(scn, anchor)
            cands = build_candidates(ctx, cfg.n_candidates, cfg.seed)
            facts = score_trajectories(ctx, cands.x, cands.y, cands.yaw, cands.v,
                                       cands.feasible)
            pair = make_pair(ctx, cands, facts)
            yield build_record(scn, ctx, cands, pair, ref.split, cfg.seed, config_hash)
        except SceneRejected as exc:
            yield reject(ref, anchor, exc.reason, exc.detail, exc)
        except CfpairError as exc:
            yield reject(ref, anchor, "scene_error", str(exc), exc)
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the run; counted
            yield internal(ref, anchor, exc)


def _with_label(rec: PairRecord, lab: SafetyLabel | None, status: str, labeler: str,
                prompt_version: str | None = None, model: str | None = None) -> PairRecord:
    prov = rec.provenance.model_copy(update={"labeler": labeler,
                                             "prompt_version": prompt_version,
                                             "label_model": model})
    return rec.model_copy(update={"label": lab, "label_status": status, "provenance": prov})


def label_records(records: list[PairRecord], cfg: GenerateConfig,
                  counts: dict[str, Counter]) -> tuple[list[PairRecord], dict[str, float]]:
    """Label a shard's records with the configured labeler (``labels.base`` registry) and count
    the outcomes the same way for every labeler; returns the labeler's stats."""
    labeler = make_labeler(cfg.labeler, cfg)
    try:
        outcomes = labeler.label_batch(records)
    finally:
        labeler.close()
    counts["contradictions"].update(labeler.contradictions)
    out = []
    for rec, o in zip(records, outcomes, strict=True):
        counts["label_status"][o.status] += 1
        counts["risk_levels"][str(risk_level(rec))] += 1
        if o.label is not None:
            counts["labels_by_labeler"][o.labeler] += 1
        out.append(_with_label(rec, o.label, o.status, o.labeler, o.prompt_version, o.model))
    return out, labeler.counters()


def process_shard(spec: ShardSpec, cfg: GenerateConfig) -> ShardResult:
    """Load, pair and label every scenario of a shard; return the Parquet bytes."""
    started = time.perf_counter()
    src = _source(cfg)
    chash = cfg.hash()
    records: list[PairRecord] = []
    rejects: list[dict[str, Any]] = []
    counts: dict[str, Counter] = {k: Counter() for k in
                                  ("labels_by_labeler", "label_status", "contradictions",
                                   "risk_levels")}
    for ref in spec.refs:
        try:
            scn = src.load(ref)
            contained(scn, ref, cfg.root)
        except CfpairError as exc:
            rejects.append(reject(ref, None, "load_error", str(exc), exc))
            continue
        except RecursionError as exc:   # deeply nested input: the file's fault, not a bug
            rejects.append(reject(ref, None, "load_error", f"nested too deeply ({exc})"))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the run; counted
            rejects.append(internal(ref, None, exc))
            continue
        for item in pairs_of(scn, ref, cfg, chash):
            if isinstance(item, dict):
                rejects.append(item)
            else:
                records.append(item)
    records, llm = label_records(records, cfg, counts)
    table = table_of(records)
    data = parquet_bytes(table)
    return ShardResult(spec.name, spec.split, data, len(records), len(spec.refs), rejects,
                       dict(counts["labels_by_labeler"]), dict(counts["label_status"]),
                       dict(counts["contradictions"]), time.perf_counter() - started, llm,
                       dict(counts["risk_levels"]), row_digests(table))


@dataclass(frozen=True)
class ShardFailure:
    """A shard whose worker raised or died: the run goes on, the manifest says incomplete."""

    name: str
    scenes: int
    error: str


def safe_process_shard(spec: ShardSpec, cfg: GenerateConfig) -> ShardResult | ShardFailure:
    """:func:`process_shard` that returns, never raises: only plain data crosses processes."""
    try:
        return process_shard(spec, cfg)
    except Exception as exc:  # noqa: BLE001 - reported as a failed shard, never lost
        return ShardFailure(spec.name, len(spec.refs), f"{type(exc).__name__}: {exc}"[:1000])


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


Outcome = ShardResult | ShardFailure


def _bounded(submit: Callable[[ShardSpec], Any], specs: list[ShardSpec], limit: int,
             wait_one: Callable[[set[Any]], tuple[set[Any], set[Any]]]
             ) -> Iterator[Outcome]:
    """Keep at most ``limit`` shards in flight; yield outcomes as they finish. A worker that
    dies (or a pool that breaks) yields a ShardFailure for each shard it takes down."""
    todo = list(reversed(specs))
    running: dict[Any, ShardSpec] = {}
    while todo or running:
        while todo and len(running) < limit:
            spec = todo.pop()
            try:
                running[submit(spec)] = spec
            except Exception as exc:  # noqa: BLE001 - a broken pool refuses new work
                yield ShardFailure(spec.name, len(spec.refs), f"{type(exc).__name__}: {exc}")
        if not running:
            continue
        done, _ = wait_one(set(running))
        for fut in done:
            spec = running.pop(fut)
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died: the shard failed
                yield ShardFailure(spec.name, len(spec.refs),
                                   f"{type(exc).__name__}: {exc}"[:1000])


def _run_local(specs: list[ShardSpec], cfg: GenerateConfig) -> Iterator[Outcome]:
    if cfg.workers == 1:
        for spec in specs:
            yield safe_process_shard(spec, cfg)
        return
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("forkserver"),
                             initializer=_ignore_sigint) as pool:
        try:
            yield from _bounded(lambda s: pool.submit(safe_process_shard, s, cfg), specs,
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


def _run_dask(specs: list[ShardSpec], cfg: GenerateConfig) -> Iterator[Outcome]:
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
        yield from _bounded(lambda s: client.submit(safe_process_shard, s, cfg,
                                                  pure=False), specs,
                            2 * cfg.workers,
                            lambda fs: _as_sets(dask_wait(list(fs), return_when="FIRST_COMPLETED")))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def generate(cfg: GenerateConfig, on_progress: Callback | None = None,
             on_plan: Callable[[list[ShardSpec]], None] | None = None) -> RunSummary:
    """Run (or resume) a generation into ``cfg.out``; ``on_plan`` sees the shards first.

    The folder is locked for the run (a second writer fails fast); temporary files of an earlier
    killed or failed run are removed; the manifest is written before the first shard (listing
    every planned shard), after each one and at the end, also when the run stops on an error.
    A shard whose worker failed is recorded and the others go on; the run then ends with a
    ShardError naming it, and the manifest says ``incomplete`` (a re-run retries it).
    """
    started = time.perf_counter()
    specs = plan(cfg)
    if on_plan:
        on_plan(specs)
    out = Path(cfg.out)
    if cfg.root is not None:
        check_apart(out, cfg.root, "--out", "dataset root")
    with FolderLock(out, "--out folder"):
        clean_tmp(out)
        manifest = Manifest.open(out, cfg.hashed(), cfg.hash(), cfg.overwrite)
        todo = [s for s in specs if not manifest.done(s.name)]
        resumed = len(specs) - len(todo)
        manifest.plan({s.name: len(s.refs) for s in specs})
        if on_progress:
            on_progress(None, sum(len(s.refs) for s in specs if s not in todo))
        runner = _run_dask if cfg.executor == "dask" else _run_local
        scenes = 0
        failed: dict[str, str] = {}
        try:
            for res in runner(todo, cfg):
                if isinstance(res, ShardFailure):
                    failed[res.name] = res.error
                    if on_progress:
                        on_progress(None, res.scenes)
                    continue
                atomic_write(out / res.name, res.data)
                manifest.add(res.name, res.entry())
                scenes += res.scenes
                if on_progress:
                    on_progress(res, res.scenes)
        finally:
            manifest.finish(failed)
            write_rejects(out, manifest)
            write_card(out, manifest)
    if failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(failed.items())[:3])
        raise ShardError(f"{len(failed)} of {len(specs)} shards failed: {names}; the others "
                         f"are written and {out}/manifest.json says incomplete - run the same "
                         "command again to retry them")
    counts = dict(manifest.record.counts.model_dump(), scenes_this_run=scenes)
    return RunSummary(out, len(specs), len(todo), resumed, time.perf_counter() - started, counts)
