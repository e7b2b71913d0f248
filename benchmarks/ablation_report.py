"""The Markdown report of a trainer ablation result (``ablation.py`` writes the JSON): the
table, the target check, the anchors' answer per condition, the paired tests and the
cross-source tables, each in plain words beside the numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

COMPARE_METRICS = ("collision_rate", "pdms", "risk_acc", "lang_acc")
#: the metrics whose tests the Markdown shows (the JSON has all of them)
MD_METRICS = ("collision_rate", "pdms")
HEADLINE = ("SFT", "neg-SFT + anchor GRPO")
NO_ANCHORS, ANCHORS = "neg-SFT + GRPO, no anchors", "neg-SFT + anchor GRPO"
ALPHA = 0.05
#: the target: at least this relative collision reduction against SFT
TARGET_REDUCTION = 0.30
CROSS_KEYS = ("collision_rate", "pdms", "l2_m", "risk_acc", "risk_majority", "lang_acc",
              "lang_majority")


def comparisons(rows: list[str]) -> list[tuple[str, str]]:
    """(a, b) pairs tested as b - a: every arm against SFT, what GRPO adds to neg-SFT, and the
    anchors' question (anchor GRPO against GRPO without anchors, per condition)."""
    pairs = [("SFT", r) for r in rows if r != "SFT"]
    for r in rows:
        if r.startswith("neg-SFT + ") and ("neg-SFT", r) not in pairs:
            pairs.append(("neg-SFT", r))
        if r.startswith("neg-SFT + GRPO, no anchors"):
            twin = r.replace("neg-SFT + GRPO, no anchors", "neg-SFT + anchor GRPO")
            if twin in rows:
                pairs.append((r, twin))
    return [(a, b) for a, b in pairs if a in rows and b in rows]


