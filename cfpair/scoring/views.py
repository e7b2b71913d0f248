"""The two views of a trajectory, and the one scoring path every caller uses.

- exact view: the trajectory's own 0.1 s states (cfpair's rollout, or the log);
- NAVSIM's view: its 8 poses (0.5 s .. 4 s) re-simulated by NAVSIM's tracker from the ego's
  state at the anchor, as NAVSIM's ``pdm_score`` does before scoring.

:func:`score_trajectories` (generate, validate) scores states in both views;
:func:`score_poses` (export reward, trainer) scores a policy's poses, whose only states are
NAVSIM's. Poses and the initial state are taken as a record stores them (rounded to
``DECIMALS``), so re-scoring a record sees exactly the poses and state generate scored. Each
call is one tracker call and one scorer call per view for all K trajectories.
"""

from __future__ import annotations

import numpy as np

from cfpair.scoring.context import DT, EvalContext
from cfpair.scoring.facts import FactArrays, LazyFacts, measure
from cfpair.scoring.navsim_tracker import simulate_poses
from cfpair.scoring.pdms import EgoStates, score_risk, score_states
from cfpair.types import F64

POSE_STEP = 5          # 0.5 s poses out of the 0.1 s grid
N_POSES = 8
DECIMALS = 4           # as stored in a record


def poses_of(x: F64, y: F64, yaw: F64) -> F64:
    """(K, 8, 3) poses [x, y, yaw] at 0.5 s .. 4 s of states (K, T) on the 0.1 s grid, rounded
    as a record stores them."""
    sel = slice(POSE_STEP, POSE_STEP * N_POSES + 1, POSE_STEP)
    return np.round(np.stack([x[:, sel], y[:, sel], yaw[:, sel]], -1), DECIMALS)


def initial_state(ctx: EvalContext) -> F64:
    """NAVSIM's initial ego state (11,) at the anchor in the ego frame: pose 0, v_x the logged
    speed, a_x its first difference over the next step, everything else 0 (from the rounded
    values a record keeps, so re-scoring sees the same state)."""
    v = np.round(np.hypot(ctx.expert["vx"][:2], ctx.expert["vy"][:2]), DECIMALS)
    s = np.zeros(11)
    s[3] = v[0]
    s[5] = (v[1] - v[0]) / DT
    return s


def navsim_states(ctx: EvalContext, poses: F64) -> F64:
    """(K, 41, 11) NAVSIM-simulated states of K pose sequences (K, P, 3) (ego frame at the
    anchor, rear axle; P = 8 at 0.5 s), one batched tracker call."""
    return simulate_poses(np.asarray(poses, np.float64), initial_state(ctx))


def navsim_view(ctx: EvalContext, poses: F64) -> EgoStates:
    """:func:`navsim_states` as the scorer's input."""
    return EgoStates.from_navsim(navsim_states(ctx, poses))


def score_trajectories(ctx: EvalContext, x: F64, y: F64, yaw: F64, v: F64,
                       feasible: np.ndarray | None = None) -> LazyFacts:
    """Facts of K trajectories given as exact rear-axle states (K, T) in both views; row 0
    must be the logged expert (the EP reference of both views). NAVSIM's view is scored for
    all K now; the exact view and the remaining facts of a row when first asked for (the
    values are those of the full computation, see :class:`LazyFacts`)."""
    exact = EgoStates(x, y, yaw, v)
    nav = navsim_view(ctx, poses_of(x, y, yaw))
    feasible = np.ones(x.shape[0], bool) if feasible is None else feasible
    return LazyFacts(ctx, exact, nav, score_risk(ctx, nav), feasible)


def score_poses(ctx: EvalContext, poses: F64, expert_poses: F64) -> FactArrays:
    """Facts of K pose sequences (K, 8, 3) in NAVSIM's view; row 0 of the result is the expert
    (``expert_poses`` (8, 3), the EP reference), rows 1.. the poses. The simulated states are
    the trajectories themselves, so both views coincide."""
    p = np.concatenate([np.asarray(expert_poses, np.float64)[None],
                        np.asarray(poses, np.float64).reshape(-1, N_POSES, 3)])
    nav = navsim_view(ctx, p)
    s = score_states(ctx, nav)
    return measure(ctx, nav, s, nav, s, np.ones(p.shape[0], bool))
