"""The corrective meta-action of a pair, from the positive's own motion along the road, and how
the positive differs from the negative.

- Longitudinal: what the positive does from the ego's current state, by its own speed profile
  over the decision window (from the anchor to the negative's first conflict, at least
  ``MIN_WINDOW_S`` and at most the horizon): ``stop`` when it comes to (or stays at) a halt
  within the horizon without speeding up over the window; else ``accelerate`` /
  ``decelerate`` when its speed at the end of the window is more than ``KEEP_MPS`` above /
  below its speed now; else ``keep``.
- Lateral: the positive's largest offset from where it starts, measured across the road (the
  reference path's Frenet frame, ``frenet.RefPath``), over the whole horizon: under
  ``KEEP_LANE_M`` ``keep_lane``, under ``LANE_CHANGE_M`` ``nudge_<side>``, else
  ``change_lane_<side>``; a positive that stays within ``LANE_CHANGE_M`` of its line and turns
  by more than ``TURN_RAD`` the way the road turns (it follows a turning road) is
  ``turn_<side>``.
- Contrast (``positive_vs_negative``): positive minus negative at the negative's first conflict
  (else the horizon end): speed, offset across and along the road, and the braking onsets.
"""

from __future__ import annotations

import numpy as np

from cfpair.counterfactual.frenet import RefPath
from cfpair.geometry.transforms import wrap_angle
from cfpair.records.label import MetaAction
from cfpair.records.schema import Contrast
from cfpair.types import F64

DT = 0.1
STOP_MPS = 0.3          # slower than this is standing still
KEEP_MPS = 1.0          # a speed change within +-1 m/s over the window is "keep"
MIN_WINDOW_S = 1.0
KEEP_LANE_M = 0.5
LANE_CHANGE_M = 2.5     # about two thirds of a 3.5 m lane: the ego's centre is in the next lane
TURN_RAD = 0.5
BRAKE_MPS2 = 1.0        # braking onset: the first step decelerating harder than this


def window_end(conflict_step: int | None, n_steps: int) -> int:
    """Last index of the decision window on a grid of ``n_steps`` states."""
    lo = int(round(MIN_WINDOW_S / DT))
    end = n_steps - 1 if conflict_step is None else conflict_step
    return int(min(max(end, lo), n_steps - 1))


def frenet(path: RefPath, x: F64, y: F64) -> tuple[F64, F64]:
    """(arc length s, signed offset d, + left) of points (T,) on the reference path."""
    a, b = path.xy[:-1], path.xy[1:]
    ab = b - a
    seg2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
    p = np.stack([x, y], -1)[:, None, :]                       # (T, 1, 2)
    w = np.clip(np.einsum("tij,ij->ti", p - a, ab) / seg2, 0.0, 1.0)
    proj = a + w[..., None] * ab
    dist = np.hypot(*(p - proj).transpose(2, 0, 1))
    i = np.argmin(dist, axis=1)
    t = np.arange(len(x))
    rel = p[:, 0, :] - a[i]
    cross = ab[i, 0] * rel[:, 1] - ab[i, 1] * rel[:, 0]
    d = np.sign(cross) * dist[t, i]
    s = path.s[i] + w[t, i] * np.sqrt(seg2[i])
    return s, d


def longitudinal(v: F64, end: int) -> str:
    """accelerate / keep / decelerate / stop from a speed profile (states 0..end are the
    decision window; a halt anywhere in the horizon without speeding up is a stop)."""
    dv = float(v[end] - v[0])
    if float(np.min(v)) < STOP_MPS and dv <= KEEP_MPS:
        return "stop"
    if dv > KEEP_MPS:
        return "accelerate"
    if dv < -KEEP_MPS:
        return "decelerate"
    return "keep"


def road_turn(path: RefPath, s0: float, s1: float) -> float:
    """How far the reference path turns (rad, + left, unwrapped) between arc lengths s0, s1."""
    i0, i1 = np.clip(np.searchsorted(path.s, [s0, s1], side="right") - 1, 0, len(path.s) - 1)
    ang = np.arctan2(path.tangent[i0:i1 + 1, 1], path.tangent[i0:i1 + 1, 0])
    return float(np.sum(wrap_angle(np.diff(ang)))) if ang.size > 1 else 0.0


def lateral(path: RefPath, x: F64, y: F64, yaw: F64) -> str:
    """keep_lane / nudge_ / change_lane_ / turn_ + side from a path across the road."""
    s, d = frenet(path, x, y)
    off = d - d[0]
    worst = float(off[int(np.argmax(np.abs(off)))])
    own = float(np.sum(wrap_angle(np.diff(yaw))))       # unwrapped: a U-turn stays one side
    road = road_turn(path, float(s[0]), float(s[-1]))
    follows = abs(road) > TURN_RAD and np.sign(road) == np.sign(own)
    if abs(worst) < LANE_CHANGE_M and abs(own) > TURN_RAD and follows:
        return f"turn_{'left' if own > 0 else 'right'}"
    if abs(worst) < KEEP_LANE_M:
        return "keep_lane"
    side = "left" if worst > 0 else "right"
    return f"nudge_{side}" if abs(worst) < LANE_CHANGE_M else f"change_lane_{side}"


