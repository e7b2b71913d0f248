"""``cfpair generate``'s flags, made from the config's settings: one name, help and default each.

A setting ``n_candidates`` is the flag ``--n-candidates`` (plus the old spellings in
``ALIASES``), shown with its help and default in the panel of its config part; the values the
user gives are checked by the config's own types, over the settings of a ``--config`` TOML file.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from cfpair.config import GenerateConfig


def help_with_default(text: str, default: str | bool) -> str:
    """Help text with ``[default: X]`` (escaped from rich markup) for a computed default."""
    return f"{text} \\[default: {default}]" if default is not False else text


#: extra spellings kept for old command lines (the first name is the setting's own)
ALIASES = {"n_candidates": ("--candidates",), "splits": ("--split",),
           "source_options": ("-o",)}


def _setting_option(f: Any) -> inspect.Parameter:
    """A typer option for one config setting: its name, help, bound and default."""
    from cfpair.config import default_of, field_parts

    hint = _part_hints()[field_parts()[f.name]][f.name]
    default = default_of(f.name)
    shown = f.metadata.get("shown") or (False if default in (None, "", ()) else
                                        str(default).lower() if isinstance(default, bool)
                                        else str(default))
    flag = "--" + f.name.replace("_", "-")
    extra: dict[str, Any] = {}
    if f.metadata.get("min") is not None and hint in (int, float):
        extra = {"min": f.metadata["min"], "clamp": False}
    if f.name == "source_options":
        flag, annotation = "--source-option", list[str]
    elif hint is bool:
        flag, annotation = f"{flag}/--no-{flag[2:]}", bool
    else:
        annotation = hint if hint in (int, float) else str
    opt = typer.Option(None, flag, *ALIASES.get(f.name, ()),
                       help=help_with_default(f.metadata["help"], shown),
                       show_default=False, metavar=f.metadata.get("metavar") or None,
                       rich_help_panel=f"{_PANELS[field_parts()[f.name]]}", **extra)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                             annotation=annotation)


_PANELS = {"content": "What goes into the records", "label": "LLM labeler (--labeler openai)",
           "client": "LLM server", "execution": "Where and how fast"}


@cache
def _part_hints() -> dict[str, dict[str, Any]]:
    import typing

    from cfpair.config import PARTS

    out = {}
    for part, cls in PARTS.items():
        hints = typing.get_type_hints(cls)
        for name, tp in hints.items():   # X | None -> X, Literal -> str
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if typing.get_origin(tp) is not None and len(args) == 1:
                tp = args[0]
            hints[name] = tp if tp in (int, float, bool, str) else str
        out[part] = hints
    return out


def _parse_options(items: list[str]) -> dict[str, object]:
    """``key=value`` pairs; values parsed as JSON where they can be (numbers, booleans)."""
    from cfpair.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"source_options: expected key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def generate_config(config: str | None, flags: dict[str, Any]) -> GenerateConfig:
    """The run's config: the TOML file's settings, then the flags given on the command line."""
    from cfpair.config import GenerateConfig, check_settings, load_toml

    base = load_toml(config) if config else {}
    given = {k: v for k, v in flags.items() if v is not None}
    if "splits" in given:
        given["splits"] = tuple(s.strip() for s in given["splits"].split(",") if s.strip())
    if "source_options" in given:
        given["source_options"] = {**base.get("source_options", {}),
                                   **_parse_options(given["source_options"])}
    return GenerateConfig(**{**base, **check_settings(given)})


def generate_signature() -> inspect.Signature:
    """``--config`` and one keyword-only typer option per config setting."""
    from cfpair.config import PARTS

    params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                default=typer.Option(None, "--config", metavar="TOML",
                                                     help="TOML file with any of these "
                                                          "settings (flags override it)"))]
    params += [_setting_option(f) for cls in PARTS.values() for f in fields(cls)]  # type: ignore
    return inspect.Signature(params)
