"""A reference path (the expert's, extended) and poses from (arc length, lateral offset)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        pts = np.stack([x, y], -1)
        keep = [0]
        for i in range(1, len(pts)):
            if np.hypot(*(pts[i] - pts[keep[-1]])) >= min_step:
                keep.append(i)
        pts = pts[keep]
        if len(pts) < 2:
            head0 = head1 = np.array([np.cos(yaw0), np.sin(yaw0)])
        else:
            d0, d1 = pts[1] - pts[0], pts[-1] - pts[-2]
            head0, head1 = d0 / np.linalg.norm(d0), d1 / np.linalg.norm(d1)
        pts = np.concatenate([[pts[0] - behind_m * head0], pts, [pts[-1] + ahead_m * head1]])
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
