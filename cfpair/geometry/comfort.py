"""Comfort against the nuPlan/NAVSIM bounds, with NAVSIM v1.1's Savitzky-Golay filtering.

Signals per trajectory (any leading dims, time last): longitudinal and lateral acceleration in
the body frame, jerk magnitude, longitudinal jerk, yaw rate and yaw acceleration. Every bound is
strict (lo < value < hi at every step) and values are rounded to 8 decimals, as NAVSIM does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cfpair.geometry.signal import savgol_filter

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class ComfortBounds:
    """nuPlan thresholds used by NAVSIM (pdm_comfort_metrics.py)."""

    lon_accel: tuple[float, float] = (-4.05, 2.40)
    lat_accel: float = 4.89
    jerk: float = 8.37
    lon_jerk: float = 4.13
    yaw_accel: float = 1.93
    yaw_rate: float = 0.95


@dataclass(frozen=True)
class Comfort:
    """Per-trajectory verdicts (leading shape) and the filtered signals (..., T)."""

    ok: Bool
    lon_accel_ok: Bool
    lat_accel_ok: Bool
    jerk_ok: Bool
    lon_jerk_ok: Bool
    yaw_rate_ok: Bool
    yaw_accel_ok: Bool
    lon_accel: F64
    lat_accel: F64
    jerk: F64
    lon_jerk: F64
    yaw_rate: F64
    yaw_accel: F64


def _sg(x: F64, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> F64:
    n = x.shape[-1]
    window = min(window, n)
    poly = min(poly, window - 1)
    if deriv > poly:
        return np.zeros_like(x)
    return np.round(savgol_filter(x, window, poly, deriv=deriv, delta=delta), 8)


def navsim_unwrap(yaw: F64) -> F64:
    """NAVSIM's heading unwrap along the last axis: psi[t] - 2 pi * sum_{tau <= t}
    round((psi[tau] - psi[tau - 1]) / 2 pi) (numpy round, half to even), not ``np.unwrap``."""
    jumps = np.round(np.diff(yaw, axis=-1) / (2 * np.pi))
    return yaw - 2 * np.pi * np.concatenate(
        [np.zeros(yaw.shape[:-1] + (1,)), np.cumsum(jumps, axis=-1)], axis=-1)


def comfort(lon_accel: ArrayLike, lat_accel: ArrayLike, yaw: ArrayLike, dt: float,
            bounds: ComfortBounds = ComfortBounds()) -> Comfort:
    """NAVSIM v1.1 comfort from body-frame accelerations and headings sampled every dt s.

    Filters: accelerations savgol(window min(41, T), poly 2); jerk = d/dt (window 41) of
    savgol(window 8) of |a| (and of a_lon for the longitudinal jerk); yaw rate / yaw
    acceleration = first / second savgol derivative (window 5, poly 2 / 3) of the heading
    unwrapped as NAVSIM does (:func:`navsim_unwrap`).
    """
    ax = np.asarray(lon_accel, dtype=np.float64)
    ay = np.asarray(lat_accel, dtype=np.float64)
    heading = navsim_unwrap(np.asarray(yaw, dtype=np.float64))
    n = ax.shape[-1]
    win = min(41, n)
    lon = _sg(ax, win, 2)
    lat = _sg(ay, win, 2)
    jerk = _sg(_sg(np.hypot(ax, ay), 8, 2), win, 2, deriv=1, delta=dt)
    lon_jerk = _sg(_sg(ax, 8, 2), win, 2, deriv=1, delta=dt)
    yaw_rate = _sg(heading, 5, 2, deriv=1, delta=dt)
    yaw_accel = _sg(heading, 5, 3, deriv=2, delta=dt)
    b = bounds

    def within(v: F64, lo: float, hi: float) -> Bool:
        return np.all((v > lo) & (v < hi), axis=-1)

    res = dict(
        lon_accel_ok=within(lon, *b.lon_accel),
        lat_accel_ok=within(lat, -b.lat_accel, b.lat_accel),
        jerk_ok=within(jerk, -b.jerk, b.jerk),
        lon_jerk_ok=within(lon_jerk, -b.lon_jerk, b.lon_jerk),
        yaw_rate_ok=within(yaw_rate, -b.yaw_rate, b.yaw_rate),
        yaw_accel_ok=within(yaw_accel, -b.yaw_accel, b.yaw_accel),
    )
    ok = np.logical_and.reduce(list(res.values()))
    return Comfort(ok=ok, lon_accel=lon, lat_accel=lat, jerk=jerk, lon_jerk=lon_jerk,
                   yaw_rate=yaw_rate, yaw_accel=yaw_accel, **res)


def body_accelerations(x: ArrayLike, y: ArrayLike, yaw: ArrayLike, dt: float
                       ) -> tuple[F64, F64]:
    """Longitudinal and lateral acceleration (m/s^2, body frame) of a path sampled every dt,
    from second-order central differences of the positions."""
    x, y, yaw = (np.asarray(a, dtype=np.float64) for a in (x, y, yaw))
    axw = np.gradient(np.gradient(x, dt, axis=-1), dt, axis=-1)
    ayw = np.gradient(np.gradient(y, dt, axis=-1), dt, axis=-1)
    c, s = np.cos(yaw), np.sin(yaw)
    return c * axw + s * ayw, -s * axw + c * ayw


def comfort_of_path(x: ArrayLike, y: ArrayLike, yaw: ArrayLike, dt: float,
                    bounds: ComfortBounds = ComfortBounds()) -> Comfort:
    """:func:`comfort` for a path given only as poses (accelerations from finite differences)."""
    lon, lat = body_accelerations(x, y, yaw, dt)
    return comfort(lon, lat, yaw, dt, bounds)
