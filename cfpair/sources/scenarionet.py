"""ScenarioNet source: one ScenarioNet/MetaDrive ``ScenarioDescription`` pickle per scenario
(nuScenes, Waymo, nuPlan, Argoverse 2, Lyft converted by ScenarioNet's own tools).

Listing (no scenario file is opened): a folder with ``dataset_summary.pkl`` and/or
``dataset_mapping.pkl`` lists the summary's (else the mapping's) file names, each in the
sub-folder the mapping gives ('' = the same folder; combined datasets point into their parts);
a folder without them lists its ``*.pkl`` files and its sub-folders, recursively. A split that
names a sub-folder of the root lists that sub-folder; any other split (``train``, ``all``) lists
the whole root. Nothing outside the root is read: a mapping entry or symlink that leads out
becomes a reject naming the file.

Loading (restricted unpickler): ``metadata.sdc_id`` is the ego; ``metadata.ts`` (else
``sample_rate``) is the time grid, which must be uniform within 20 %. Velocities are the
central differences of the positions (one-sided at track ends and gaps): ScenarioNet stores a
forward difference (half a step late) that is zeroed next to every gap and at the last step, so
the stored values disagree with the positions there; ``velocity="stored"`` keeps them instead.
The ego's size is the median over the log; a length shorter than the width (nuScenes stores
1.73 x 4.08) is swapped, an implausible size replaced by the dataset's vehicle, and both are
written to ``meta["ego_size_correction"]``. nuScenes poses are rear-axle (ego frame origin);
the other datasets store box centres. Anchors every ``anchor_every_s`` with ``history_s`` of
logged ego before and ``future_s`` after, at the log's own rate.
"""

from __future__ import annotations

from pathlib import Path

from cfpair.errors import CfpairError, DatasetFormatError
from cfpair.sources.base import ScenarioRef
from cfpair.sources.safe_pickle import safe_load
from cfpair.sources.scenarionet_tracks import LoadOptions, scenario_from_description
from cfpair.types import Scenario

SUMMARY, MAPPING = "dataset_summary.pkl", "dataset_mapping.pkl"
MAX_DEPTH = 16


def contained(root: Path, path: Path) -> Path:
    """``path`` resolved; DatasetFormatError when it (or a symlink on the way) leaves root."""
    real, top = path.resolve(), root.resolve()
    if real != top and top not in real.parents:
        raise DatasetFormatError(path, f"resolves to {real}, outside the dataset root {top}; "
                                 "files outside --root are never read (for a combined "
                                 "dataset, point --root at a folder holding it and its parts)")
    return real


def _is_pkl(p: Path) -> bool:
    return p.suffix == ".pkl" and p.name not in (SUMMARY, MAPPING)


