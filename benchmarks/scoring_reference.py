"""A straightforward per-trajectory NAVSIM v1.1 simulator (spec §1-§4), the peer in scoring.py.

One proposal at a time and one step at a time, on Python floats and small numpy arrays, written
from the spec's text the way one would without batching in mind: the 9 knots interpolated with
``np.interp``; both profile fits as dense least squares with ``np.linalg.pinv`` (the 80 x 40
velocity design matrix and NAVSIM's banded regulariser as NAVSIM builds it); the lateral LQR's
10-step lift multiplied out with 3 x 3 matrices; the bicycle step on scalars. It shares no code
with ``cfpair.scoring`` and so doubles as an independent check of it (scoring.py compares both).
"""

from __future__ import annotations

import math

import numpy as np

WHEEL_BASE = 3.089
DT = 0.1
N_STEPS = 40
HORIZON = 10
JERK_PENALTY = 1e-4
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10
Q_LON, R_LON = 10.0, 1.0
Q_LAT = np.diag([1.0, 10.0, 0.0])
R_LAT = 1.0
STOP_GAIN, STOP_SPEED = 0.5, 0.2
MAX_STEER = math.pi / 3
TAU_ACCEL, TAU_STEER = 0.2, 0.05


def principal_value(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


def se2(x: float, y: float, h: float) -> np.ndarray:
    return np.array([[math.cos(h), -math.sin(h), x], [math.sin(h), math.cos(h), y], [0, 0, 1.0]])


def reference_poses(poses: np.ndarray, origin: np.ndarray, pose_dt: float = 0.5) -> np.ndarray:
    """(P, 3) poses relative to origin -> (41, 3) global reference (§1.2-§1.6)."""
    o = se2(*origin)
    knots = [tuple(origin)]
    for x, y, h in poses:
        m = o @ se2(x, y, h)
        knots.append((m[0, 2], m[1, 2], math.atan2(m[1, 0], m[0, 0])))
    knots_arr = np.array(knots)
    knot_t = np.arange(len(knots)) * pose_dt
    query = np.minimum(np.arange(N_STEPS + 1) * DT, knot_t[-1])
    heading = np.interp(query, knot_t, np.unwrap(knots_arr[:, 2]))
    return np.stack([np.interp(query, knot_t, knots_arr[:, 0]),
                     np.interp(query, knot_t, knots_arr[:, 1]),
                     [principal_value(h) for h in heading]], axis=-1)


def fit_profiles(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(41, 3) reference -> speeds (40,) and curvatures (40,), NAVSIM's two fits (§2.2)."""
    m = len(ref) - 1
    dxy = np.diff(ref[:, :2], axis=0)
    dpsi = np.array([wrap(d) for d in np.diff(ref[:, 2])])
    a = np.zeros((2 * m, m))
    for i in range(m):
        for row, c in ((2 * i, math.cos(ref[i, 2])), (2 * i + 1, math.sin(ref[i, 2]))):
            a[row, 0] = DT * c
            a[row, 1:i + 1] = DT * DT * c
    band = np.zeros((m - 2, m - 1))
    band[:, 1:] = np.eye(m - 2)
    band[:, :-1] = -np.eye(m - 2)  # NAVSIM's matrix, quirk included
    reg = np.hstack([np.zeros((m - 2, 1)), band])
    theta = np.linalg.pinv(a.T @ a + JERK_PENALTY * reg.T @ reg) @ a.T @ dxy.reshape(-1)
    speeds = theta[0] + DT * np.concatenate([[0.0], np.cumsum(theta[1:])])
    b = np.zeros((m, m))
    for i in range(m):
        b[i, 0] = DT * speeds[i]
        b[i, 1:i + 1] = DT * DT * speeds[i]
    q = CURVATURE_RATE_PENALTY * np.eye(m)
    q[0, 0] = INITIAL_CURVATURE_PENALTY
    phi = np.linalg.pinv(b.T @ b + q) @ b.T @ dpsi
    curvatures = phi[0] + DT * np.concatenate([[0.0], np.cumsum(phi[1:])])
    return speeds, curvatures


def track(i: int, state: list[float], ref_pose: np.ndarray, speeds: np.ndarray,
          curvatures: np.ndarray) -> tuple[float, float]:
    """(acceleration, steering rate) commands at step i (§2.3-§2.7)."""
    x, y, h, v, delta = state[0], state[1], state[2], state[3], state[7]
    last = len(speeds) - 1
    j = min(i + HORIZON, last)
    v_ref = speeds[j]
    if v_ref <= STOP_SPEED and v <= STOP_SPEED:
        return -STOP_GAIN * (v - v_ref), 0.0
    big_t = HORIZON * DT
    accel = -(Q_LON * big_t / (Q_LON * big_t * big_t + R_LON)) * (v - v_ref)
    xr, yr, hr = ref_pose
    z0 = np.array([-(x - xr) * math.sin(hr) + (y - yr) * math.cos(hr), wrap(h - hr), delta])
    phi, gamma, offset = np.eye(3), np.zeros(3), np.zeros(3)
    b = np.array([0.0, 0.0, DT])
    for k in range(HORIZON):
        vk = v + k * DT * accel
        kappa = curvatures[min(i + k, last)]
        f = np.array([[1.0, vk * DT, 0.0], [0.0, 1.0, vk * DT / WHEEL_BASE], [0.0, 0.0, 1.0]])
        phi, gamma = f @ phi, f @ gamma + b
        offset = f @ offset + np.array([0.0, -vk * kappa * DT, 0.0])
    err = phi @ z0 + offset
    err[1], err[2] = wrap(err[1]), wrap(err[2])
    rate = -(gamma @ Q_LAT @ err) / (gamma @ Q_LAT @ gamma + R_LAT)
    return accel, float(rate)


def bicycle(state: list[float], accel_cmd: float, rate_cmd: float) -> list[float]:
    """One Euler step of the kinematic bicycle with actuator lags (§3)."""
    x, y, h, v, _, a, _, delta, _, omega, _ = state
    a_new = a + DT / (DT + TAU_ACCEL) * (accel_cmd - a)
    delta_lagged = delta + DT / (DT + TAU_STEER) * (DT * rate_cmd)
    rate = (delta_lagged - delta) / DT
    v_new = v + DT * a_new
    delta_new = min(max(delta + DT * rate, -MAX_STEER), MAX_STEER)
    omega_new = v_new * math.tan(delta_new) / WHEEL_BASE
    return [x + DT * v * math.cos(h), y + DT * v * math.sin(h),
            principal_value(h + DT * v * math.tan(delta) / WHEEL_BASE), v_new, 0.0, a_new, 0.0,
            delta_new, rate, omega_new, (omega_new - omega) / DT]


def simulate_one(ref: np.ndarray, init: np.ndarray) -> np.ndarray:
    """(41, 3) reference, (11,) initial state -> (41, 11) states (§4)."""
    speeds, curvatures = fit_profiles(ref)
    states = [list(map(float, init))]
    for i in range(N_STEPS):
        accel, rate = track(i, states[-1], ref[i], speeds, curvatures)
        states.append(bicycle(states[-1], accel, rate))
    return np.array(states)


def simulate_reference(poses: np.ndarray, init_state: np.ndarray) -> np.ndarray:
    """(K, P, 3) poses relative to init_state's pose, (11,) or (K, 11) -> (K, 41, 11)."""
    poses = np.asarray(poses, dtype=np.float64)
    init = np.broadcast_to(np.asarray(init_state, dtype=np.float64), (len(poses), 11))
    pairs = zip(poses, init, strict=True)
    return np.stack([simulate_one(reference_poses(p, s[:3]), s) for p, s in pairs])


# --- a per-trajectory NAVSIM v1.1 scorer (spec §5), the peer of cfpair.scoring.pdms ---------

HALF_L, HALF_W, REAR_TO_CENTER = 2.588, 1.1485, 1.461


def footprint(state: np.ndarray, rear_to_center: float = REAR_TO_CENTER, half_l: float = HALF_L,
              half_w: float = HALF_W) -> tuple[float, float, list[tuple[float, float]]]:
    """Box centre and corners FL, RL, RR, FR of one rear-axle state (§5.1)."""
    x, y, h = float(state[0]), float(state[1]), float(state[2])
    c, s = math.cos(h), math.sin(h)
    cx, cy = x + rear_to_center * c, y + rear_to_center * s
    pts = [(cx + lx * c - ly * s, cy + lx * s + ly * c)
           for lx, ly in ((half_l, half_w), (-half_l, half_w), (-half_l, -half_w),
                          (half_l, -half_w))]
    return cx, cy, pts


def agent_polygon(x: float, y: float, yaw: float, length: float, width: float):  # noqa: ANN201
    import shapely
    c, s = math.cos(yaw), math.sin(yaw)
    return shapely.Polygon([(x + lx * c - ly * s, y + lx * s + ly * c) for lx, ly in (
        (length / 2, width / 2), (-length / 2, width / 2), (-length / 2, -width / 2),
        (length / 2, -width / 2))])


def rel_angle(x: float, y: float, h: float, qx: float, qy: float) -> float:
    n = math.hypot(qx - x, qy - y)
    if n == 0:
        return float("nan")
    return float(np.arccos((math.cos(h) * (qx - x) + math.sin(h) * (qy - y)) / n))


def score_one(states: np.ndarray, scene: dict) -> dict[str, float]:
    """NC, DAC, TTC, comfort and raw progress of one trajectory (41, 11), looping over steps
    and tracks with shapely polygons as NAVSIM does. ``scene``: ``tracks`` (list of dicts with
    per-step ``poly`` (None where absent), ``static``, ``first_speed``), ``drivable`` /
    ``lanes`` (shapely polygons), ``route`` (shapely LineString), ego box geometry."""
    import shapely
    from scipy.signal import savgol_filter

    n_t = states.shape[0]
    geo = scene["ego"]
    boxes = [footprint(s, *geo) for s in states]
    polys = [shapely.Polygon(b[2]) for b in boxes]
    speed = [math.hypot(s[3], s[4]) for s in states]

    def flags(t: int) -> tuple[bool, bool]:
        corners = [shapely.Point(p) for p in boxes[t][2]]
        off = scene["drivable"] is not None and not all(
            any(d.contains(q) for d in scene["drivable"]) for q in corners)
        touched = [ln for ln in scene["lanes"] if any(ln.contains(q) for q in corners)]
        whole = any(all(ln.contains(q) for q in corners) for ln in scene["lanes"])
        return off, len(touched) > 1 and not whole

    area = [flags(t) for t in range(n_t)]
    nc, ignore = 1.0, set()
    for t in range(n_t):
        for j, tr in enumerate(scene["tracks"]):
            poly = tr["poly"][t]
            if poly is None or j in ignore or not polys[t].intersects(poly):
                continue
            ang = rel_angle(states[t][0], states[t][1], states[t][2], poly.centroid.x,
                            poly.centroid.y)
            bumper = shapely.LineString([boxes[t][2][0], boxes[t][2][3]])
            if speed[t] <= 0.05:
                kind = "stopped_ego"
            elif tr["static"] or tr["first_speed"] <= 0.05:
                kind = "stopped_track"
            elif ang > math.radians(150):
                kind = "active_rear"
            elif bumper.intersects(poly):
                kind = "active_front"
            else:
                kind = "active_lateral"
            fault = kind in ("active_front", "stopped_track") or (
                kind == "active_lateral" and (area[t][0] or area[t][1]))
            if fault:
                nc = min(nc, 0.5 if tr["static"] else 0.0)
            else:
                ignore.add(j)
    dac = float("nan") if scene["drivable"] is None else float(not any(a[0] for a in area))
    ttc, ignore = 1.0, set()
    for t in range(n_t):
        h = states[t][2]
        for off in (0, 3, 6, 9):
            d = off * 0.1 * speed[t]
            moved = shapely.Polygon([(px + d * math.cos(h), py + d * math.sin(h))
                                     for px, py in boxes[t][2]])
            for j, tr in enumerate(scene["tracks"]):
                poly = tr["poly"][t + off] if t + off < len(tr["poly"]) else None
                if poly is None or j in ignore or speed[t] < 0.005 or not moved.intersects(poly):
                    continue
                ang = rel_angle(states[t][0], states[t][1], h, poly.centroid.x, poly.centroid.y)
                if ang < math.radians(30) or ((area[t][0] or area[t][1])
                                              and not ang > math.radians(150)):
                    ttc = 0.0
                else:
                    ignore.add(j)
    c0, c40 = boxes[0], boxes[-1]
    route = scene["route"]
    progress = max(0.0, route.project(shapely.Point(c40[0], c40[1]))
                   - route.project(shapely.Point(c0[0], c0[1])))
    time = np.arange(n_t) * 0.1
    delta = float(np.mean(np.diff(time)))
    ax, ay = states[:, 5], states[:, 6]
    psi = states[:, 2].copy()
    psi[1:] -= 2 * np.pi * np.cumsum(np.round(np.diff(states[:, 2]) / (2 * np.pi)))

    def r8(v: np.ndarray) -> np.ndarray:
        return np.round(v, 8)

    checks = [
        (r8(savgol_filter(ax, 41, 2)), -4.05, 2.40),
        (r8(savgol_filter(ay, 41, 2)), -4.89, 4.89),
        (r8(savgol_filter(r8(savgol_filter(np.hypot(ax, ay), 8, 2)), 41, 2, deriv=1,
                          delta=delta)), -8.37, 8.37),
        (r8(savgol_filter(r8(savgol_filter(ax, 8, 2)), 41, 2, deriv=1, delta=delta)),
         -4.13, 4.13),
        (r8(savgol_filter(psi, 5, 3, deriv=2, delta=delta)), -1.93, 1.93),
        (r8(savgol_filter(psi, 5, 2, deriv=1, delta=delta)), -0.95, 0.95)]
    comfort = float(all(np.all((v > lo) & (v < hi)) for v, lo, hi in checks))
    return {"nc": nc, "dac": dac, "ttc": ttc, "comfort": comfort, "progress": progress}


def pdms_reference(all_states: np.ndarray, scene: dict) -> list[dict[str, float]]:
    """Per-trajectory scores of K trajectories (K, 41, 11), one at a time; row 0 is the EP
    reference (NAVSIM's PDM-Closed row), each candidate normalised against it alone (§5.6)."""
    rows = [score_one(s, scene) for s in all_states]
    ref = rows[0]["progress"] * rows[0]["nc"] * (1.0 if math.isnan(rows[0]["dac"])
                                                 else rows[0]["dac"])
    for r in rows:
        dac = 1.0 if math.isnan(r["dac"]) else r["dac"]
        m = r["nc"] * dac
        p = r["progress"] * m
        top = max(ref, p)
        r["ep"] = p / top if top > 5.0 else (0.0 if m == 0 else 1.0)
        r["pdms"] = m * (5 * r["ep"] + 5 * r["ttc"] + 2 * r["comfort"]) / 12
    return rows
