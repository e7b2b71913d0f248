"""The ``cfpair`` command line: each command parses options, builds a config, calls one function."""

from __future__ import annotations

import typer

from cfpair import __version__

app = typer.Typer(
    name="cfpair",
    help="Counterfactual safety pairs for training safer driving VLA models.",
    no_args_is_help=True,
    add_completion=False,
)


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
    candidates: int = typer.Option(256, "--candidates", "-k", min=1, help="ego candidates K"),
    agents: int = typer.Option(32, "--agents", "-n", min=1, help="agents N"),
    steps: int = typer.Option(41, "--steps", "-t", min=2, help="time steps T (0.1 s)"),
    seed: int = typer.Option(1, help="workload seed"),
) -> None:
    """Time cfpair's batched collision check on a random K x N x T workload."""
    from cfpair.geometry.bench import run_self_benchmark

    for line in run_self_benchmark(candidates, agents, steps, seed):
        typer.echo(line)


def _parse_options(items: list[str]) -> dict[str, object]:
    """``key=value`` pairs; values parsed as JSON where they can be (numbers, booleans)."""
    import json

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def llm_line(s: dict[str, float]) -> str:
    """Requests, cache hits, tokens, cost, latency and failures of the LLM labeler."""
    from cfpair.labels.concurrency import timeout_hint
    req = int(s.get("requests", 0))
    replies = int(s.get("replies", 0))
    mean = s.get("latency_s", 0.0) / replies if replies else 0.0
    fails = {k.removeprefix("failed_"): int(v) for k, v in s.items() if k.startswith("failed_")}
    return (f"{req} requests, {int(s.get('cache_hits', 0))} cache hits, "
            f"{int(s.get('prompt_tokens', 0))} + {int(s.get('completion_tokens', 0))} tokens, "
            f"${s.get('cost_usd', 0.0):.4f}, mean latency {mean:.2f} s, "
            f"{int(s.get('retries', 0))} retries, {int(s.get('reasks', 0))} re-asks, "
            f"{int(s.get('format_fallbacks', 0))} format fallbacks, failures "
            + (", ".join(f"{k}: {v}" for k, v in sorted(fails.items())) or "none")
            + (f"; hint: {hint}" if (hint := timeout_hint(s)) else ""))


