"""Reproducible trainer ablation: scene seeds x training seeds, every arm, paired tests.

Three seeds, all named, none implied:
- scene seed (``--data-seeds``): the synthetic generator's own seed, ``cfpair generate
  --source-option seed=N``. It decides the scenes, their train/val/test split and their ids.
- candidate seed (``--candidate-seed``): ``cfpair generate --seed``, which only draws the
  random candidate trajectories. It does NOT change the scenes (seeds 0, 1 and 3 give the
  same scenes, splits and pair ids).
- training seed (``--train-seeds``): model initialisation, mini-batches and GRPO samples.

Tuning and reporting never share scenes: ``--mode tune`` uses the tuning scene seeds (default
100, 101, 102) and evaluates on a validation split carved from the training pairs (by a hash
of the scenario id); ``--mode report`` uses the reporting scene seeds (default 5, 6, 7) and
evaluates on the held-out pairs (the source's val + test scenes). A reported seed that is a
tuning seed is refused, and so is scene seed 0: the trainer's settings were tuned on it in the
first ablation, before the tuning seeds were reserved. One observation = one (scene seed,
training seed) run; every arm of a run saw the same scenes and seed, so arms are compared by
paired tests over the runs (paired t, exact sign-flip, Wilcoxon, 95 % paired-bootstrap
interval of the mean difference).

Cross-source evaluation (``--cross``, default ``navsim-format,navsim-samples,nuscenes`` when
reporting and none when tuning, which may not use them): every
trained policy is also scored on pairs from other sources (``cross_sources.py``: NAVSIM-format
logs of their own scene seed, the NAVSIM sample logs, the real nuScenes scenes when
``../shared/realdata`` exists), none of which any policy trained on. Their tests over runs
measure training variation on fixed scenes, not scene variation.

Writes OUT/ablation.json (command, config, every run's metrics, summary, tests) and
OUT/ablation.md; the generated pairs stay in OUT/data/scene-seed-N (re-used when re-run).
Run at smoke scale: ``nice -n 19 .venv/bin/python benchmarks/ablation.py --n-scenes 200
--data-seeds 5,6 --train-seeds 0,1 --scale 0.1 --out /tmp/ablation-smoke``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ablation_report import tests_of

from cfpair.train.seeds import NAVSIM_FORMAT_SEED, REPORT_SEEDS, TUNE_SEEDS, TUNED_ON

CROSS_DEFAULT = ("navsim-format", "navsim-samples", "nuscenes")


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(
        description="Trainer ablation over scene seeds x training seeds with paired tests.",
        epilog="--data-seeds are SCENE seeds (cfpair generate --source-option seed=N); "
               "--candidate-seed is cfpair generate --seed (candidates only, same scenes); "
               "--train-seeds seed the training. Tuning and reporting seeds must be disjoint.")
    ap.add_argument("--mode", choices=("tune", "report"), default="report",
                    help="tune: tuning scene seeds, evaluate on a validation split carved from "
                         "train; report: reporting scene seeds, evaluate on held-out scenes")
    ap.add_argument("--data-seeds", type=_ints, default=None,
                    help=f"scene seeds [default: report {REPORT_SEEDS}, tune {TUNE_SEEDS}]")
    ap.add_argument("--tune-seeds", type=_ints, default=list(TUNED_ON + TUNE_SEEDS),
                    help="the scene seeds reserved for tuning (checked disjoint in report mode)")
    ap.add_argument("--train-seeds", type=_ints, default=[0, 1, 2], help="training seeds")
    ap.add_argument("--candidate-seed", type=int, default=0, help="cfpair generate --seed")
    ap.add_argument("--n-scenes", type=int, default=200, help="synthetic scenes per scene seed")
    ap.add_argument("--candidates", type=int, default=256, help="candidates per anchor")
    ap.add_argument("--scale", type=float, default=0.1,
                    help="multiply every stage's steps (1.0 = the full trainer settings)")
    ap.add_argument("--arms", default="all",
                    help="';'-separated arm names (they contain commas) or 'all'")
    ap.add_argument("--conditions", default="",
                    help="GRPO conditions besides the configured one, comma-separated: "
                         "G4, G2, G4-low, G2-low (low = 0.1 m sampling spread)")
    ap.add_argument("--cross", default=None,
                    help="cross-source evaluation sets, comma-separated ('' = none) [default: "
                         f"{','.join(CROSS_DEFAULT)} when reporting, none when tuning]")
    ap.add_argument("--navsim-seed", type=int, default=NAVSIM_FORMAT_SEED,
                    help="scene seed of the NAVSIM-format set (disjoint from the others)")
    ap.add_argument("--navsim-scenes", type=int, default=300,
                    help="synthetic scenes written as NAVSIM-format logs")
    ap.add_argument("--val-share", type=float, default=0.2, help="validation share (tune)")
    ap.add_argument("--workers", type=int, default=1, help="generation workers")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--scoring", default="navsim", help="scoring view of the evaluation")
    ap.add_argument("--title", default="Trainer ablation", help="heading of the Markdown")
    ap.add_argument("--references-only", action="store_true",
                    help="only (re)compute the non-learned references and input statistics of "
                         "an existing OUT/ablation.json (needs its OUT/data and OUT/cross) and "
                         "re-write the report")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    return ap.parse_args(argv)


def cross_sets(args: argparse.Namespace) -> list[str]:
    """The cross-source sets of this run: all of them when reporting, none when tuning (a
    tuning run must not look at any scene that is reported)."""
    if args.cross is None:
        return [] if args.mode == "tune" else list(CROSS_DEFAULT)
    return [c.strip() for c in args.cross.split(",") if c.strip()]


def check_seeds(args: argparse.Namespace) -> list[int]:
    """The scene seeds of this run. Refused: reporting on a tuning seed (or on scene seed 0,
    whatever ``--tune-seeds`` says), tuning on a reporting seed or the NAVSIM-format seed,
    cross-source sets in a tuning run, a NAVSIM-format seed shared with any other seed."""
    seeds = args.data_seeds or list(REPORT_SEEDS if args.mode == "report" else TUNE_SEEDS)
    tuned = set(args.tune_seeds) | set(TUNED_ON)
    if args.mode == "report" and set(seeds) & tuned:
        raise SystemExit(f"error: scene seeds {sorted(set(seeds) & tuned)} are tuning seeds; a "
                         f"reported run needs scenes never used for tuning")
    reported = set(REPORT_SEEDS) | {args.navsim_seed}
    if args.mode == "tune" and set(seeds) & reported:
        raise SystemExit(f"error: scene seeds {sorted(set(seeds) & reported)} are reported "
                         f"(or the NAVSIM-format set's); tuning must not see them")
    cross = cross_sets(args)
    if args.mode == "tune" and cross:
        raise SystemExit("error: --cross in a tuning run: the cross-source sets are reported "
                         "sets; tune on the validation split only")
    if "navsim-format" in cross and args.navsim_seed in set(seeds) | tuned:
        raise SystemExit(f"error: --navsim-seed {args.navsim_seed} is also a tuning or reported "
                         "scene seed; the cross-source set needs scenes of its own")
    if len(set(seeds)) != len(seeds) or len(set(args.train_seeds)) != len(args.train_seeds):
        raise SystemExit("error: repeated seeds")
    if len(seeds) * len(args.train_seeds) < 2:
        raise SystemExit("error: the paired tests need at least 2 (scene seed, training seed) "
                         "runs")
    return seeds


def generate(out: Path, scene_seed: int, args: argparse.Namespace) -> Path:
    """The pairs of one scene seed (resumed / re-used when already complete)."""
    from cfpair.config import GenerateConfig
    from cfpair.pipeline import generate as run

    cfg = GenerateConfig(out=str(out), source_options={"n_scenes": args.n_scenes,
                                                       "seed": scene_seed},
                         seed=args.candidate_seed, n_candidates=args.candidates,
                         workers=args.workers, shard_size=64)
    run(cfg)
    return out


def plain(x: Any) -> Any:
    """JSON-safe copy: tuples -> lists, non-finite floats -> None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if np.isfinite(x) else None
    return x


