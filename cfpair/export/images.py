"""The image a pair is exported with: the front camera of the anchor frame when the dataset
has one and it can be read, else the bird's-eye observation render (no future, no label)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cfpair.errors import DatasetFormatError
from cfpair.records.schema import PairRecord
from cfpair.render.bev import observation_png
from cfpair.sources.paths import relative_inside

IMAGE_MODES = ("camera", "bev")
_FRONT = ("cam_f0", "front")
_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


@dataclass(frozen=True)
class SceneImage:
    """Encoded image bytes, their file suffix and where they came from ('camera' | 'bev')."""

    data: bytes
    suffix: str
    kind: str
    camera: str | None = None


def front_camera(rec: PairRecord) -> tuple[str, str] | None:
    """(name, relative path) of the front camera at the anchor, or the first camera."""
    cams = rec.context.cameras
    for cam in cams:
        if any(k in cam.name.lower() for k in _FRONT):
            return cam.name, cam.path
    return (cams[0].name, cams[0].path) if cams else None


def scene_image(rec: PairRecord, mode: str = "camera", data_root: str | Path | None = None,
                pixels: int = 448) -> SceneImage:
    """The export image of a record (see the module docstring); ``mode='bev'`` always
    renders. A camera file that is missing or of an unknown type falls back to the render."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode {mode!r}; expected one of {IMAGE_MODES}")
    cam = front_camera(rec) if mode == "camera" else None
    if cam is not None and data_root is not None and cam[1]:
        try:    # a path that leaves the dataset root (absolute, '..', symlink) is never read
            path = Path(data_root) / relative_inside(data_root, cam[1], rec.pair_id, "camera")
        except DatasetFormatError:
            return SceneImage(observation_png(rec, pixels), ".png", "bev")
        if path.suffix.lower() in _SUFFIXES and path.is_file():
            return SceneImage(path.read_bytes(), path.suffix.lower(), "camera", cam[0])
    return SceneImage(observation_png(rec, pixels), ".png", "bev")
