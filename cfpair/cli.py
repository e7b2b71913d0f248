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
