"""Who owns the files in an output folder: cfpair writes, replaces and removes only its own.

``generate`` and ``export`` write into folders a user names, which may already hold a dataset,
another run, someone's notes or the input itself. The rules, shared by both commands:

- the output folder must not be the input folder, lie inside it or contain it;
- a file cfpair would write is replaced only if cfpair wrote it: a dataset card is recognised by
  its heading, shards and export files by the record (manifest.json / export.json) of the run
  that wrote them; anything else with one of those names is *foreign* and the command refuses;
- ``--overwrite`` removes only files named in that record, never anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfpair.errors import ShardError

CARD_HEADINGS = ("# cfpair counterfactual safety pairs", "# cfpair export: ")
LOCK_NAME = ".cfpair.lock"


def real(path: str | Path) -> Path:
    """``path`` with every symlink resolved (it need not exist)."""
    return Path(path).expanduser().resolve()


def check_apart(dest: str | Path, src: str | Path, what: str, src_what: str) -> None:
    """Refuse a ``dest`` that is ``src``, lies inside it or contains it."""
    d, s = real(dest), real(src)
    if d == s or d.is_relative_to(s) or s.is_relative_to(d):
        rel = "is" if d == s else "is inside" if d.is_relative_to(s) else "contains"
        raise ShardError(f"{what} {dest} {rel} the {src_what} {src}: refusing to write there "
                         f"(it would overwrite or mix with the {src_what}); choose another "
                         "folder")


def is_card(path: Path, heading: str = "") -> bool:
    """Is ``path`` a README.md that cfpair wrote (optionally with a given heading)?"""
    try:
        text = path.read_text(errors="replace")[:20000]
    except OSError:
        return False
    heads = (heading,) if heading else CARD_HEADINGS
    return text.startswith("---\nconfigs:") and any(f"\n{h}" in text for h in heads)


def read_record(path: Path, fmt_key: str, fmt: str) -> dict[str, Any] | None:
    """A JSON record (manifest.json, export.json) that cfpair wrote, None when absent; an
    unreadable or foreign one is an error naming it."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: unreadable ({exc}); it may not be cfpair's, so cfpair will "
                         "not replace it: move it away or choose another folder") from None
    if not isinstance(data, dict) or not str(data.get(fmt_key, "")).startswith(fmt):
        raise ShardError(f"{path} was not written by cfpair ({fmt_key} is not {fmt!r}); "
                         "refusing to touch this folder: move it away or choose another one")
    return data


def rejects_are_ours(path: Path) -> bool:
    """Does a rejects.jsonl hold only cfpair reject entries?"""
    try:
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                if not isinstance(entry, dict) or not {"reason", "scenario_id"} <= set(entry):
                    return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def foreign_in_run(out: Path, owned_shards: set[str], has_manifest: bool) -> list[str]:
    """Files in a generate output folder that cfpair would write over but did not write."""
    bad = []
    if (out / "README.md").exists() and not is_card(out / "README.md", CARD_HEADINGS[0]):
        bad.append("README.md")
    if (out / "rejects.jsonl").exists() and not has_manifest and \
            not rejects_are_ours(out / "rejects.jsonl"):
        bad.append("rejects.jsonl")
    data = out / "data"
    if data.is_dir():
        for p in sorted(data.glob("*.parquet")):
            name = f"data/{p.name}"
            if name not in owned_shards or p.is_symlink():
                bad.append(name)
    return bad


def refuse_foreign(out: Path, bad: list[str]) -> None:
    """The error for foreign files in an output folder."""
    if bad:
        raise ShardError(f"{out} holds files cfpair did not write ({', '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}); cfpair never overwrites or "
                         "removes files it did not write (not even with --overwrite): move "
                         "them away or choose another folder")


def remove_listed(folder: Path, names: list[str]) -> list[str]:
    """Remove the files named (relative to ``folder``) that lie inside it; the names removed."""
    base = real(folder)
    gone = []
    for name in names:
        p = folder / name
        try:
            inside = real(p.parent).is_relative_to(base)
        except OSError:
            inside = False
        if inside and (p.is_file() or p.is_symlink()):
            p.unlink()
            gone.append(name)
    return gone