class ScenarioNetSource:
    """ScenarioNet folders under ``root`` (see the module docstring)."""

    name = "scenarionet"
    default_splits = ("train",)
    needs_root = True

    def __init__(self, root: str | Path, anchor_every_s: float = 1.0, history_s: float = 2.0,
                 future_s: float = 4.0, map_radius_m: float = 150.0,
                 velocity: str = "positions", default_lane_width: float = 3.7) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(self.root, "ScenarioNet root is not a directory")
        self.options = LoadOptions(anchor_every_s, history_s, future_s, map_radius_m, velocity,
                                   default_lane_width)

    def splits(self) -> list[str]:
        """The sub-folders of the root (each a split of its own), and ``train`` and ``all``
        (the whole root)."""
        subs = sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith("."))
        return subs + [s for s in ("all", "train") if s not in subs]

    # --- listing ---------------------------------------------------------------------------
    def list(self, split: str) -> list[ScenarioRef]:
        """Every scenario file of ``split`` in sorted order, without opening any of them."""
        top = self.root / split if split and (self.root / split).is_dir() else self.root
        refs: list[ScenarioRef] = []
        self._seen_dirs: set[Path] = set()
        self._walk(top, split, refs, depth=0)
        seen: set[str] = set()
        out = []
        for r in sorted(refs):
            if r.scenario_id not in seen:  # a file listed twice (summary and folder) once
                seen.add(r.scenario_id)
                out.append(r)
        return out

    def _ref(self, split: str, path: Path, extra: tuple = ()) -> ScenarioRef:
        """A ref whose id is the file's real path relative to the root (so one file reached
        through a combined dataset's mapping and through its own folder is listed once)."""
        try:
            rel = path.resolve().relative_to(self.root.resolve()).with_suffix("").as_posix()
        except (ValueError, OSError):
            rel = path.with_suffix("").as_posix()
        return ScenarioRef(self.name, rel, split, str(path), extra)

    def _bad(self, split: str, exc: DatasetFormatError) -> ScenarioRef:
        """A ref that ``load`` turns back into ``exc`` (a reject naming the file)."""
        return self._ref(split, exc.path, (("error", exc.reason),))

    def _walk(self, folder: Path, split: str, refs: list[ScenarioRef], depth: int) -> None:
        try:
            real = contained(self.root, folder)
        except DatasetFormatError as exc:
            refs.append(self._bad(split, exc))
            return
        if depth > MAX_DEPTH or real in self._seen_dirs:
            return  # a symlinked folder seen before (or a loop)
        self._seen_dirs.add(real)
        names = self._indexed(folder, split, refs)
        if names is not None:
            for name, sub in names:
                path = folder / sub / name
                try:
                    contained(self.root, path)
                except DatasetFormatError as exc:
                    refs.append(self._bad(split, exc))
                    continue
                refs.append(self._ref(split, path))
            return
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                self._walk(p, split, refs, depth + 1)
            elif _is_pkl(p):
                try:
                    contained(self.root, p)
                except DatasetFormatError as exc:
                    refs.append(self._bad(split, exc))
                    continue
                refs.append(self._ref(split, p))

    def _indexed(self, folder: Path, split: str, refs: list[ScenarioRef]
                 ) -> list[tuple[str, str]] | None:
        """(file name, sub-folder) from the summary/mapping files, or None without them."""
        has_s, has_m = (folder / SUMMARY).is_file(), (folder / MAPPING).is_file()
        if not (has_s or has_m):
            return None
        try:
            summary = self._index_file(folder / SUMMARY) if has_s else None
            mapping = self._index_file(folder / MAPPING) if has_m else {}
        except DatasetFormatError as exc:
            refs.append(self._bad(split, exc))
            return []
        names = list(summary) if summary is not None else list(mapping)
        out = []
        for name in names:
            sub = mapping.get(name, "")
            if not isinstance(name, str) or not isinstance(sub, str) or "/" in name or \
                    "\\" in name or name in ("", ".", ".."):
                refs.append(self._bad(split, DatasetFormatError(
                    folder / (SUMMARY if has_s else MAPPING), f"bad index entry {name!r} -> "
                    f"{sub!r}: expected a file name and a relative folder")))
                continue
            out.append((name, sub))
        return out

    def _index_file(self, path: Path) -> dict:
        contained(self.root, path)
        data = safe_load(path)
        if not isinstance(data, dict):
            raise DatasetFormatError(path, f"must hold a dict keyed by scenario file name, got "
                                     f"{type(data).__name__}")
        return data

    # --- loading ---------------------------------------------------------------------------
    def load(self, ref: ScenarioRef) -> Scenario:
        """One scenario file as a Scenario in the log's own (right-handed) world frame."""
        if ref.hint("error"):
            raise DatasetFormatError(ref.path, ref.hint("error"))
        path = Path(ref.path)
        contained(self.root, path)
        sd = safe_load(path)
        try:
            return scenario_from_description(sd, path, ref.scenario_id, self.options)
        except CfpairError:
            raise
        except Exception as exc:  # noqa: BLE001 - a hostile file is a reject, never an abort
            raise DatasetFormatError(path, f"unusable ScenarioDescription "
                                     f"({type(exc).__name__}: {exc})") from None
