"""Candidate futures for one anchor: operator profiles -> poses along the expert path -> a
kinematic bicycle rollout (actuator limits) -> feasibility. Row 0 is the logged expert."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cfpair.counterfactual.frenet import RefPath
from cfpair.counterfactual.operators import DEFAULT_VARIANTS, OpInput, apply, random_variant
from cfpair.geometry.kinematics import VehicleLimits, check_feasibility, track
from cfpair.scoring.context import DT, EvalContext
from cfpair.types import F64, Bool


@dataclass(frozen=True)
class Candidates:
    """K candidate futures on the context's future grid (rear axle, ego frame at the anchor).

    x, y, yaw, v: (K, T); names, params: per candidate; feasible: (K,) bool (row 0, the logged
    expert, is always kept); path: the reference path (the expert's, extended).
    """

    x: F64
    y: F64
    yaw: F64
    v: F64
    names: tuple[str, ...]
    params: tuple[dict[str, Any], ...]
    feasible: Bool
    path: RefPath

    @property
    def k(self) -> int:
        """Number of candidates."""
        return int(self.x.shape[0])

    def describe(self, i: int) -> str:
        """'name {json params}' of candidate i."""
        return f"{self.names[i]} {json.dumps(self.params[i], sort_keys=True)}"


def scene_rng(seed: int, scenario_id: str, anchor: int) -> np.random.Generator:
    """Randomness that depends only on (seed, scenario id, anchor), never on workers or order."""
    digest = hashlib.sha256(f"{seed}\x00{scenario_id}\x00{anchor}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))


def build_candidates(ctx: EvalContext, n_candidates: int = 256, seed: int = 0,
                     limits: VehicleLimits | None = None) -> Candidates:
    """The expert, the default variants and random compositions, ``n_candidates`` in all."""
    limits = limits or VehicleLimits()
    ex = ctx.expert
    path = RefPath.from_expert(ex["x"], ex["y"], float(ex["yaw"][0]))
    s_exp = path.arc_of(ex["x"], ex["y"])
    v_exp = np.gradient(s_exp, DT)
    inp = OpInput(ctx.t_fut, np.maximum(v_exp, 0.0))
    rng = scene_rng(seed, ctx.scenario_id, ctx.anchor)
    variants = list(DEFAULT_VARIANTS[: max(n_candidates - 1, 0)])
    while len(variants) < n_candidates - 1:
        variants.append(random_variant(rng))
    vs, ds = zip(*(apply(n, p, inp) for n, p in variants), strict=True) if variants else ((), ())
    v = np.asarray(vs, np.float64).reshape(-1, ctx.t_fut.size)
    d = np.asarray(ds, np.float64).reshape(-1, ctx.t_fut.size)
    s = np.concatenate([np.zeros((len(v), 1)),
                        np.cumsum((v[:, 1:] + v[:, :-1]) / 2 * DT, axis=1)], axis=1)
    tx, ty = path.poses(s, d)
    v0 = np.full(len(v), float(np.hypot(ex["vx"][0], ex["vy"][0])))
    rx, ry, ryaw, rv = track(tx, ty, float(ex["yaw"][0]), v0, DT, limits)
    feas = check_feasibility(rx, ry, ryaw, DT, limits).ok
    speed = np.hypot(ex["vx"], ex["vy"])
    return Candidates(
        x=np.concatenate([ex["x"][None], rx]), y=np.concatenate([ex["y"][None], ry]),
        yaw=np.concatenate([ex["yaw"][None], ryaw]), v=np.concatenate([speed[None], rv]),
        names=("expert", *(n for n, _ in variants)),
        params=({}, *(p for _, p in variants)),
        feasible=np.concatenate([[True], feas]), path=path)
