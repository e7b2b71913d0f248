"""The ``cfpair`` command line: each command parses options, builds a config, calls one function.

Only errors cfpair raises on purpose (:class:`cfpair.errors.CfpairError`) become a one-line
``error:`` and exit 2; anything else is a bug and shows its traceback. ``--out`` always names
where a command writes; ``generate``'s options are the config's settings, one name each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.core

from cfpair import __version__
from cfpair.errors import CfpairError
from cfpair.flags import generate_config, generate_signature, help_with_default

if TYPE_CHECKING:
    pass


def _quiet_types() -> None:
    """typer prints Python types next to every parameter (``<str>``, ``<int range>``) and
    braces around arguments (``{out}``); cfpair's help shows placeholders (DIR, N) instead."""
    def placeholder(self: Any, ctx: Any) -> str | None:
        flag = getattr(self, "is_flag", False) or self.param_type_name == "argument"
        return None if flag else self.metavar

    for cls in (getattr(typer.core, "TyperArgument", None), getattr(typer.core, "TyperOption",
                                                                        None)):
        if cls is not None and hasattr(cls, "display_type_rich"):
            cls.display_type_rich = placeholder
    arg = getattr(typer.core, "TyperArgument", None)
    if arg is not None and hasattr(arg, "_usage_display_name"):
        arg._usage_display_name = lambda self: (self.display_name_raw if self.required
                                                else f"[{self.display_name_raw}]")


_quiet_types()
app = typer.Typer(name="cfpair", no_args_is_help=True, add_completion=False,
                  help="Counterfactual safety pairs for training safer driving VLA models.",
                  pretty_exceptions_show_locals=False)


@contextmanager
def _errors() -> Iterator[None]:
    """A CfpairError is a one-line ``error:`` and exit 2; Ctrl-C is a line and exit 130."""
    try:
        yield
    except CfpairError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _echo_table(table: Any) -> None:
    from rich.console import Console

    Console().print(table)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cfpair {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """cfpair: risky driving clips in, counterfactual safety pairs out."""


@app.command("bench-geometry")
def bench_geometry(
    candidates: int = typer.Option(256, "--candidates", "-k", min=1, metavar="K",
                                   help="ego candidates"),
    agents: int = typer.Option(32, "--agents", "-n", min=1, metavar="N", help="agents"),
    steps: int = typer.Option(41, "--steps", "-t", min=2, metavar="T",
                              help="time steps (0.1 s)"),
    seed: int = typer.Option(1, metavar="N", help="workload seed"),
) -> None:
    """Time cfpair's batched collision check on a random K x N x T workload."""
    from cfpair.geometry.bench import run_self_benchmark

    for line in run_self_benchmark(candidates, agents, steps, seed):
        typer.echo(line)


# --- generate: its options are the config's settings -------------------------------------

def generate(config: str | None = None, **flags: Any) -> None:
    """Generate counterfactual safety pairs into Parquet shards (resumable)."""
    from cfpair import progress
    from cfpair.pipeline import generate as run
    from cfpair.summary import generate_table, interrupted_line

    planned: list[int] = [0]
    with _errors():
        cfg = generate_config(config, flags)
        try:
            with progress.shown():
                advance: list[Callable[[int], None]] = []

                def on_plan(specs: list[Any]) -> None:
                    planned[0] = len(specs)
                    advance.append(progress.task("generate", sum(len(s.refs) for s in specs),
                                                 "scenes"))

                summary = run(cfg, on_progress=lambda _res, n: advance[0](n), on_plan=on_plan)
        except KeyboardInterrupt:
            typer.echo(interrupted_line(cfg.out, planned[0]), err=True)
            raise typer.Exit(130) from None
    _echo_table(generate_table(cfg, summary))
    internal = summary.counts["rejects_by_reason"].get("internal_error", 0)
    if internal:
        from rich.console import Console

        Console(stderr=True).print(
            f"[bold red]{internal} scene/anchors hit an internal error: a cfpair bug, not bad "
            "input. See rejects.jsonl (reason internal_error) and please report it.[/bold red]")


generate.__signature__ = generate_signature()  # type: ignore[attr-defined]
generate.__annotations__ = {p.name: p.annotation  # typer reads both
                            for p in generate.__signature__.parameters.values()}  # type: ignore
app.command("generate")(generate)


# --- the commands on an output folder -------------------------------------------------------

DIR = typer.Argument(..., metavar="DIR", help="output folder of cfpair generate")


@app.command()
def validate(
    out: str = DIR,
    as_json: bool = typer.Option(False, "--json", help="print a JSON report on stdout"),
    no_recompute: bool = typer.Option(False, "--no-recompute",
                                      help="skip measuring the facts again (faster)"),
    show: int = typer.Option(20, metavar="N", help="findings to list"),
) -> None:
    """Check shards against the manifest, the schema, the labels and the geometry."""
    from cfpair import progress
    from cfpair.summary import validate_table
    from cfpair.validate import validate as run

    with _errors():
        with progress.shown():
            rep = run(out, recompute=not no_recompute)
    if as_json:
        typer.echo(json.dumps(rep.as_json(), indent=1))
        raise typer.Exit(0 if rep.ok else 1)
    from rich.console import Console

    console = Console()
    console.print(validate_table(out, rep))
    for f in rep.findings[:show]:
        colour = "red" if f.severity == "error" else "yellow"
        console.print(f"[{colour}]{f.severity}[/{colour}] {f.check} {f.where}: {f.message}",
                      highlight=False)
    if len(rep.findings) > show:
        console.print(f"... {len(rep.findings) - show} more (use --json)")
    console.print("[green]valid[/green]" if rep.ok else
                  "[red]INVALID (incomplete run)[/red]" if rep.incomplete else
                  "[red]INVALID[/red]")
    raise typer.Exit(0 if rep.ok else 1)


@app.command()
def render(
    out: str = DIR,
    dest: str = typer.Option(None, "--out", metavar="DIR", show_default=False,
                             help=help_with_default("where to write the pictures", "DIR/render")),
    old_dest: str = typer.Option(None, "--dest", hidden=True, help="old name of --out"),
    limit: int = typer.Option(20, min=1, metavar="N", help="pairs to draw"),
    split: str = typer.Option(None, metavar="NAME", show_default=False,
                              help=help_with_default("only this split", "all")),
    pair_id: list[str] = typer.Option(None, "--id", metavar="PAIR_ID",  # noqa: B008
                                      help="draw these pairs (repeatable)"),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="grid overview pages"),
    html: bool = typer.Option(False, "--html", help="also a self-contained report.html"),
    cols: int = typer.Option(4, min=1, metavar="N", help="grid columns"),
    dpi: int = typer.Option(110, min=30, metavar="N", help="resolution of the per-pair PNGs"),
) -> None:
    """Bird's-eye PNGs of pairs, grid overviews and an HTML report."""
    from cfpair import progress
    from cfpair.api import output_folder
    from cfpair.render.run import render as run
    from cfpair.summary import render_lines

    with _errors():
        output_folder(out)
        target = Path(dest or old_dest or Path(out) / "render")
        with progress.shown():
            res = run(out, target, limit, split, pair_id or None, grid, html, cols, dpi)
    for line in render_lines(res, target):
        typer.echo(line)