@app.command()
def generate(
    source: str = typer.Option(None, help="synthetic | deepaccident | navsim | carla "
                               "[default: synthetic]"),
    root: str = typer.Option(None, help="dataset root (not needed for synthetic)"),
    split: str = typer.Option(None, help="comma-separated splits [default: per source]"),
    out: str = typer.Option(None, help="output folder [default: ./cfpair-out]"),
    limit: int = typer.Option(None, min=1, help="at most this many scenes per split"),
    seed: int = typer.Option(None, help="random seed [default: 0]"),
    candidates: int = typer.Option(None, min=8, help="candidates per anchor [default: 256]"),
    shard_size: int = typer.Option(None, min=1, help="scenes per shard [default: 32]"),
    workers: int = typer.Option(None, min=1, help="worker processes [default: 2]"),
    executor: str = typer.Option(None, help="local | dask [default: local]"),
    scheduler: str = typer.Option(None, help="tcp://host:port of an existing Dask cluster"),
    labeler: str = typer.Option(None, help="rules | openai [default: rules]"),
    base_url: str = typer.Option(None, help="OpenAI-compatible endpoint, e.g. "
                                 "http://127.0.0.1:8080/v1 (key from $OPENAI_API_KEY)"),
    model: str = typer.Option(None, help="model name for --labeler openai"),
    api_key_env: str = typer.Option(None, help="env var holding the API key "
                                    "[default: OPENAI_API_KEY]"),
    concurrency: int = typer.Option(None, min=1, help="most LLM requests in flight per "
                                    "worker; starts at 1 and climbs only while throughput "
                                    "grows (use 1 for a single-slot local server) [default: 8]"),
    request_timeout: float = typer.Option(None, min=0.01, help="seconds per LLM request "
                                          "[default: 60]"),
    max_retries: int = typer.Option(None, min=0, help="retries on 429/5xx/timeouts "
                                    "[default: 4]"),
    max_reasks: int = typer.Option(None, min=0, help="re-asks after an invalid or "
                                   "contradicting label [default: 2]"),
    label_fallback: str = typer.Option(None, help="rules | skip when the LLM gives up "
                                       "[default: rules]"),
    response_format: str = typer.Option(None, help="auto | json_schema | json_object "
                                        "[default: auto]"),
    prompt_version: str = typer.Option(None, help="folder under prompts/ [default: v1]"),
    max_tokens: int = typer.Option(None, min=16, help="completion token limit [default: 768]"),
    price_input: float = typer.Option(None, min=0, help="USD per 1M prompt tokens"),
    price_output: float = typer.Option(None, min=0, help="USD per 1M completion tokens"),
    llm_cache: str = typer.Option(None, help="sqlite request cache, 'none' to disable "
                                  "[default: ~/.cache/cfpair/llm-requests.sqlite]"),
    with_images: bool = typer.Option(None, "--with-images/--no-images",
                                     help="attach camera images for vision models"),
    source_option: list[str] = typer.Option(None, "--source-option", "-o",  # noqa: B008
                                            help="source option key=value, repeatable"),
    config: str = typer.Option(None, "--config", help="TOML file with any of these settings"),
    overwrite: bool = typer.Option(False, help="replace an output folder of another config"),
) -> None:
    """Generate counterfactual safety pairs into Parquet shards (resumable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from cfpair.config import GenerateConfig, load_toml
    from cfpair.errors import CfpairError
    from cfpair.pipeline import generate as run
    from cfpair.pipeline import plan

    console = Console(stderr=True)
    try:
        base = load_toml(config) if config else {}
        if source_option:
            base["source_options"] = {**base.get("source_options", {}),
                                      **_parse_options(source_option)}
        cfg = GenerateConfig(**{**base, **{k: v for k, v in dict(
            source=source, root=root, limit=limit, seed=seed, n_candidates=candidates,
            shard_size=shard_size, workers=workers, executor=executor, scheduler=scheduler,
            labeler=labeler, out=out, base_url=base_url, model=model, api_key_env=api_key_env,
            concurrency=concurrency, request_timeout=request_timeout, max_retries=max_retries,
            max_reasks=max_reasks, label_fallback=label_fallback,
            response_format=response_format, prompt_version=prompt_version,
            max_tokens=max_tokens, price_input=price_input, price_output=price_output,
            llm_cache=llm_cache, with_images=with_images,
            splits=tuple(s for s in split.split(",") if s) if split else None,
        ).items() if v is not None}, "overwrite": overwrite or base.get("overwrite", False)})
        total = sum(len(s.refs) for s in plan(cfg))
        with Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("scenes"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console, transient=False) as bar:
            task = bar.add_task("scenes", total=total)
            summary = run(cfg, on_progress=lambda _res, n: bar.advance(task, n))
    except CfpairError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    c = summary.counts
    table = Table(title="cfpair generate", show_header=False)
    table.add_row("source", f"{cfg.source} ({', '.join(cfg.splits)})")
    table.add_row("scenes read", str(c["scenes"]))
    table.add_row("pairs written", f"{c['pairs']} " + ", ".join(
        f"{k}: {v}" for k, v in sorted(c["by_split"].items())))
    table.add_row("rejected", f"{c['rejected']} " + (", ".join(
        f"{k}: {v}" for k, v in sorted(c["rejects_by_reason"].items())) or ""))
    table.add_row("labels", ", ".join(f"{k}: {v}" for k, v in
                                      sorted(c["labels_by_labeler"].items())) or "none")
    table.add_row("label status", ", ".join(f"{k}: {v}" for k, v in
                                            sorted(c["label_status"].items())) or "none")
    if c["contradictions"]:
        table.add_row("contradictions", ", ".join(f"{k}: {v}" for k, v in
                                                  sorted(c["contradictions"].items())))
    if c.get("llm"):
        table.add_row("llm", llm_line(c["llm"]))
    table.add_row("shards", f"{summary.shards_written} written, {summary.shards_resumed} "
                  f"already complete, {summary.shards_total} in all")
    table.add_row("throughput", f"{summary.scenes_per_s:.1f} scenes/s "
                  f"({summary.seconds:.1f} s, {cfg.workers} {cfg.executor} workers)")
    table.add_row("output", str(summary.out.resolve()))
    Console().print(table)
    internal = c["rejects_by_reason"].get("internal_error", 0)
    if internal:
        console.print(f"[bold red]{internal} scene/anchors hit an internal error: a cfpair bug, "
                      "not bad input. See rejects.jsonl (reason internal_error) and please "
                      "report it.[/bold red]")


@app.command()
def validate(
    out: str = typer.Argument(..., help="output folder of cfpair generate"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON report on stdout"),
    no_recompute: bool = typer.Option(False, "--no-recompute",
                                      help="skip measuring the facts again (faster)"),
    show: int = typer.Option(20, help="findings to list in the table"),
) -> None:
    """Check shards against the manifest, the schema, the labels and the geometry."""
    import json

    from rich.console import Console
    from rich.table import Table

    from cfpair.validate import validate as run

    rep = run(out, recompute=not no_recompute)
    if as_json:
        typer.echo(json.dumps(rep.as_json(), indent=1))
    else:
        console = Console()
        table = Table(title=f"cfpair validate {out}: {rep.shards} shards, {rep.rows} rows")
        table.add_column("check")
        table.add_column("result")
        for check, n in rep.by_check().items():
            res = ("[green]ok[/green]" if not n["errors"] else f"[red]{n['errors']} errors[/red]")
            if n["warnings"]:
                res += f", [yellow]{n['warnings']} warnings[/yellow]"
            table.add_row(check, res)
        console.print(table)
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
    out: str = typer.Argument(..., help="output folder of cfpair generate"),
    dest: str = typer.Option(None, "--dest", help="where to write [default: OUT/render]"),
    limit: int = typer.Option(20, min=1, help="pairs to draw"),
    split: str = typer.Option(None, help="only this split"),
    pair_id: list[str] = typer.Option(None, "--id",  # noqa: B008
                                      help="draw these pair ids (repeatable)"),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="grid overview pages"),
    html: bool = typer.Option(False, "--html", help="also a self-contained report.html"),
    cols: int = typer.Option(4, min=1, help="grid columns"),
    dpi: int = typer.Option(110, min=30, help="resolution of the per-pair PNGs"),
) -> None:
    """Bird's-eye PNGs of pairs, grid overviews and an HTML report."""
    from cfpair.errors import CfpairError
    from cfpair.render.run import render as run

    try:
        res = run(out, dest, limit, split, pair_id or None, grid, html, cols, dpi)
    except CfpairError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    where = res.pairs[0].parent if res.pairs else dest
    typer.echo(f"{len(res.pairs)} pair images of {res.rows} rows -> {where}")
    for path in res.grids:
        typer.echo(f"grid: {path}")
    if res.report is not None:
        typer.echo(f"report: {res.report} (open it in a browser; no server needed)")