def _git(*args: str) -> str | None:
    """stdout of a git command run in this checkout (None outside git or when it fails)."""
    try:
        p = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                           cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def tree_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (None outside git)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def commit() -> str | None:
    """The git commit of the code that ran (None outside a git checkout)."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


def one_run(split: Any, ds: int, ts: int, dev: Any, cfg: Any, arms: tuple[str, ...],
            conds: tuple[str, ...], cross: dict[str, Any], scoring: str) -> dict[str, Any]:
    """Every arm of one (scene seed, training seed): held-out and cross-source metrics, and
    the GRPO arms' mean share of flat groups (None for a GRPO stage of 0 steps)."""
    from cfpair.train.evaluate import evaluate
    from cfpair.train.run import arm_models

    run: dict[str, Any] = {"scene_seed": ds, "train_seed": ts, "metrics": {},
                           "cross": {n: {} for n in cross}, "grpo_flat": {}}
    for row, model, log in arm_models(split, ts, dev, cfg, arms, conds):
        run["metrics"][row] = evaluate(model, split.held_b, split.held_s, dev, split.majority,
                                       scoring).as_dict()
        for name, (b, sc) in cross.items():
            run["cross"][name][row] = evaluate(model, b, sc, dev, split.majority,
                                               scoring).as_dict()
        if log is not None:
            run["grpo_flat"][row] = float(np.mean(log.flat)) if log.flat else None
    return run


