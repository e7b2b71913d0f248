"""Run configuration: typed parts (content, label, client, execution) under one set of names.

The same names are TOML keys (flat, or inside a ``[content]``/``[label]``/``[client]``/
``[execution]`` table), ``generate`` flags (``n_candidates`` -> ``--n-candidates``) and Python
keyword arguments (``GenerateConfig(n_candidates=64, workers=1)``). Every value is checked
against its field's type when a part is built, so a bad value is a ``ConfigError`` naming the
key. The hash covers the parts that decide what is written, by construction: ``content``
always, ``label`` when the LLM labeler writes the labels; ``client`` (how the LLM is reached)
and ``execution`` (where and how fast) never enter it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cfpair.errors import ConfigError

if TYPE_CHECKING:
    from cfpair.labels.llm import LLMSettings

DEFAULT_LLM_CACHE = "~/.cache/cfpair/llm-requests.sqlite"


def _f(default: Any, help: str, minimum: float | None = None, *, above: bool = False,
       metavar: str = "", shown: str | None = None) -> Any:
    """A config field with its help text, lower bound (``above``: strictly greater), the
    placeholder and default shown by ``--help`` (``shown``: when the default is computed)."""
    meta = {"help": help, "min": minimum, "above": above, "metavar": metavar, "shown": shown}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", tuple: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    shown = json.dumps(value) if isinstance(value, bool) or value is None else repr(value)
    return f"{shown} ({kind})"


#: what a value of each plain type must be, and how an error says it
_PLAIN: dict[Any, tuple[Any, str, str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false", "booleans"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", "integers"),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number",
            "numbers"),
    str: (lambda v: isinstance(v, str), "a string", "strings"),
    Path: (lambda v: isinstance(v, str), "a path", "paths"),
}


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp``; lists become tuples for tuple fields.
    Types other than these plain ones, tuples, tables, unions and Literals are not checked."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for inner in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, inner)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            near = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{key}: expected one of {', '.join(map(str, args))}, got "
                              f"{_describe(value)}{hint}")
        return value
    if origin is tuple:
        inner = args[0] if args else Any
        if not isinstance(value, list | tuple) or not all(
                _PLAIN.get(inner, (lambda v: True,))[0](v) for v in value):
            what = f"a list of {_PLAIN[inner][2]}" if inner in _PLAIN else "a list"
            raise ConfigError(f"{key}: expected {what}, got {_describe(value)}")
        return tuple(float(v) for v in value) if inner is float else tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of key = value, got {_describe(value)}")
        return dict(value)
    if tp not in _PLAIN:
        return value
    ok, want, _ = _PLAIN[tp]
    if not ok(value):
        raise ConfigError(f"{key}: expected {want}, got {_describe(value)}")
    return float(value) if tp is float else value


def check_source_options(cls: type, options: dict[str, Any]) -> None:
    """Each source option must be a keyword of the source's constructor, of its type."""
    import inspect

    params = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "root")]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    for key, value in options.items():
        if key not in params:
            near = difflib.get_close_matches(key, params, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"source_options: source {cls.name!r} has no option {key!r}{hint} "
                              f"(options: {', '.join(params) or 'none'})")
        if key in hints:
            tp = hints[key]
            whole = isinstance(value, float) and value.is_integer()
            if whole and int in (tp, *typing.get_args(tp)):
                continue    # a whole number written 1e12 (-o n_scenes=1e12): the source takes it
            _coerce(f"source_options.{key}", value, tp)


