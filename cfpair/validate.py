"""``cfpair validate``: check an output folder against its manifest, its schema and the geometry.

Every finding names the check, the file (and row / pair id) and what was expected. Checks:
manifest, shard_missing, unlisted_shard, checksum, unreadable, row_count, counts,
foreign_config, schema, duplicate_id, label, pair, kinematics, facts. Facts are measured again
from the stored scene with cfpair's geometry (``scoring/rescore.py``) and compared within
TOLERANCES; comfort is a warning only (its finite differences are sensitive to the stored
4-decimal rounding at the strict bounds).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import ValidationError

from cfpair import integrity
from cfpair.labels.grounding import check_label
from cfpair.progress import track
from cfpair.records.manifest import Counts, RunManifest, ShardEntry
from cfpair.records.schema import Facts, PairRecord, TrajectoryRecord
from cfpair.records.shards import sha256
from cfpair.scoring.facts import TTC_HORIZON_S
from cfpair.scoring.pdms import risky
from cfpair.scoring.rescore import ROLES, recompute_facts

CHECKS = ("manifest", "shard_missing", "unlisted_shard", "checksum", "unreadable", "row_count",
          "counts", "foreign_config", "schema", "duplicate_id", "label", "pair", "kinematics",
          "facts") + integrity.CHECKS
#: absolute tolerances of recomputed numeric facts
TOLERANCES = {"first_conflict_time_s": 0.05, "min_ttc_s": 0.05, "min_distance_m": 0.05,
              "progress_m": 0.1, "nc": 1e-6, "dac": 1e-6, "ttc": 1e-6, "ep": 0.01,
              "pdms": 0.02, "safety_score": 0.02, "relative_heading_deg": 1.0}
SOFT = ("comfort", "comfort_ok")
EXACT = ("collides", "at_fault", "collision_type", "critical_agent_id", "critical_agent_class",
         "ttc_ok", "drivable_ok")
POSE_STEP = 5
POSE_TOL = 1e-3
SPEED_TOL = 0.6          # m/s between stored speed and the speed implied by the positions


@dataclass(frozen=True)
class Finding:
    """One problem (or warning) found."""

    check: str
    where: str
    message: str
    severity: str = "error"


@dataclass
class Report:
    """All findings of one validation, and what was looked at."""

    out: str
    shards: int = 0
    rows: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def incomplete(self) -> bool:
        """The run did not finish (or did not record that it did)."""
        return any(f.check == "incomplete" for f in self.findings)

    def add(self, check: str, where: str, message: str, severity: str = "error") -> None:
        """Record a finding."""
        self.findings.append(Finding(check, where, message, severity))

    def by_check(self) -> dict[str, dict[str, int]]:
        """{check: {"errors": n, "warnings": n}} for every check."""
        out = {c: {"errors": 0, "warnings": 0} for c in CHECKS}
        for f in self.findings:
            out[f.check]["errors" if f.severity == "error" else "warnings"] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        """Machine-readable report."""
        return {"out": self.out, "ok": self.ok, "incomplete": self.incomplete,
                "shards": self.shards, "rows": self.rows,
                "checks": self.by_check(), "findings": [asdict(f) for f in self.findings]}


def _close(a: Any, b: Any, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), abs_tol=tol)


def compare_facts(stored: Facts, measured: Facts) -> tuple[list[str], list[str]]:
    """(hard mismatches, soft mismatches) between stored and recomputed facts."""
    hard, soft = [], []
    for k in EXACT:
        if getattr(stored, k) != getattr(measured, k):
            hard.append(f"{k} stored {getattr(stored, k)!r}, measured {getattr(measured, k)!r}")
    for k, tol in TOLERANCES.items():
        a, b = getattr(stored, k), getattr(measured, k)
        if not _close(a, b, tol):
            hard.append(f"{k} stored {a}, measured {b} (tolerance {tol})")
    for k in SOFT:
        if getattr(stored, k) != getattr(measured, k):
            soft.append(f"{k} stored {getattr(stored, k)}, measured {getattr(measured, k)}")
    ttc = (stored.min_ttc_s, measured.min_ttc_s)
    if None in ttc and any(v is not None and v >= TTC_HORIZON_S - TOLERANCES["min_ttc_s"]
                           for v in ttc):
        # a TTC at the horizon's edge on one side only: rounding of the stored states moved it
        # across 3 s; the critical agent and heading that come with it follow; not a fact error
        edge = ("min_ttc_s ", "critical_agent_id ", "critical_agent_class ",
                "relative_heading_deg ")
        soft += [h + " (TTC at the 3 s horizon)" for h in hard if h.startswith(edge)]
        hard = [h for h in hard if not h.startswith(edge)]
    if soft:    # comfort is a PDMS term: a comfort flip explains a PDMS difference
        soft += [h for h in hard if h.startswith("pdms ")]
        hard = [h for h in hard if not h.startswith("pdms ")]
    return hard, soft


def kinematics(tr: TrajectoryRecord) -> list[str]:
    """Internal consistency of one stored trajectory: poses, grid, speed vs positions."""
    out = []
    n = len(tr.t)
    if not (len(tr.x) == len(tr.y) == len(tr.yaw) == len(tr.v) == n):
        return [f"lengths t {n}, x {len(tr.x)}, y {len(tr.y)}, yaw {len(tr.yaw)}, v {len(tr.v)}"]
    for j, pose in enumerate(tr.poses):
        i = (j + 1) * POSE_STEP
        if i >= n or any(abs(p - q) > POSE_TOL for p, q in zip(
                pose, (tr.x[i], tr.y[i], tr.yaw[i]), strict=True)):
            out.append(f"pose {j} ({(j + 1) * 0.5:.1f} s) is not the state at step {i}")
            break
    for i in range(1, n):
        dt = tr.t[i] - tr.t[i - 1]
        implied = math.hypot(tr.x[i] - tr.x[i - 1], tr.y[i] - tr.y[i - 1]) / dt
        if abs(implied - 0.5 * (tr.v[i] + tr.v[i - 1])) > SPEED_TOL:
            out.append(f"step {i}: positions imply {implied:.2f} m/s, stored speed "
                       f"{tr.v[i - 1]:.2f} -> {tr.v[i]:.2f} m/s")
            break
    return out


def _check_record(rep: Report, rec: PairRecord, where: str, config_hash: str | None,
                  recompute: bool) -> None:
    if config_hash is not None and rec.provenance.config_hash != config_hash:
        rep.add("foreign_config", where, f"config hash {rec.provenance.config_hash}, the "
                f"manifest's is {config_hash}: this row comes from another run")
    if rec.label_status == "unlabeled" and rec.label is not None:
        rep.add("label", where, "status 'unlabeled' but a label is present")
    if rec.label_status in ("ok", "fallback"):
        if rec.label is None:
            rep.add("label", where, f"status {rec.label_status!r} but no label")
        else:
            for c in check_label(rec.label, rec):
                rep.add("label", where, f"{c.kind}: {c.message}")
    n, p = rec.negative.facts, rec.positive.facts
    if not risky(n.collides, n.ttc_ok, n.drivable_ok):
        rep.add("pair", where, "the negative is not risky (no collision, TTC or off-road)")
    if risky(p.collides, p.ttc_ok, p.drivable_ok):
        rep.add("pair", where, "the positive is not safe")
    if n.pdms >= p.pdms:
        rep.add("pair", where, f"the negative's PDMS {n.pdms} is not below the positive's "
                f"{p.pdms} (NAVSIM's view)")
    for role in ROLES:
        tr = getattr(rec, role)
        for msg in kinematics(tr):
            # a logged trajectory is not an exact rollout: its speed/position drift is a warning
            logged = tr.perturbation.startswith("expert") and msg.startswith("step")
            rep.add("kinematics", where, f"{role}: {msg}", "warning" if logged else "error")
    if not recompute:
        return
    try:
        measured = recompute_facts(rec)
    except Exception as exc:  # noqa: BLE001 - a row the geometry cannot read is a finding
        rep.add("facts", where, f"cannot recompute: {type(exc).__name__}: {exc}")
        return
    for role in ROLES:
        hard, soft = compare_facts(getattr(rec, role).facts, measured[role])
        for msg in hard:
            rep.add("facts", where, f"{role}: {msg}")
        for msg in soft:
            rep.add("facts", where, f"{role}: {msg}", "warning")


def _read_manifest(rep: Report, man_path: Path) -> RunManifest | None:
    """The typed manifest, None (with a finding) when it is unreadable or malformed."""
    try:
        raw = json.loads(man_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        rep.add("manifest", str(man_path), f"expected a cfpair manifest.json ({exc})")
        return None
    man = integrity.check_manifest(rep, raw, str(man_path))
    if man is not None:
        integrity.check_complete(rep, man, str(man_path))
    return man


def _check_shard(rep: Report, out: Path, name: str, entry: ShardEntry, man: RunManifest,
                 recompute: bool, seen: dict[str, str]) -> int:
    """All checks of one listed shard; the number of rows read."""
    path = out / name
    if not path.is_file():
        rep.add("shard_missing", name, f"listed in the manifest ({entry.rows} rows) "
                "but not on disk")
        return 0
    rep.shards += 1
    data = path.read_bytes()
    digest = sha256(data)
    if digest != entry.sha256:
        rep.add("checksum", name, f"sha256 {digest[:16]}..., the manifest says "
                f"{entry.sha256[:16]}...")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any Arrow error means unreadable
        rep.add("unreadable", name, f"not a readable Parquet file ({exc})")
        return 0
    if table.num_rows != entry.rows:
        rep.add("row_count", name, f"{table.num_rows} rows, the manifest says {entry.rows}")
    integrity.check_schema(rep, table.schema, name)
    integrity.check_rows(rep, table, entry, name)
    split = integrity.SHARD_NAME.fullmatch(name)
    recs = []
    for i, row in enumerate(table.to_pylist()):
        where = f"{name}:{i}"
        try:
            rec = PairRecord.model_validate(row)
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors()[:3])
            rep.add("schema", where, f"does not match the record schema: {errs}")
            continue
        recs.append(rec)
        where = f"{where} ({rec.pair_id})"
        if rec.pair_id in seen:
            rep.add("duplicate_id", where, f"pair id also at {seen[rec.pair_id]}")
        seen.setdefault(rec.pair_id, where)
        integrity.check_provenance(rep, rec, where, man, split["split"] if split else "")
        _check_record(rep, rec, where, man.config_hash, recompute)
    integrity.check_counts(rep, recs, entry, name)
    return table.num_rows


def validate(out: str | Path, recompute: bool = True) -> Report:
    """Validate an output folder written by ``cfpair generate``; never raises on what the
    folder holds (every problem is a finding)."""
    out = Path(out)
    rep = Report(str(out))
    man_path = out / "manifest.json"
    man = _read_manifest(rep, man_path)
    shards = man.shards if man is not None else {}
    on_disk = {str(p.relative_to(out)) for p in (out / "data").glob("*.parquet")} \
        if (out / "data").is_dir() else set()
    for name in sorted(on_disk - set(shards)):
        rep.add("unlisted_shard", name, "a shard file the manifest does not list")
    if man is None:
        return rep
    seen: dict[str, str] = {}
    rows_total = 0
    for name, entry in track(sorted(shards.items()), "validate", unit="shards"):
        try:
            rows_total += _check_shard(rep, out, name, entry, man, recompute, seen)
        except Exception as exc:  # noqa: BLE001 - a hostile shard is a finding, not a crash
            rep.add("unreadable", name, f"cannot check ({type(exc).__name__}: {exc})"[:500])
    rep.rows = rows_total
    _check_totals(rep, man, str(man_path))
    return rep


def _check_totals(rep: Report, man: RunManifest, where: str) -> None:
    """Every run total of the manifest against what its own shard entries add up to."""
    want = Counts.of(man.shards.values())
    for key in Counts.model_fields:
        got, listed = getattr(man.counts, key), getattr(want, key)
        if got != listed:
            rep.add("counts", where, f"counts.{key} {got}, the shard entries add up to {listed}")