@app.command()
def export(
    out: str = DIR,
    fmt: str = typer.Option(..., "--format", "-f", metavar="FORMAT",
                            help="trl-sft | trl-dpo | trl-grpo | llamafactory | verl"),
    dest: str = typer.Option(..., "--out", metavar="DIR", help="folder to write the export to"),
    images: str = typer.Option("camera", metavar="KIND",
                               help="camera (the front camera where the scene has a readable "
                                    "one, else the bird's-eye render) | bev (always)"),
    data_root: str = typer.Option(None, metavar="DIR", show_default=False,
                                  help=help_with_default("dataset root of the camera paths",
                                             "the generate run's --root")),
    split: str = typer.Option(None, metavar="A,B", show_default=False,
                              help=help_with_default("comma-separated splits", "all")),
    limit: int = typer.Option(None, min=1, metavar="N", show_default=False,
                              help=help_with_default("at most this many pairs per split", "all")),
    pixels: int = typer.Option(448, min=64, metavar="N", help="size of the bird's-eye image"),
    overwrite: bool = typer.Option(False, "--overwrite", show_default=False,
                                   help="write into a non-empty folder that is not a cfpair "
                                        "export (its other files are left alone)"),
) -> None:
    """Export pairs for TRL, LLaMA-Factory or verl (every row with an image)."""
    from cfpair import progress
    from cfpair.api import output_folder
    from cfpair.export.formats import export as run
    from cfpair.summary import export_lines

    splits = [s.strip() for s in split.split(",") if s.strip()] if split else None
    with _errors():
        output_folder(out)
        with progress.shown():
            res = run(out, dest, fmt, images, data_root, splits, limit, pixels, overwrite)
    for line in export_lines(res, fmt):
        typer.echo(line)