def mean_or_none(values: list[float | None]) -> float | None:
    """The mean, or None when any value is missing (a GRPO stage of 0 steps has no share)."""
    return None if any(v is None for v in values) else float(np.mean(values))


def resume_argv(args: argparse.Namespace) -> dict[str, Any]:
    """The options that decide a run's numbers (not its title, output or thread count)."""
    skip = {"title", "out", "threads", "references_only"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def write_atomic(path: Path, obj: Any) -> None:
    """Strict JSON to ``path``, never half-written (``records.shards.atomic_write``)."""
    from cfpair.records.shards import atomic_write

    atomic_write(path, json.dumps(plain(obj), indent=1, allow_nan=False).encode())


def load_partial(path: Path, key: Any) -> dict[tuple[int, int], dict[str, Any]]:
    """The runs an interrupted ablation with the same code and options finished (empty when
    there is none, or it was made by other code or options)."""
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(got, dict) or got.get("key") != key:
        return {}
    return {(r["scene_seed"], r["train_seed"]): r for r in got.get("runs", [])}


def summary_of(per_run: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Mean and std over runs of every metric of every row."""
    from cfpair.train.evaluate import Metrics
    from cfpair.train.run import summarise

    return summarise([{k: Metrics(**v) for k, v in m.items()} for m in per_run])


def add_references(result: dict[str, Any], out: Path) -> None:
    """The non-learned references (``cfpair.train.evaluate.references``) and the input
    statistics (``cross_sources.input_stats``) of every scene seed's training and evaluated
    pairs and of every cross-source set, into ``result`` (they depend on the data only, not on
    a training seed), with the commit that computed them. Needs OUT/data and OUT/cross."""
    from cross_sources import input_stats

    from cfpair.records.shards import load_records
    from cfpair.train.data import encode
    from cfpair.train.evaluate import references
    from cfpair.train.run import load_split
    from cfpair.train.scoring import Scorer

    c = result["config"]
    for d in result["data"]:
        split = load_split(out / "data" / f"scene-seed-{d['scene_seed']}",
                           tuning=c["mode"] == "tune", val_share=c.get("val_share", 0.2))
        d["references"] = references(split.held_b, split.held_s, c["scoring"])
        d["inputs"] = {"train": input_stats(split.train_b), "evaluated": input_stats(split.held_b)}
    for cs in result.get("cross", []):
        recs = load_records(out / "cross" / cs["name"])
        b = encode(recs)
        cs["references"] = references(b, Scorer(recs), c["scoring"])
        cs["inputs"] = input_stats(b)
    result["references_commit"] = commit()
    result.setdefault("tree_dirty", None)


def write_report(result: dict[str, Any], out: Path) -> str:
    """OUT/ablation.json and OUT/ablation.md of ``result``; returns the Markdown."""
    from ablation_report import markdown

    from cfpair.records.shards import atomic_write

    write_atomic(out / "ablation.json", result)
    md = markdown(result)
    atomic_write(out / "ablation.md", md.encode())
    return md


def main(argv: list[str] | None = None) -> int:
    """Run the ablation and write the JSON and Markdown reports."""
    args = parse_args(argv)
    if args.references_only:
        result = json.loads((args.out / "ablation.json").read_text())
        add_references(result, args.out)
        print(write_report(result, args.out))
        return 0
    seeds = check_seeds(args)
    import torch
    from cross_sources import prepare

    from cfpair.errors import CfpairError
    from cfpair.records.shards import load_records
    from cfpair.train.data import encode
    from cfpair.train.run import ARMS, TrainConfig, load_split, pick_device
    from cfpair.train.scoring import Scorer

    code = commit()   # the code that runs: HEAD now, not when the run ends
    dirty = tree_dirty()
    torch.set_num_threads(args.threads)
    arms = ARMS if args.arms == "all" else tuple(a.strip() for a in args.arms.split(";")
                                                 if a.strip())
    conds = ("", *(c.strip() for c in args.conditions.split(",") if c.strip()))
    cfg = TrainConfig().scaled(args.scale)
    dev = pick_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs, data, cross_info = [], [], []
    try:
        sets, notes = prepare(args.out / "cross", cross_sets(args), args.navsim_seed,
                              args.navsim_scenes, args.candidate_seed, args.candidates)
        cross = {}
        for cs in sets:
            recs = load_records(cs.folder)
            cross[cs.name] = (encode(recs), Scorer(recs))
            cross_info.append({"name": cs.name, "what": cs.what, "pairs": len(recs)})
        partial = args.out / "ablation.partial.json"
        key = plain({"commit": code, "dirty": dirty, "argv": resume_argv(args), "arms": arms,
                     "conditions": conds, "cross": [c["name"] for c in cross_info]})
        done = load_partial(partial, key)
        for ds in seeds:
            folder = generate(args.out / "data" / f"scene-seed-{ds}", ds, args)
            split = load_split(folder, tuning=args.mode == "tune", val_share=args.val_share)
            data.append({"scene_seed": ds, "train_pairs": len(split.train),
                         "eval_pairs": len(split.held)})
            for ts in args.train_seeds:
                t1 = time.perf_counter()
                if (ds, ts) in done:
                    runs.append(done[(ds, ts)])
                    print(f"scene seed {ds}, training seed {ts}: re-used from {partial.name}",
                          flush=True)
                    continue
                runs.append(one_run(split, ds, ts, dev, cfg, arms, conds, cross, args.scoring))
                write_atomic(partial, {"key": key, "runs": runs})
                print(f"scene seed {ds}, training seed {ts}: {time.perf_counter() - t1:.0f} s",
                      flush=True)
    except CfpairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    held = [r["metrics"] for r in runs]
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                         else sys.argv[1:])]),
        "config": {"title": args.title, "mode": args.mode, "data_seeds": seeds,
                   "tune_seeds": args.tune_seeds, "train_seeds": args.train_seeds,
                   "candidate_seed": args.candidate_seed, "n_scenes": args.n_scenes,
                   "candidates": args.candidates, "scale": args.scale, "arms": list(arms),
                   "conditions": list(conds), "scoring": args.scoring,
                   "val_share": args.val_share, "navsim_seed": args.navsim_seed,
                   "navsim_scenes": args.navsim_scenes,
                   "device": str(dev), "threads": args.threads},
        "evaluated_on": ("validation split carved from train" if args.mode == "tune" else
                         "held-out scenes (val + test)"),
        "commit": code, "tree_dirty": dirty, "platform": platform.platform(),
        "wall_s": time.perf_counter() - t0,
        "data": data, "runs": runs, "summary": summary_of(held), "tests": tests_of(held),
        "grpo_flat": {row: mean_or_none([r["grpo_flat"][row] for r in runs])
                      for row in runs[0]["grpo_flat"]},
        "cross": [{**info, "summary": summary_of([r["cross"][info["name"]] for r in runs]),
                   "tests": tests_of([r["cross"][info["name"]] for r in runs])}
                  for info in cross_info],
        "cross_notes": notes}
    add_references(result, args.out)
    print(write_report(result, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
