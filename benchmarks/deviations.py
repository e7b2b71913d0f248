"""Measured effect of the scorer's deliberate deviations from NAVSIM (``DEVIATIONS``) and of the
two views, on a finished run: ``python benchmarks/deviations.py OUT`` (e.g. the default
``cfpair generate`` output). Prints, over every stored trajectory (expert, negative, positive):

- exact view vs NAVSIM's view: identical NC / DAC / TTC / C and PDMS within 0.01;
- progress along the on-route lane centreline instead of the expert's path: PDMS changes;
- a_x = 0 at t = 0 instead of the logged speed's first difference: comfort / PDMS changes;
- the pairs: positives safe in NAVSIM's view, negatives strictly below their positive.
"""

from __future__ import annotations

import argparse
import dataclasses
from unittest import mock

import numpy as np

from cfpair.scoring import views
from cfpair.scoring.rescore import ROLES, context_from_record, rescore
from cfpair.shards import load_records


def _centreline(ctx):  # noqa: ANN001, ANN202
    """The on-route centreline nearest the ego at the anchor, or None."""
    best, dist = None, np.inf
    for line, on in zip(ctx.centerlines, ctx.on_route, strict=False):
        if on and len(line) >= 2:
            d = float(np.min(np.hypot(line[:, 0], line[:, 1])))
            if d < dist:
                best, dist = line, d
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    args = ap.parse_args()
    recs = load_records(args.out)
    same = {k: [] for k in ("nc", "dac", "ttc", "comfort", "pdms")}
    route_diff, ax_c, ax_p = [], [], []
    for rec in recs:
        for role in ROLES:
            f = getattr(rec, role).facts
            for k in ("nc", "dac", "ttc", "comfort"):
                same[k].append(getattr(f, k) == getattr(f, f"exact_{k}"))
            same["pdms"].append(abs(f.pdms - f.exact_pdms) <= 0.01)
        ctx = context_from_record(rec)
        base = rescore(rec, ctx)
        line = _centreline(ctx)
        if line is not None:
            alt = dataclasses.replace(ctx)
            alt.__dict__["route"] = line
            route_diff += list(np.abs(rescore(rec, alt).pdms - base.pdms) > 0.01)
        zero_ax = views.initial_state(ctx).copy()
        zero_ax[5] = 0.0
        with mock.patch.object(views, "initial_state", lambda _c, s=zero_ax: s):
            z = rescore(rec, ctx)
        ax_c += list(z.comfort != base.comfort)
        ax_p += list(np.abs(z.pdms - base.pdms) > 0.01)
    n = len(same["nc"])
    print(f"{len(recs)} pairs, {n} trajectories")
    print("exact view vs NAVSIM's view, identical: " + ", ".join(
        f"{k} {np.mean(v):.1%}" for k, v in same.items() if k != "pdms")
        + f", PDMS within 0.01 {np.mean(same['pdms']):.1%}")
    if route_diff:
        print(f"route = on-route lane centreline instead of the expert path: PDMS changes by "
              f"> 0.01 for {np.mean(route_diff):.1%} of {len(route_diff)} trajectories")
    print(f"a_x(0) = 0 instead of the speed's first difference: comfort flips "
          f"{np.mean(ax_c):.1%}, PDMS changes > 0.01 {np.mean(ax_p):.1%}")
    pos_safe = np.mean([(r.positive.facts.nc, r.positive.facts.ttc, r.positive.facts.dac != 0,
                         not r.positive.facts.collides) == (1.0, 1.0, True, True) for r in recs])
    ordered = np.mean([r.negative.facts.pdms < r.positive.facts.pdms for r in recs])
    print(f"positives safe in NAVSIM's view {pos_safe:.1%}; negative below positive "
          f"{ordered:.1%}")


if __name__ == "__main__":
    main()