def tests_of(per_run: list[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Paired tests of every comparison and metric over the runs (one {row: metrics} a run)."""
    from cfpair.train.stats import paired_test

    rows = list(per_run[0])
    out = []
    for a, b in comparisons(rows):
        for metric in COMPARE_METRICS:
            xa = [m[a][metric] for m in per_run]
            xb = [m[b][metric] for m in per_run]
            if not np.isfinite(xa + xb).all():
                continue
            out.append({"a": a, "b": b, "metric": metric, **paired_test(xa, xb).as_dict()})
    return out


def _f(x: float | None, nd: int = 3) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _p(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else ("< 0.001" if x < 0.001 else f"{x:.3f}")


def find(tests: list[dict[str, Any]], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """The test of b - a on ``metric`` (None when it was not run)."""
    return next((t for t in tests if (t["a"], t["b"], t["metric"]) == (a, b, metric)), None)


def p_max(t: dict[str, Any]) -> float:
    """The most conservative of the test's p values (t, sign-flip, Wilcoxon when defined)."""
    ps = [t["p_t"], t["p_sign_flip"], t["p_wilcoxon"]]
    ps = [p for p in ps if p is not None and np.isfinite(p)]
    return max(ps) if ps else float("nan")


def scene_means(runs: list[dict[str, Any]], key: str = "metrics"
                ) -> list[dict[str, dict[str, float]]]:
    """Per scene seed, every row's metrics averaged over its training seeds: one observation a
    scene seed (runs that share a scene seed share its held-out scenes)."""
    out = []
    for ds in dict.fromkeys(r["scene_seed"] for r in runs):
        group = [r[key] for r in runs if r["scene_seed"] == ds]
        out.append({row: {m: float(np.mean([g[row][m] for g in group]))
                          for m in COMPARE_METRICS}
                    for row in group[0]})
    return out


def g(test: dict[str, Any] | None, key: str) -> Any:
    """``test[key]``, None when the test was not run."""
    return test[key] if test else None


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def target_check(result: dict[str, Any]) -> list[str]:
    """Plain-words verdict on the target: the headline arm lowers collisions >= 30 % relative
    to SFT without lowering PDMS, significant at p < 0.05 over the runs. The 30 % margin itself
    is tested (one-sided paired t of arm - 0.7 x SFT < 0), and the tests over the scene-seed
    means are shown beside the ones over runs."""
    from cfpair.train.stats import margin_p

    summary, tests = result["summary"], result["tests"]
    a, b = HEADLINE
    if a not in summary or b not in summary:
        return ["Target check: not run (needs the SFT and neg-SFT + anchor GRPO arms)."]
    ca, cb = _num(summary[a]["collision_rate"][0]), _num(summary[b]["collision_rate"][0])
    pa, pb = _num(summary[a]["pdms"][0]), _num(summary[b]["pdms"][0])
    tc, tp = find(tests, a, b, "collision_rate"), find(tests, a, b, "pdms")
    rel = (ca - cb) / ca if ca > 0 else float("nan")
    runs = result.get("runs", [])
    ratio = 1 - TARGET_REDUCTION

    def margin(obs: list[dict[str, Any]]) -> float:
        xa = [_num(o[a]["collision_rate"]) for o in obs]
        xb = [_num(o[b]["collision_rate"]) for o in obs]
        ok = len(obs) >= 2 and np.isfinite(xa + xb).all()
        return margin_p(xa, xb, ratio) if ok else float("nan")

    per_run = [r["metrics"] for r in runs]
    scenes = scene_means(runs) if runs else []
    m_run, m_scene = margin(per_run), margin(scenes)
    st = tests_of(scenes) if len(scenes) >= 2 else []
    sc, sp = find(st, a, b, "collision_rate"), find(st, a, b, "pdms")
    sig = tc is not None and p_max(tc) < ALPHA and m_run < ALPHA
    pdms_ok = pb >= pa or (tp is not None and p_max(tp) >= ALPHA)
    met = np.isfinite(rel) and rel >= TARGET_REDUCTION and sig and pdms_ok
    why = [m for m, bad in (("the reduction is under 30 %",
                             not (np.isfinite(rel) and rel >= TARGET_REDUCTION)),
                            ("not significant at p < 0.05 in every test over the runs", not sig),
                            ("PDMS is significantly lower", not pdms_ok)) if bad]
    rel_s = "n/a" if not np.isfinite(rel) else f"{-100 * rel:+.0f} %"
    return [f"Target check ({b} against {a}): collision rate {_f(ca)} -> {_f(cb)} "
            f"({rel_s} relative; target <= -30 %). Over the {len(per_run)} runs: difference p "
            f"{_p(g(tc, 'p_t'))} (t) / {_p(g(tc, 'p_sign_flip'))} (sign-flip) / "
            f"{_p(g(tc, 'p_wilcoxon'))} (Wilcoxon), the 30 % margin itself p {_p(m_run)} "
            f"(one-sided paired t of arm - 0.7 x SFT < 0); PDMS {_f(pa)} -> {_f(pb)} (p "
            f"{_p(g(tp, 'p_t'))} t). Over the {len(scenes)} scene-seed means (runs sharing a "
            f"scene seed share its scenes; the smallest sign-flip p of {len(scenes)} is "
            f"{_p(2 / 2 ** len(scenes)) if scenes else 'n/a'}): collisions p "
            f"{_p(g(sc, 'p_t'))} (t), margin p {_p(m_scene)}, PDMS p {_p(g(sp, 'p_t'))} (t). "
            f"**{'Met' if met else 'Not met'}**" + ("." if met else ": " + "; ".join(why) + ".")]


def anchors_answer(result: dict[str, Any]) -> list[str]:
    """Anchor GRPO against GRPO without anchors under every condition, with Holm's adjustment
    over the whole family (both metrics, every condition; each test's most conservative p)
    and the share of groups whose samples all scored alike (no signal without anchors)."""
    from cfpair.train.stats import holm

    found = []
    for r in result["summary"]:
        if not r.startswith(NO_ANCHORS):
            continue
        twin = r.replace(NO_ANCHORS, ANCHORS)
        tc = find(result["tests"], r, twin, "collision_rate")
        tp = find(result["tests"], r, twin, "pdms")
        if tc is not None and tp is not None:
            found.append((r, twin, tc, tp))
    if not found:
        return []
    adj = holm([t["p_t"] for _, _, tc, tp in found for t in (tc, tp)])
    flat = result.get("grpo_flat", {})
    lines = ["| condition | collision: anchors - none [95 % CI] | p t / flip | PDMS: anchors - "
             "none [95 % CI] | p t / flip | Holm p t (collision / PDMS) | flat groups |",
             "|---|---|---|---|---|---|---|"]
    for k, (r, twin, tc, tp) in enumerate(found):
        cond = r[len(NO_ANCHORS):].strip(" []") or "as configured (G8)"
        lines.append(f"| {cond} | {_f(tc['mean_diff'])} [{_f(tc['ci_low'])}, "
                     f"{_f(tc['ci_high'])}] | {_p(tc['p_t'])} / {_p(tc['p_sign_flip'])} | "
                     f"{_f(tp['mean_diff'])} [{_f(tp['ci_low'])}, {_f(tp['ci_high'])}] | "
                     f"{_p(tp['p_t'])} / {_p(tp['p_sign_flip'])} | {_p(adj[2 * k])} / "
                     f"{_p(adj[2 * k + 1])} | {_f(flat.get(twin), 2)} / {_f(flat.get(r), 2)} |")
    n = found[0][2]["n"]
    return ["Anchors against no anchors (neg-SFT + GRPO, same base, seed and steps; negative "
            "collision and positive PDMS differences favour the anchors; CI: 95 % paired "
            f"percentile bootstrap over the {n} runs, narrow at this n; Holm p t: the paired "
            f"t p adjusted over the {len(adj)} tests of this table -- the exact tests cannot "
            f"be used for it, their smallest p over {n} runs is {_p(2 / 2 ** n)}, and "
            f"{len(adj)} x that is {_p(min(1.0, len(adj) * 2 / 2 ** n))}; flat groups = share "
            "of GRPO groups whose on-policy samples all got the same reward, with / without "
            "anchors):", "", *lines, ""]


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows, tests and flat shares of several results of the same scene and training
    seeds in one (a row run twice -- e.g. the configured condition -- must agree)."""
    keys = [[(r["scene_seed"], r["train_seed"]) for r in res["runs"]] for res in results]
    if any(k != keys[0] for k in keys):
        raise SystemExit("error: the results were not run on the same scene and training "
                         "seeds; they cannot be merged")
    out: dict[str, Any] = {"summary": {}, "tests": [], "grpo_flat": {}}
    for res in results:
        for row, m in res["summary"].items():
            if row in out["summary"] and out["summary"][row] != m:
                raise SystemExit(f"error: row {row!r} differs between the results")
            out["summary"][row] = m
        out["grpo_flat"].update(res.get("grpo_flat", {}))
        have = {(t["a"], t["b"], t["metric"]) for t in out["tests"]}
        out["tests"] += [t for t in res["tests"] if (t["a"], t["b"], t["metric"]) not in have]
    return out


def _table(summary: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    lines = ["| arm | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row, m in summary.items():
        lines.append(f"| {row} | " + " | ".join(f"{_f(m[k][0])} ± {_f(m[k][1])}"
                                                 for k in keys) + " |")
    return lines


def _tests(tests: list[dict[str, Any]], keep: Any = lambda t: True) -> list[str]:
    lines = ["| a | b | metric | mean b - a | 95 % CI | p t | p flip | p W |",
             "|---|---|---|---|---|---|---|---|"]
    for t in (t for t in tests if t["metric"] in MD_METRICS and keep(t)):
        lines.append(f"| {t['a']} | {t['b']} | {t['metric']} | {_f(t['mean_diff'])} | "
                     f"[{_f(t['ci_low'])}, {_f(t['ci_high'])}] | {_p(t['p_t'])} | "
                     f"{_p(t['p_sign_flip'])} | {_p(t['p_wilcoxon'])} |")
    return lines


def cross_section(result: dict[str, Any]) -> list[str]:
    """One table per cross-source set and the headline comparison there."""
    out: list[str] = []
    for note in result.get("cross_notes", []):
        out += [f"Cross-source: {note}.", ""]
    for cs in result.get("cross", []):
        a, b = HEADLINE
        out += [f"### Cross-source: {cs['name']} ({cs['pairs']} pairs; {cs['what']})", "",
                "Every policy as trained above, evaluated on all of these pairs; the tests "
                "over runs measure training variation on these fixed scenes.", "",
                *_table(cs["summary"], CROSS_KEYS), ""]
        s = cs["summary"]
        if a in s and b in s and cs["pairs"]:
            ca, cb = s[a]["collision_rate"][0], s[b]["collision_rate"][0]
            rel = (ca - cb) / ca if ca > 0 else float("nan")
            tc = find(cs["tests"], a, b, "collision_rate")
            tp = find(cs["tests"], a, b, "pdms")
            out += [f"{b} against {a} here: collision {_f(ca)} -> {_f(cb)} "
                    f"({'n/a' if not np.isfinite(rel) else f'{-100 * rel:+.0f} %'} relative, "
                    f"p {_p(tc['p_t'] if tc else None)} t / "
                    f"{_p(tc['p_sign_flip'] if tc else None)} flip), PDMS "
                    f"{_f(s[a]['pdms'][0])} -> {_f(s[b]['pdms'][0])} (p {_p(g(tp, 'p_t'))} t / "
                    f"{_p(g(tp, 'p_sign_flip'))} flip).", ""]
    return out


def references_section(result: dict[str, Any]) -> list[str]:
    """The non-learned references: the logged expert and the constant-velocity baseline on the
    evaluated pairs (mean ± std over scene seeds) and on every cross-source set."""
    refs = [d["references"] for d in result["data"] if "references" in d]
    if not refs:
        return []
    keys = ("collision_rate", "pdms", "l2_m")
    lines = ["Non-learned references on the same pairs (no training): the positives are what "
             "every arm imitates (the ceiling of imitation); the logged expert is what L2 is "
             "measured to (the synthetic clips are risky by construction, so it collides often "
             "there); constant velocity is straight ahead at the anchor speed:", "",
             "| reference | set | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name in refs[0]:
        vals = {k: [_num(r[name][k]) for r in refs] for k in keys}
        lines.append(f"| {name} | evaluated pairs | " + " | ".join(
            f"{_f(float(np.mean(v)))} ± {_f(float(np.std(v)))}" for v in vals.values()) + " |")
        for cs in result.get("cross", []):
            if "references" in cs:
                lines.append(f"| {name} | {cs['name']} | " + " | ".join(
                    _f(cs["references"][name][k]) for k in keys) + " |")
    return [*lines, ""]


def inputs_section(result: dict[str, Any]) -> list[str]:
    """What the policy sees in the training pairs, the evaluated pairs and each cross-source
    set (``cross_sources.input_stats``): the reason a result transfers or does not."""
    rows = []
    for d in result["data"]:
        for part, s in d.get("inputs", {}).items():
            rows.append((f"scene seed {d['scene_seed']}, {part}", s))
    rows += [(cs["name"], cs["inputs"]) for cs in result.get("cross", []) if "inputs" in cs]
    if not rows:
        return []
    lines = ["What the policy sees (anchor speed, road users in view of the 8 encoded, "
             "drivable share of the raster, driving commands left / straight / right):", "",
             "| pairs | n | speed m/s | road users | drivable | commands |",
             "|---|---|---|---|---|---|"]
    for name, s in rows:
        if not s.get("n"):
            lines.append(f"| {name} | 0 | | | | |")
            continue
        c = s["commands"]
        lines.append(f"| {name} | {s['n']} | {_f(s['speed_mps'], 1)} ± "
                     f"{_f(s['speed_sd_mps'], 1)} | {_f(s['road_users_in_view'], 1)} | "
                     f"{_f(s['drivable_share'], 2)} | {c.get('left', 0)} / "
                     f"{c.get('straight', 0)} / {c.get('right', 0)} |")
    return [*lines, ""]


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report of a result."""
    from cfpair.train.run import TABLE_KEYS

    c = result["config"]
    lines = [f"## {c['title']}", "",
             f"mode {c['mode']} ({result['evaluated_on']}); scene seeds {c['data_seeds']} "
             f"(`--source-option seed=N`), training seeds {c['train_seeds']}, candidate seed "
             f"{c['candidate_seed']}, {c['n_scenes']} scenes per scene seed, {c['candidates']} "
             f"candidates, step scale {c['scale']}, scoring view `{c['scoring']}`; "
             f"{len(result['runs'])} runs, {result['wall_s']:.0f} s wall, commit "
             f"{(result.get('commit') or 'unknown')[:7]}"
             f"{' + uncommitted changes' if result.get('tree_dirty') else ''}.", "",
             "Pairs per scene seed (train / evaluated): " + ", ".join(
                 f"{d['scene_seed']}: {d['train_pairs']} / {d['eval_pairs']}"
                 for d in result["data"]), "",
             "Mean ± std over runs (population std, ddof 0):", "",
             *_table(result["summary"], TABLE_KEYS), "",
             *references_section(result),
             *target_check(result), "",
             *anchors_answer(result),
             "Paired tests, b - a over the runs (t: paired t-test; flip: exact sign-flip "
             "permutation; W: Wilcoxon signed-rank; CI: 95 % paired bootstrap):", "",
             *_tests(result["tests"]), "", *cross_section(result), *inputs_section(result)]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """``ablation_report.py OUT``: re-write OUT/ablation.md from OUT/ablation.json;
    ``ablation_report.py OUT1 OUT2 ...``: print the anchors' table of several results of the
    same seeds merged (one Holm family)."""
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: ablation_report.py OUT [OUT ...] (folders holding ablation.json)",
              file=sys.stderr)
        return 2
    results = [json.loads((Path(a) / "ablation.json").read_text()) for a in args]
    if len(results) > 1:
        print("\n".join(anchors_answer(merged(results))))
        return 0
    md = markdown(results[0])
    (Path(args[0]) / "ablation.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