@app.command()
def train(
    out: str = DIR,
    stage: str = typer.Option("all", metavar="STAGE", help="sft | neg-sft | grpo | all"),
    ablation: bool = typer.Option(False, "--ablation",
                                  help="every arm (SFT, neg-SFT, + GRPO with / without "
                                       "anchors, SFT + anchor GRPO, Lagrangian) over --seeds "
                                       "on one data set; the table is saved as ablation.md "
                                       "and ablation.json next to the checkpoints; "
                                       "benchmarks/ablation.py adds data seeds and "
                                       "significance tests"),
    seeds: str = typer.Option("0,1,2", metavar="A,B", help="comma-separated training seeds for "
                              "--ablation (the scenes come from generate's --source-option "
                              "seed=N)"),
    seed: int = typer.Option(0, metavar="N", help="training seed of a single stage run"),
    device: str = typer.Option("auto", metavar="NAME", help="auto (cuda when present) | cpu | "
                                                          "cuda"),
    lagrangian: bool = typer.Option(False, help="GRPO with the Lagrangian collision cost"),
    ckpt: str = typer.Option(None, "--out", metavar="DIR", show_default=False,
                             help=help_with_default("checkpoint folder", "DIR/train")),
    old_ckpt: str = typer.Option(None, "--checkpoints", hidden=True, help="old name of --out"),
    scale: float = typer.Option(1.0, min=0.0001, metavar="X",
                                help="multiply every stage's steps (quick runs: 0.05)"),
) -> None:
    """Train the bundled tiny VLA on the pairs and evaluate it on held-out scenes."""
    from dataclasses import replace

    from cfpair import progress
    from cfpair.api import output_folder
    from cfpair.summary import ablation_json, ablation_markdown
    from cfpair.train.seeds import reported_seed_note

    with _errors():
        output_folder(out)
        try:
            from cfpair.train import run as tr
        except ImportError as exc:
            raise CfpairError(f"cfpair train needs torch: pip install 'cfpair[train]' "
                              f"({exc})") from None
        cfg = tr.TrainConfig().scaled(scale)
        if lagrangian:
            cfg = replace(cfg, grpo=replace(cfg.grpo, lagrangian=True))
        seed_list = [int(s) for s in seeds.split(",") if s.strip().lstrip("-").isdigit()]
        if ablation and not seed_list:
            raise CfpairError(f"--seeds: expected comma-separated integers, got {seeds!r}")
        target = Path(ckpt or old_ckpt or Path(out) / "train")
        data = tr.load_split(out)
        note = reported_seed_note(out)
        if note:
            typer.echo(note, err=True)
        dev = tr.pick_device(device)
        typer.echo(f"{len(data.train)} training pairs, {len(data.held)} held-out pairs "
                   f"(scenario-disjoint), device {dev}")
        with progress.shown():
            if not ablation:
                tr.run_stage(data, stage, seed, dev, cfg, target, typer.echo)
                return
            table = tr.ablation(data, seed_list, dev, cfg, typer.echo)
        md = ablation_markdown(table, seed_list, tr.TABLE_KEYS)
        target.mkdir(parents=True, exist_ok=True)
        (target / "ablation.md").write_text(md)
        (target / "ablation.json").write_text(json.dumps(ablation_json(table, seed_list),
                                                         indent=1) + "\n")
    typer.echo("\n" + md + f"saved: {target / 'ablation.md'}, {target / 'ablation.json'}")


@app.command()
def show(
    out: str = DIR,
    pair_id: str = typer.Argument(..., metavar="PAIR_ID", help="the pair's id"),
    picture: bool = typer.Option(True, "--picture/--no-picture",
                                 help="draw the pair's picture if it is not there yet"),
) -> None:
    """One pair: its facts side by side (expert / negative / positive), label and picture."""
    from cfpair.show import show as run

    with _errors():
        shown = run(out, pair_id, picture)
    _echo_table(shown.facts)
    _echo_table(shown.label)
    typer.echo(f"picture: {shown.picture}" if shown.picture.is_file()
               else "picture: none (run without --no-picture to draw it)")


@app.command()
def stats(
    out: str = DIR,
    as_json: bool = typer.Option(False, "--json", help="print the counts as JSON"),
) -> None:
    """Counts by split, source, hazard, risk level, operator and reject reason."""
    from rich.table import Table

    from cfpair.stats import stats as run

    with _errors():
        counts = run(out)
    if as_json:
        typer.echo(json.dumps(counts, indent=1))
        return
    table = Table(title=f"cfpair stats {out}")
    for col in ("by", "value", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for title, values in counts.items():
        for i, (key, n) in enumerate(values.items() or [("none", 0)]):
            table.add_row(title if i == 0 else "", key, str(n),
                          end_section=i == max(len(values), 1) - 1)
    _echo_table(table)