def own_action(path: RefPath, x: F64, y: F64, yaw: F64, v: F64,
               conflict_step: int | None) -> MetaAction:
    """The meta-action one trajectory performs from the ego's current state."""
    end = window_end(conflict_step, len(v))
    return MetaAction(longitudinal=longitudinal(v, end), lateral=lateral(path, x, y, yaw))


def brake_onset(v: F64) -> float | None:
    """Seconds from the anchor to the first step decelerating harder than BRAKE_MPS2."""
    hard = np.flatnonzero(np.diff(v) / DT < -BRAKE_MPS2)
    return None if hard.size == 0 else round(float(hard[0] * DT), 2)


def _summary(c: dict[str, float | None]) -> str:
    """The contrast in words, verb first ("brakes 1.2 s earlier and, at 1.5 s, is ...")."""
    parts = []
    pos_b, neg_b = c["brake_onset_s"], c["negative_brake_onset_s"]
    if pos_b is not None and neg_b is None:
        when = "brakes at once" if pos_b < 0.05 else f"starts braking at {pos_b:.1f} s"
        parts.append(f"{when} where the negative does not brake")
    elif pos_b is not None and neg_b is not None and abs(neg_b - pos_b) >= 0.2:
        parts.append(f"brakes {abs(neg_b - pos_b):.1f} s "
                     f"{'earlier' if pos_b < neg_b else 'later'}")
    dv, dd, ds = c["speed_delta_mps"], c["lateral_delta_m"], c["along_delta_m"]
    assert dv is not None and dd is not None and ds is not None
    diffs = []
    if abs(dv) >= 0.5:
        diffs.append(f"{abs(dv):.1f} m/s {'slower' if dv < 0 else 'faster'}")
    if abs(dd) >= 0.3:
        diffs.append(f"{abs(dd):.1f} m further {'left' if dd > 0 else 'right'}")
    if abs(ds) >= 0.5:
        diffs.append(f"{abs(ds):.1f} m {'further back' if ds < 0 else 'further ahead'}")
    at = f"at {c['at_time_s']:.1f} s"
    if diffs:
        body = ", ".join(diffs[:-1]) + (" and " if len(diffs) > 1 else "") + diffs[-1]
        parts.append(f"{'and, ' + at + ', ' if parts else ''}is {body}"
                     f"{'' if parts else ' ' + at}")
    if not parts:
        return f"stays within 0.5 m/s and 0.3 m of the negative {at}"
    return " ".join(parts)


def contrast(path: RefPath, pos: tuple[F64, F64, F64], neg: tuple[F64, F64, F64],
             conflict_step: int | None, negative_action: MetaAction) -> Contrast:
    """Positive minus negative at the negative's first conflict (else the horizon end);
    ``pos`` / ``neg`` are (x, y, v) on the same 0.1 s grid."""
    r = len(pos[2]) - 1 if conflict_step is None else min(conflict_step, len(pos[2]) - 1)
    sp, dp = frenet(path, pos[0], pos[1])
    sn, dn = frenet(path, neg[0], neg[1])
    c: dict[str, float | None] = {
        "at_time_s": round(r * DT, 2),
        "speed_delta_mps": round(float(pos[2][r] - neg[2][r]), 2),
        "lateral_delta_m": round(float(dp[r] - dn[r]), 2),
        "along_delta_m": round(float(sp[r] - sn[r]), 2),
        "brake_onset_s": brake_onset(pos[2]), "negative_brake_onset_s": brake_onset(neg[2])}
    return Contrast(**c, negative_action=negative_action,  # type: ignore[arg-type]
                    summary=_summary(c))


def corrective_action(path: RefPath, x: F64, y: F64, yaw: F64, v: F64, neg: int, pos: int,
                      conflict_step: int | None) -> tuple[MetaAction, Contrast]:
    """(the positive's own meta-action, how it differs from the negative) for rows of (K, T)
    arrays ``x, y, yaw, v``."""
    action = own_action(path, x[pos], y[pos], yaw[pos], v[pos], conflict_step)
    neg_action = own_action(path, x[neg], y[neg], yaw[neg], v[neg], conflict_step)
    diff = contrast(path, (x[pos], y[pos], v[pos]), (x[neg], y[neg], v[neg]), conflict_step,
                    neg_action)
    return action, diff
