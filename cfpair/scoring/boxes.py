"""Ego and agent boxes of a scene context, and the box tests the scorer's rules need."""

from __future__ import annotations

import numpy as np

from cfpair.geometry.collision import BoxSeq
from cfpair.scoring.context import EvalContext
from cfpair.types import F64, Bool


def ego_boxes(ctx: EvalContext, x: F64, y: F64, yaw: F64) -> BoxSeq:
    """Ego boxes (K, T) from rear-axle poses."""
    off = ctx.ego_rear_to_center
    return BoxSeq(x + off * np.cos(yaw), y + off * np.sin(yaw), yaw, ctx.ego_length,
                  ctx.ego_width)


def agent_boxes(ctx: EvalContext, grow_m: float = 0.0, observed: bool = False
                ) -> tuple[BoxSeq, F64, F64]:
    """Agent boxes over the plan's future (N, T) or the whole observation (N, O) with
    ``observed`` (each side grown by ``grow_m``), their speed and heading."""
    a, valid = ctx.agents_future(observed)
    return (BoxSeq(a["x"], a["y"], a["yaw"], ctx.length + 2 * grow_m, ctx.width + 2 * grow_m,
                   valid),
            np.hypot(a["vx"], a["vy"]), a["yaw"])


def segment_hits_box(p0: F64, p1: F64, cx: F64, cy: F64, yaw: F64, hl: F64, hw: F64) -> Bool:
    """Does segment p0-p1 (..., 2) touch the oriented box? (Liang-Barsky in the box frame.)"""
    c, s = np.cos(yaw), np.sin(yaw)

    def local(p: F64) -> tuple[F64, F64]:
        dx, dy = p[..., 0] - cx, p[..., 1] - cy
        return c * dx + s * dy, -s * dx + c * dy

    ax, ay = local(p0)
    bx, by = local(p1)
    dx, dy = bx - ax, by - ay
    lo, hi = np.zeros_like(ax), np.ones_like(ax)
    ok = np.ones(ax.shape, bool)
    for d, a, h in ((dx, ax, hl), (-dx, -ax, hl), (dy, ay, hw), (-dy, -ay, hw)):
        # constraint: a + d * u <= h
        par = np.abs(d) < 1e-12
        ok &= ~(par & (a > h + 1e-9))
        u = np.where(par, 0.0, (h - a) / np.where(par, 1.0, d))
        hi = np.where(~par & (d > 0), np.minimum(hi, u), hi)
        lo = np.where(~par & (d < 0), np.maximum(lo, u), lo)
    return ok & (lo <= hi + 1e-12)
