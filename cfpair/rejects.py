"""What a bad clip becomes: one reject entry naming the clip, the file (and line) and why.

Reasons are short stable codes: ``load_error`` (the source refused the input), the scorer's
``SceneRejected`` codes, ``scene_error`` (another cfpair error inside one clip) and
``internal_error`` (an exception cfpair did not raise on purpose: a bug, shown loudly in the
summary, never mistaken for bad data).
"""

from __future__ import annotations

import traceback
from typing import Any

from cfpair.errors import DatasetFormatError
from cfpair.sources import paths
from cfpair.sources.base import ScenarioRef
from cfpair.types import Scenario

#: reject reason of an exception that is not a CfpairError (a bug; the summary shows it)
INTERNAL = "internal_error"


def reject(ref: ScenarioRef, anchor: int | None, reason: str, detail: str,
           exc: BaseException | None = None) -> dict[str, Any]:
    """A reject entry naming the clip, the file (and line) where known, and why."""
    entry = {"source": ref.source, "scenario_id": ref.scenario_id, "split": ref.split,
             "anchor": anchor, "reason": reason, "detail": detail[:1000],
             "file": ref.path or None, "line": None}
    if isinstance(exc, DatasetFormatError):
        entry["file"], entry["line"] = str(exc.path), exc.line
    return entry


def internal(ref: ScenarioRef, anchor: int | None, exc: BaseException) -> dict[str, Any]:
    """A reject for an exception cfpair did not raise on purpose: a bug, counted loudly."""
    tail = "".join(traceback.format_exception(exc)[-3:]).strip()
    return reject(ref, anchor, INTERNAL, f"{type(exc).__name__}: {exc} | {tail}"[:2000], exc)


def contained(scn: Scenario, ref: ScenarioRef, root: str | None) -> None:
    """Whatever a source did, the clip's file and camera paths stay inside the dataset root
    (a DatasetFormatError naming the file otherwise)."""
    if root is None:
        return
    if ref.path:
        paths.inside(root, ref.path, "scenario file")
    for cam, row in scn.sensors.items():
        for p in dict.fromkeys(row):
            if p:
                paths.relative_inside(root, p, ref.path or ref.scenario_id, f"{cam} path")
