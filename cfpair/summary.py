"""What each command tells the user when it is done: grammatical lines and rich tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from cfpair.config import GenerateConfig
    from cfpair.export.formats import ExportResult
    from cfpair.pipeline import RunSummary
    from cfpair.render.run import RenderResult
    from cfpair.validate import Report

def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 pair``, ``2 pairs``, ``0 pairs``."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def breakdown(counts: Mapping[str, int]) -> str:
    """``test: 10, train: 94`` (sorted by key), or ``none``."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def total_with(n: int, word: str, counts: Mapping[str, int]) -> str:
    """``112 pairs (test: 10, train: 94, val: 8)``."""
    return plural(n, word) + (f" ({breakdown(counts)})" if counts else "")


def llm_line(s: Mapping[str, float]) -> str:
    """Requests, cache hits, tokens, cost, latency and failures of the LLM labeler, and a hint
    when requests timed out."""
    from cfpair.labels.concurrency import timeout_hint

    replies = int(s.get("replies", 0))
    mean = s.get("latency_s", 0.0) / replies if replies else 0.0
    fails = {k.removeprefix("failed_"): int(v) for k, v in s.items() if k.startswith("failed_")}
    return (f"{plural(int(s.get('requests', 0)), 'request')}, "
            f"{plural(int(s.get('cache_hits', 0)), 'cache hit')}, "
            f"{int(s.get('prompt_tokens', 0))} + {int(s.get('completion_tokens', 0))} tokens, "
            f"${s.get('cost_usd', 0.0):.4f}, mean latency {mean:.2f} s, "
            f"{plural(int(s.get('retries', 0)), 'retry', 'retries')}, "
            f"{plural(int(s.get('reasks', 0)), 're-ask')}, "
            f"{plural(int(s.get('format_fallbacks', 0)), 'format fallback')}, failures "
            + breakdown(fails) + (f"; hint: {hint}" if (hint := timeout_hint(dict(s))) else ""))


def generate_table(cfg: GenerateConfig, summary: RunSummary) -> Table:
    """The table ``cfpair generate`` prints at the end."""
    c = summary.counts
    table = Table(title="cfpair generate", show_header=False)
    table.add_row("source", f"{cfg.source} ({', '.join(cfg.splits)})")
    table.add_row("scenes read", plural(c["scenes"], "scene"))
    table.add_row("pairs written", total_with(c["pairs"], "pair", c["by_split"]))
    table.add_row("rejected", total_with(c["rejected"], "scene/anchor", c["rejects_by_reason"]))
    if c["rejects_by_reason"].get("internal_error"):
        table.add_row("[red]internal errors[/red]",
                      f"[red]{c['rejects_by_reason']['internal_error']} (a bug in cfpair: "
                      "see rejects.jsonl and report it)[/red]")
    table.add_row("labels", breakdown(c["labels_by_labeler"]))
    table.add_row("label status", breakdown(c["label_status"]))
    if c["contradictions"]:
        table.add_row("contradictions", breakdown(c["contradictions"]))
    if c.get("llm"):
        table.add_row("llm", llm_line(c["llm"]))
    table.add_row("shards", f"{summary.shards_written} written, {summary.shards_resumed} "
                  f"already complete, {summary.shards_total} in all")
    workers = plural(cfg.workers, f"{cfg.executor} worker")
    if c.get("scenes_this_run"):
        speed = f"{summary.scenes_per_s:.1f} scenes/s ({summary.seconds:.1f} s, {workers})"
    else:
        speed = f"nothing to do: every shard was already complete ({summary.seconds:.1f} s)"
    table.add_row("throughput", speed)
    table.add_row("output", str(summary.out.resolve()))
    return table


def interrupted_line(out: str | Path, shards_total: int) -> str:
    """What a Ctrl-C leaves behind, read from the manifest, and how to go on."""
    done = 0
    try:
        done = len(json.loads((Path(out) / "manifest.json").read_text()).get("shards", {}))
    except (OSError, ValueError, AttributeError):
        pass
    if not shards_total:
        return "interrupted before the first shard; nothing was written"
    return (f"interrupted: {done} of {plural(shards_total, 'shard')} written to {out}; "
            "re-run the same command to resume")


def export_lines(res: ExportResult, fmt: str) -> list[str]:
    """What ``cfpair export`` wrote."""
    lines = [f"{fmt}: {total_with(sum(res.rows.values()), 'row', res.rows)} -> {res.dest}",
             f"images: {breakdown(res.images)}"]
    if res.skipped:
        lines.append(f"skipped: {breakdown(res.skipped)}")
    return lines + [f"  {p}" for p in res.files]


def render_lines(res: RenderResult, dest: Path) -> list[str]:
    """What ``cfpair render`` wrote."""
    where = res.pairs[0].parent if res.pairs else dest
    lines = [f"{plural(len(res.pairs), 'pair image')} of {plural(res.rows, 'row')} -> {where}"]
    lines += [f"grid: {p}" for p in res.grids]
    if res.report is not None:
        lines.append(f"report: {res.report} (open it in a browser; no server needed)")
    return lines


def validate_table(out: str, rep: Report) -> Table:
    """Per-check results of ``cfpair validate``."""
    table = Table(title=f"cfpair validate {out}: {plural(rep.shards, 'shard')}, "
                        f"{plural(rep.rows, 'row')}")
    table.add_column("check")
    table.add_column("result")
    for check, n in rep.by_check().items():
        res = (f"[red]{plural(n['errors'], 'error')}[/red]" if n["errors"]
               else "[green]ok[/green]")
        if n["warnings"]:
            res += f", [yellow]{plural(n['warnings'], 'warning')}[/yellow]"
        table.add_row(check, res)
    return table


def ablation_markdown(table: Mapping[str, Mapping[str, tuple[float, float]]],
                      seeds: list[int], keys: tuple[str, ...]) -> str:
    """The ablation as a Markdown table (mean ± std over seeds) of the metrics ``keys``
    (``cfpair.train.run.TABLE_KEYS``, in column order), with the headline change."""
    arms = list(table)
    lines = [f"held-out metrics, mean ± std over seeds {seeds}", "",
             "| arm | " + " | ".join(keys) + " |",
             "|---|" + "---|" * len(keys)]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(
            f"{table[arm][k][0]:.3f} ± {table[arm][k][1]:.3f}" for k in keys) + " |")
    if len(arms) >= 3 and table[arms[0]]["collision_rate"][0] > 0:
        base, best = table[arms[0]], table[arms[2]]
        rel = best["collision_rate"][0] / base["collision_rate"][0] - 1
        lines += ["", f"{arms[2]} vs {arms[0]}: collision rate {rel:+.0%} (relative), "
                      f"PDMS {base['pdms'][0]:.3f} -> {best['pdms'][0]:.3f}"]
    return "\n".join(lines) + "\n"


def ablation_json(table: Mapping[str, Mapping[str, tuple[float, float]]],
                  seeds: list[int]) -> dict[str, Any]:
    """The ablation as JSON: seeds and, per arm and metric, mean and std."""
    return {"seeds": seeds, "arms": {arm: {k: {"mean": m, "std": s}
                                           for k, (m, s) in row.items()}
                                     for arm, row in table.items()}}
