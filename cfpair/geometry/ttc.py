"""Time to collision: NAVSIM's projected-ego check and a continuous constant-velocity TTC.

Both reuse the batched collision engine; no Python loop over candidates, agents or steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cfpair.errors import ShapeError
from cfpair.geometry.collision import BoxSeq, _flatten, collisions, slab_contact_interval

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: NAVSIM v1.1: ego projected 0, 3, 6, 9 steps (0, 0.3, 0.6, 0.9 s at 0.1 s) ahead.
NAVSIM_TTC_OFFSETS = (0, 3, 6, 9)


@dataclass(frozen=True)
class ProjectedHits:
    """Contacts of the projected ego: candidate k (flat), step t of the ego, projection offset
    index j (into ``offsets``) and agent n, sorted by (k, t, j, n)."""

    k: I64
    t: I64
    j: I64
    n: I64


def projected_ego_hits(ego: BoxSeq, speed: ArrayLike, agents: BoxSeq, dt: float,
                       offsets: tuple[int, ...] = NAVSIM_TTC_OFFSETS) -> ProjectedHits:
    """NAVSIM's TTC geometry: at each step t translate the ego box along its heading by
    ``speed * offset * dt`` and test it against the agents at step ``t + offset``.

    ego: (..., T) boxes; speed: (..., T) m/s; agents: (N, O) with O >= T on the same grid from
    the same start (NAVSIM's observation runs 1 s longer than the plan: O = T + 10). Steps whose
    ``t + offset`` falls past the agents' last step are not tested.
    """
    x = np.asarray(ego.x, dtype=np.float64)
    lead, n_t = x.shape[:-1], x.shape[-1]
    speed = np.broadcast_to(np.asarray(speed, dtype=np.float64), x.shape)
    yaw = np.asarray(ego.yaw, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    valid = (np.ones(x.shape, bool) if ego.valid is None
             else np.broadcast_to(np.asarray(ego.valid, bool), x.shape))
    # shifted[j, ..., s] = ego at step s - off[j], moved by speed * off[j] * dt
    shift = speed[None] * (off * dt).reshape((-1,) + (1,) * x.ndim)
    px = x[None] + shift * np.cos(yaw)[None]
    py = np.asarray(ego.y, dtype=np.float64)[None] + shift * np.sin(yaw)[None]
    n_o = np.asarray(agents.x).shape[-1]
    if n_o < n_t:
        raise ShapeError(f"agents need at least the ego's {n_t} steps, got {n_o}")
    src = np.arange(n_o)[None, :] - off[:, None]  # (J, O) source step for each target step
    ok = (src >= 0) & (src < n_t)
    srcc = np.clip(src, 0, n_t - 1)
    jj = np.arange(len(off))[:, None]

    def take(a: np.ndarray) -> np.ndarray:
        a = np.moveaxis(a, -1, 1)  # (J, T, ...)
        return np.moveaxis(a[jj, srcc], 1, -1)

    vmask = np.moveaxis(np.moveaxis(np.broadcast_to(valid, (len(off),) + x.shape), -1, 1)
                        [jj, srcc] & ok.reshape(ok.shape + (1,) * len(lead)), 1, -1)
    yaw_j = np.broadcast_to(yaw, (len(off),) + x.shape)
    length = np.broadcast_to(np.asarray(ego.length, dtype=np.float64), lead)
    width = np.broadcast_to(np.asarray(ego.width, dtype=np.float64), lead)
    shifted = BoxSeq(take(px), take(py), take(yaw_j), length[None], width[None], vmask)
    c = collisions(shifted, agents)
    m = int(np.prod(lead, dtype=np.int64))
    j, k = np.divmod(c.k, max(m, 1))
    t = c.step - off[j]
    order = np.lexsort((c.n, j, t, k))
    return ProjectedHits(k[order], t[order], j[order], c.n[order])


def constant_velocity_ttc(ego: BoxSeq, ego_vx: ArrayLike, ego_vy: ArrayLike, agents: BoxSeq,
                          agent_vx: ArrayLike, agent_vy: ArrayLike, horizon: float = 3.0
                          ) -> tuple[F64, I64]:
    """Continuous time to collision at every step under constant velocity (headings fixed).

    For each candidate and step, both boxes keep their current velocity (world frame, m/s);
    the earliest contact time in [0, horizon] seconds is found exactly with the slab method.
    Returns (ttc (..., T) seconds, inf where none within the horizon; agent (..., T), -1 if
    none). Already overlapping boxes give 0.
    """
    e, lead = _flatten(ego, "ego")
    a, _ = _flatten(agents, "agents")
    if a.x.shape[1] != e.x.shape[1]:
        raise ShapeError(f"agents must share the ego's T={e.x.shape[1]}, got {a.x.shape}")
    m, n_t = e.x.shape
    evx = np.broadcast_to(np.asarray(ego_vx, dtype=np.float64), lead + (n_t,)).reshape(m, n_t)
    evy = np.broadcast_to(np.asarray(ego_vy, dtype=np.float64), lead + (n_t,)).reshape(m, n_t)
    avx = np.asarray(agent_vx, dtype=np.float64)
    avy = np.asarray(agent_vy, dtype=np.float64)
    # broad phase: the swept reach of each box over the horizon must overlap
    er = e.r[:, None] + np.hypot(evx, evy) * horizon
    ar = a.r[:, None] + np.hypot(avx, avy) * horizon
    ecx, ecy = e.x + evx * horizon / 2, e.y + evy * horizon / 2
    acx, acy = a.x + avx * horizon / 2, a.y + avy * horizon / 2
    # axis-aligned squares around each object's largest reach circle: conservative
    e_side = 2 * np.max(np.where(e.valid, er, 0.0), axis=1, initial=0.0)
    a_side = 2 * np.max(np.where(a.valid, ar, 0.0), axis=1, initial=0.0)
    reach = BoxSeq(ecx, ecy, np.zeros_like(ecx), e_side, e_side, e.valid)
    a_reach = BoxSeq(acx, acy, np.zeros_like(acx), a_side, a_side, a.valid)
    cand = collisions(reach, a_reach)
    k, n, t = cand.k, cand.n, cand.step
    ey, ay = e.yaw[k, t], a.yaw[n, t]
    enter, leave = slab_contact_interval(
        a.x[n, t] - e.x[k, t], a.y[n, t] - e.y[k, t],
        (avx[n, t] - evx[k, t]) * horizon, (avy[n, t] - evy[k, t]) * horizon,
        np.cos(ey), np.sin(ey), e.hl[k], e.hw[k], np.cos(ay), np.sin(ay), a.hl[n], a.hw[n])
    hit = (enter <= leave) & (enter <= 1.0) & (leave >= 0.0)
    k, n, t = k[hit], n[hit], t[hit]
    ttc_pair = np.clip(enter[hit], 0.0, 1.0) * horizon
    ttc = np.full((m, n_t), np.inf)
    agent = np.full((m, n_t), -1, np.int64)
    order = np.lexsort((n, ttc_pair, t, k))
    k, n, t, ttc_pair = k[order], n[order], t[order], ttc_pair[order]
    first = np.ones(k.size, bool)
    first[1:] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
    ttc[k[first], t[first]] = ttc_pair[first]
    agent[k[first], t[first]] = n[first]
    return ttc.reshape(lead + (n_t,)), agent.reshape(lead + (n_t,))