class _Part:
    """Checks every field of a frozen dataclass part against its annotation and bound."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            lo = f.metadata.get("min")
            if lo is not None and value is not None and (
                    value <= lo if f.metadata.get("above") else value < lo):
                raise ConfigError(f"{f.name}: must be {'>' if f.metadata['above'] else '>='} "
                                  f"{lo}, got {value!r}")
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class ContentSettings(_Part):
    """What goes into the records: always hashed."""

    source: str = _f("synthetic", "synthetic | deepaccident | navsim | carla | scenarionet",
                         metavar="NAME")
    root: str | None = _f(None, "dataset root (not needed for synthetic)",
                            metavar="DIR")
    splits: tuple[str, ...] = _f((), "comma-separated splits", metavar="A,B",
                                   shown="the source's own")
    limit: int | None = _f(None, "at most this many scenes per split", 1,
                           metavar="N", shown="all")
    seed: int = _f(0, "random seed", metavar="N")
    n_candidates: int = _f(256, "candidate trajectories per anchor", 8, metavar="K")
    max_anchors: int | None = _f(None, "at most this many anchors per scene", 1,
                                 metavar="N", shown="all")
    shard_size: int = _f(32, "scenes per shard", 1, metavar="N")
    labeler: str = _f("rules", "rules | openai | a labeler registered with "
                      "cfpair.labels.base.register", metavar="NAME")
    source_options: dict[str, Any] = _f({}, "source option key=value (repeatable), e.g. "
                                         "n_scenes=12 (synthetic), require_map=false (navsim: "
                                         "run without maps on purpose)",
                                         metavar="KEY=VALUE", shown="none")


@dataclass(frozen=True)
class LabelSettings(_Part):
    """What the LLM labeler writes: hashed when ``labeler`` is ``openai``."""

    model: str | None = _f(None, "model name (required with --labeler openai)",
                           metavar="NAME")
    response_format: Literal["auto", "json_schema", "json_object"] = _f(
        "auto", "auto | json_schema | json_object", metavar="MODE")
    max_reasks: int = _f(2, "re-asks after an invalid or contradicting label", 0,
                         metavar="N")
    label_fallback: Literal["rules", "skip"] = _f("rules", "rules | skip when the LLM gives up",
                                                  metavar="NAME")
    temperature: float = _f(0.0, "sampling temperature", 0.0, metavar="T")
    max_tokens: int = _f(768, "completion token limit", 16, metavar="N")
    prompt_version: str = _f("v1", "prompt templates shipped in cfpair/labels/prompts/",
                             metavar="NAME")
    with_images: bool = _f(False, "attach camera images for vision models")


@dataclass(frozen=True)
class ClientSettings(_Part):
    """How the LLM server is reached and paid: never hashed."""

    base_url: str | None = _f(None, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1",
                                metavar="URL", shown="the OpenAI API")
    api_key_env: str = _f("OPENAI_API_KEY", "environment variable holding the API key",
                          metavar="NAME")
    concurrency: int = _f(8, "most LLM requests in flight per worker; with adaptive, starts at "
                          "1 and climbs only while throughput grows (use 1 for a single-slot "
                          "local server)", 1, metavar="N")
    adaptive: bool = _f(True, "adapt the requests in flight to the server's throughput "
                        "(halve on a timeout); off: always concurrency")
    probe_slots: bool = _f(True, "cap concurrency at a llama.cpp server's slot count "
                           "(its /props)")
    request_timeout: float = _f(60.0, "seconds per LLM request", 0.0, above=True,
                                 metavar="SECONDS")
    max_retries: int = _f(4, "retries on 429/5xx/timeouts", 0, metavar="N")
    price_input: float = _f(0.0, "USD per 1M prompt tokens", 0.0, metavar="USD")
    price_output: float = _f(0.0, "USD per 1M completion tokens", 0.0, metavar="USD")
    max_reply_bytes: int = _f(262_144, "largest reply body read (bigger: failed_oversize)",
                              1024, metavar="BYTES")
    llm_cache: str | None = _f(DEFAULT_LLM_CACHE, "sqlite request cache, 'none' to disable",
                                metavar="PATH")


@dataclass(frozen=True)
class ExecutionSettings(_Part):
    """Where the output goes and how fast it is made: never hashed."""

    out: str = _f("cfpair-out", "output folder", metavar="DIR")
    workers: int = _f(2, "worker processes", 1, metavar="N")
    executor: Literal["local", "dask"] = _f("local", "local | dask", metavar="NAME")
    scheduler: str | None = _f(None, "tcp://host:port of a running Dask scheduler",
                                metavar="URL", shown="a local cluster")
    overwrite: bool = _f(False, "replace an output folder written with another config")


PARTS: dict[str, type[_Part]] = {"content": ContentSettings, "label": LabelSettings,
                                 "client": ClientSettings, "execution": ExecutionSettings}


@cache
def field_parts() -> dict[str, str]:
    """Every setting name -> the part that holds it (names are unique across parts)."""
    return {f.name: part for part, cls in PARTS.items() for f in fields(cls)}  # type: ignore


def setting(name: str) -> Any:
    """The dataclass field of a setting (its default and ``metadata['help']``)."""
    return next(f for f in fields(PARTS[field_parts()[name]]) if f.name == name)  # type: ignore


def default_of(name: str) -> Any:
    """The default value of a setting."""
    f = setting(name)
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def unknown_key(key: str, where: str = "") -> ConfigError:
    """A ConfigError for an unknown setting, with the nearest valid name."""
    near = difflib.get_close_matches(key, list(field_parts()) + list(PARTS), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return ConfigError(f"{where}unknown setting {key!r}{hint} (settings: "
                       f"{', '.join(sorted(field_parts()))})")


def _group(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {p: {} for p in PARTS}
    for key, value in flat.items():
        if key not in field_parts():
            raise unknown_key(key)
        grouped[field_parts()[key]][key] = value
    return grouped


@dataclass(frozen=True, init=False)
class GenerateConfig:
    """Everything ``cfpair generate`` needs, as four typed parts. Built from parts or from flat
    setting names (``GenerateConfig(source="navsim", root=..., workers=1)``); every setting is
    also readable flat (``cfg.workers``)."""

    content: ContentSettings
    label: LabelSettings
    client: ClientSettings
    execution: ExecutionSettings

    def __init__(self, content: ContentSettings | None = None, label: LabelSettings | None = None,
                 client: ClientSettings | None = None,
                 execution: ExecutionSettings | None = None, **settings: Any) -> None:
        given = {"content": content, "label": label, "client": client, "execution": execution}
        for name, kw in _group(settings).items():
            part = given[name] or PARTS[name]()
            object.__setattr__(self, name, replace(part, **kw) if kw else part)  # type: ignore
        self._resolve()

    def _resolve(self) -> None:
        """Cross-field rules and the source's own defaults (its splits, whether it needs a root)."""
        from cfpair.sources.base import source_class

        c = self.content
        cls = source_class(c.source)
        if not c.splits:
            object.__setattr__(self, "content", replace(c, splits=tuple(cls.default_splits)))
        check_source_options(cls, c.source_options)
        if getattr(cls, "needs_root", True) and c.root is None:
            raise ConfigError(f"root: --root is required for source {c.source!r}")
        _check_labeler(c.labeler)
        if c.labeler == "openai":
            if not self.label.model:
                raise ConfigError("model: --model is required with --labeler openai")
            self.llm_settings()     # the prompt version must exist
        if self.execution.scheduler and self.execution.executor != "dask":
            raise ConfigError("scheduler: only used with --executor dask")

    def __getattr__(self, name: str) -> Any:
        part = field_parts().get(name)
        if part is None:
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, part), name)

    def updated(self, **settings: Any) -> GenerateConfig:
        """A copy with these settings (flat names) changed."""
        return GenerateConfig(self.content, self.label, self.client, self.execution, **settings)

    def llm_settings(self) -> LLMSettings:
        """The LLM labeler's settings: the label and client parts, under the same names."""
        from cfpair.labels.llm import LLMSettings

        cache_path = self.client.llm_cache
        cache_path = None if cache_path in (None, "", "none") else str(
            Path(cache_path).expanduser())
        return LLMSettings(**{**asdict(self.label), **asdict(self.client),
                              "llm_cache": cache_path, "model": self.label.model or ""},
                           image_root=self.content.root)

    def hashed(self) -> dict[str, Any]:
        """The settings that determine the records: what the hash covers."""
        d = asdict(self.content)
        d["splits"] = list(self.content.splits)
        if self.content.labeler == "openai":
            d.update(asdict(self.label))
        return d

    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`hashed` (first 16 hex digits)."""
        blob = json.dumps(self.hashed(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_labeler(name: str) -> None:
    """``name`` must be a built-in labeler or one registered in ``cfpair.labels.base``."""
    from cfpair.labels.base import BUILTIN, REGISTRY

    known = list(BUILTIN) + sorted(set(REGISTRY) - set(BUILTIN))
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"labeler: expected one of {', '.join(known)}, got "
                          f"{_describe(name)}{hint}")


def check_settings(flat: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Each value checked against its setting's type (names and types only; the cross-field
    rules wait until the config is built)."""
    hints = {p: typing.get_type_hints(cls) for p, cls in PARTS.items()}
    out = {}
    for key, value in flat.items():
        part = field_parts().get(key)
        if part is None:
            raise unknown_key(key, where)
        try:
            out[key] = _coerce(key, value, hints[part][key])
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config into flat settings; a bad key or value names the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read TOML config ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in PARTS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table, got {_describe(value)}")
            for sub, v in value.items():
                if field_parts().get(sub) != key:
                    raise unknown_key(sub, f"{path}: [{key}] ")
                flat[sub] = v
        else:
            flat[key] = value
    return check_settings(flat, f"{path}: ")
