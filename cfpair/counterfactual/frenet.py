"""A reference path (the expert's, extended) and poses from (arc length, lateral offset)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfpair.scoring.context import expert_line
from cfpair.types import F64


@dataclass(frozen=True)
class RefPath:
    """Polyline (M, 2) with cumulative arc length s (M,) and unit tangents (M, 2)."""

    xy: F64
    s: F64
    tangent: F64

    @classmethod
    def from_expert(cls, x: F64, y: F64, yaw0: float, ahead_m: float = 250.0,
                    behind_m: float = 20.0, min_step: float = 0.05) -> RefPath:
        """The expert's rear-axle path, without near-duplicate points (a stopped car), extended
        straight ``behind_m`` before its start and ``ahead_m`` past its end."""
        pts = expert_line(x, y, yaw0, ahead_m, behind_m, min_step)
        seg = np.diff(pts, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        s = np.concatenate([[0.0], np.cumsum(seg_len)]) - behind_m
        tan = seg / seg_len[:, None]
        tangent = np.concatenate([tan, tan[-1:]])
        return cls(pts, s, tangent)

    def poses(self, s: F64, d: F64) -> tuple[F64, F64]:
        """Points at arc length s (..., T) moved d metres to the left of the path."""
        s = np.clip(s, self.s[0], self.s[-1])
        i = np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.s) - 2)
        w = (s - self.s[i]) / np.maximum(self.s[i + 1] - self.s[i], 1e-12)
        p = self.xy[i] + w[..., None] * (self.xy[i + 1] - self.xy[i])
        tan = self.tangent[i]
        normal = np.stack([-tan[..., 1], tan[..., 0]], -1)
        q = p + d[..., None] * normal
        return q[..., 0], q[..., 1]

    def arc_of(self, x: F64, y: F64) -> F64:
        """Arc length of the expert's own samples: cumulative distance (a stopped car stays)."""
        step = np.hypot(np.diff(x), np.diff(y))
        return np.concatenate([[0.0], np.cumsum(step)])