@app.command()
def export(
    out: str = typer.Argument(..., help="output folder of cfpair generate"),
    fmt: str = typer.Option(..., "--format", "-f",
                            help="trl-sft | trl-dpo | trl-grpo | llamafactory | verl"),
    dest: str = typer.Option(..., "--out", help="folder to write the export to"),
    images: str = typer.Option("camera", help="camera (front camera where the scene has a "
                               "readable one, else the bird's-eye render) | bev (always)"),
    data_root: str = typer.Option(None, help="dataset root of the camera paths "
                                  "[default: the generate run's --root]"),
    split: str = typer.Option(None, help="comma-separated splits [default: all]"),
    limit: int = typer.Option(None, min=1, help="at most this many pairs per split"),
    pixels: int = typer.Option(448, min=64, help="size of the bird's-eye image"),
    overwrite: bool = typer.Option(False, help="write into a non-empty folder that is not a "
                                   "cfpair export (its other files are left alone)"),
) -> None:
    """Export pairs for TRL, LLaMA-Factory or verl (every row with an image)."""
    from cfpair.errors import CfpairError
    from cfpair.export.formats import export as run

    splits = [s.strip() for s in split.split(",") if s.strip()] if split else None
    try:
        res = run(out, dest, fmt, images, data_root, splits, limit, pixels, overwrite)
    except (CfpairError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    rows = ", ".join(f"{k}: {v}" for k, v in res.rows.items())
    imgs = ", ".join(f"{k}: {v}" for k, v in sorted(res.images.items())) or "none"
    typer.echo(f"{fmt}: {sum(res.rows.values())} rows ({rows}) -> {res.dest}")
    typer.echo(f"images: {imgs}")
    if res.skipped:
        typer.echo("skipped: " + ", ".join(f"{k}: {v}" for k, v in res.skipped.items()))
    for path in res.files:
        typer.echo(f"  {path}")


@app.command()
def train(
    out: str = typer.Argument(..., help="output folder of cfpair generate"),
    stage: str = typer.Option("all", help="sft | neg-sft | grpo | all"),
    ablation: bool = typer.Option(False, "--ablation",
                                  help="every arm (SFT, neg-SFT, + GRPO with / without "
                                       "anchors, SFT + anchor GRPO, Lagrangian) over --seeds "
                                       "on one data set; benchmarks/ablation.py adds data "
                                       "seeds and significance tests"),
    seeds: str = typer.Option("0,1,2", help="comma-separated training seeds for --ablation "
                              "(the scenes come from generate's --source-option seed=N)"),
    seed: int = typer.Option(0, help="training seed of a single stage run"),
    device: str = typer.Option("auto", help="auto (cuda when present) | cpu | cuda"),
    lagrangian: bool = typer.Option(False, help="GRPO with the Lagrangian collision cost"),
    checkpoints: str = typer.Option(None, help="checkpoint folder [default: OUT/train]"),
    scale: float = typer.Option(1.0, min=0.0001, help="multiply every stage's steps (quick "
                                "runs: 0.05)"),
) -> None:
    """Train the bundled tiny VLA on the pairs and evaluate it on held-out scenes."""
    from dataclasses import replace
    from pathlib import Path

    try:
        from cfpair.train import run as tr
    except ImportError as exc:
        typer.echo(f"error: cfpair train needs torch: pip install 'cfpair[train]' ({exc})",
                   err=True)
        raise typer.Exit(2) from exc
    from cfpair.errors import CfpairError

    cfg = tr.TrainConfig().scaled(scale)
    if lagrangian:
        cfg = replace(cfg, grpo=replace(cfg.grpo, lagrangian=True))
    try:
        data = tr.load_split(out)
        dev = tr.pick_device(device)
        typer.echo(f"{len(data.train)} training pairs, {len(data.held)} held-out pairs "
                   f"(scenario-disjoint), device {dev}")
        if not ablation:
            tr.run_stage(data, stage, seed, dev, cfg, Path(checkpoints or Path(out) / "train"),
                      typer.echo)
            return
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        table = tr.ablation(data, seed_list, dev, cfg, typer.echo)
    except (CfpairError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    keys = tr.TABLE_KEYS
    typer.echo(f"\nheld-out metrics, mean ± std over seeds {seed_list}")
    typer.echo("| arm | " + " | ".join(keys) + " |")
    typer.echo("|---|" + "---|" * len(keys))
    for arm in tr.ARMS:
        typer.echo(f"| {arm} | " + " | ".join(f"{table[arm][k][0]:.3f} ± {table[arm][k][1]:.3f}"
                                          for k in keys) + " |")
    base, best = table[tr.ARMS[0]], table[tr.ARMS[2]]
    if base["collision_rate"][0] > 0:
        rel = best["collision_rate"][0] / base["collision_rate"][0] - 1
        typer.echo(f"neg-SFT + anchor GRPO vs SFT: collision rate {rel:+.0%} (relative), "
                   f"PDMS {base['pdms'][0]:.3f} -> {best['pdms'][0]:.3f}")
