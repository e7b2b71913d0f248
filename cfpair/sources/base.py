"""The small interface every scenario source implements, and the lazy registry of sources."""

from __future__ import annotations

import difflib
import importlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cfpair.errors import CfpairError, ConfigError
from cfpair.types import Scenario


@dataclass(frozen=True, order=True)
class ScenarioRef:
    """Where one scenario lives: enough for any worker to load it again.

    source: registry name; scenario_id: unique within the source; split: split name;
    path: the file or folder that holds it ('' for generated scenes); extra: small
    source-specific hints (e.g. the window start of a NAVSIM scene), JSON-serialisable.
    """

    source: str
    scenario_id: str
    split: str = ""
    path: str = ""
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def hint(self, key: str, default: Any = None) -> Any:
        """Look up a value in ``extra``."""
        return dict(self.extra).get(key, default)


@runtime_checkable
class ScenarioSource(Protocol):
    """A dataset: list the scenarios of a split, load one of them."""

    name: str

    def list(self, split: str) -> list[ScenarioRef]:
        """Every scenario of ``split``, in a deterministic order."""
        ...

    def load(self, ref: ScenarioRef) -> Scenario:
        """Load one scenario; raise a CfpairError subclass naming the file on bad input."""
        ...


#: Sources may also offer ``iter_refs(split) -> Iterator[ScenarioRef]``, the refs of ``list``
#: yielded lazily; :func:`iter_refs` uses it when present. Every path a source opens or
#: stores must go through :mod:`cfpair.sources.paths` (nothing may leave the dataset root).


def iter_refs(source: ScenarioSource, split: str) -> Iterator[ScenarioRef]:
    """The refs of a split one at a time: the source's ``iter_refs`` where it has one (so
    ``--limit 1`` on a huge source lists one scene, not all), else its ``list``."""
    lazy = getattr(source, "iter_refs", None)
    return iter(lazy(split)) if callable(lazy) else iter(source.list(split))


@dataclass(frozen=True)
class Rejected:
    """A scenario that could not be loaded, and why."""

    ref: ScenarioRef
    reason: str


def load_all(source: ScenarioSource, split: str, limit: int | None = None
             ) -> Iterator[Scenario | Rejected]:
    """Load every scenario of a split; a bad clip yields a Rejected, never stops the run."""
    for ref in itertools.islice(iter_refs(source, split), limit):
        try:
            yield source.load(ref)
        except CfpairError as exc:
            yield Rejected(ref, str(exc))
        except RecursionError as exc:
            yield Rejected(ref, f"nested too deeply ({exc})")


#: registry name -> "module:Class"; modules are imported only when the source is used
SOURCES: dict[str, str] = {
    "synthetic": "cfpair.sources.synthetic:SyntheticSource",
    "deepaccident": "cfpair.sources.deepaccident:DeepAccidentSource",
    "navsim": "cfpair.sources.navsim:NavsimSource",
    "carla": "cfpair.sources.carla:CarlaRecordingSource",
    "scenarionet": "cfpair.sources.scenarionet:ScenarioNetSource",
}


def source_class(name: str) -> type:
    """The class of a registered source (its module imported now). Each class declares
    ``default_splits``, ``needs_root`` and a ``splits()`` method listing the splits on disk."""
    try:
        target = SOURCES[name]
    except KeyError:
        near = difflib.get_close_matches(name, SOURCES, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(f"unknown source {name!r}; {hint}expected one of "
                          f"{sorted(SOURCES)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_source(name: str, root: str | Path | None = None, **options: Any) -> ScenarioSource:
    """Instantiate a registered source by name, importing its module lazily."""
    source_cls = source_class(name)
    return source_cls(root=root, **options) if root is not None else source_cls(**options)
