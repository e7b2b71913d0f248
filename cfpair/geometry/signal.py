"""Savitzky-Golay smoothing and differentiation in numpy ('interp' edge mode, as scipy's
``savgol_filter``), so comfort can follow NAVSIM's filtering without a scipy dependency."""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cfpair.errors import ShapeError

F64 = NDArray[np.float64]


@lru_cache(maxsize=64)
def _fit_cached(window: int, polyorder: int, deriv: int, delta: float, at: tuple[float, ...]
                ) -> F64:
    out = _fit_matrix(window, polyorder, deriv, delta, np.array(at, dtype=np.float64))
    out.flags.writeable = False
    return out


def _fit_matrix(window: int, polyorder: int, deriv: int, delta: float, at: F64) -> F64:
    """Rows map a window of samples to the deriv-th derivative of their least-squares
    polynomial, evaluated at positions ``at`` (sample units, 0 = first sample of the window)."""
    pos = np.arange(window, dtype=np.float64)
    vander = np.vander(pos, polyorder + 1, increasing=True)  # (window, p+1)
    coef_map = np.linalg.pinv(vander)  # (p+1, window): samples -> coefficients
    powers = np.arange(polyorder + 1)
    scale = np.zeros(polyorder + 1)
    valid = powers >= deriv
    scale[valid] = [factorial(p) / factorial(p - deriv) for p in powers[valid]]
    exps = np.clip(powers - deriv, 0, None)
    basis = np.where(valid, scale * at[:, None] ** exps, 0.0)  # (len(at), p+1)
    return basis @ coef_map / delta**deriv


def savgol_filter(x: ArrayLike, window: int, polyorder: int, deriv: int = 0,
                  delta: float = 1.0, axis: int = -1) -> F64:
    """Savitzky-Golay filter along ``axis`` with scipy's default ``mode='interp'``.

    Sample i takes the least-squares polynomial of the window x[i - s : i - s + window]
    evaluated at the window's centre, with s = window // 2 (odd) or window // 2 - 1 (even, as
    scipy's kernel is anchored); the first and last ``window // 2`` samples take the
    polynomial fitted to the first / last window instead.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    if polyorder >= window:
        raise ShapeError(f"polyorder {polyorder} must be less than window {window}")
    if window > n:
        raise ShapeError(f"window {window} is longer than the signal ({n} samples)")
    half = window // 2
    shift = half if window % 2 else half - 1
    row = _fit_cached(window, polyorder, deriv, float(delta), ((window - 1) / 2.0,))[0]
    out = np.empty_like(x)
    win = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)  # (..., n-w+1, w)
    out[..., shift:shift + win.shape[-2]] = win @ row
    edge = _fit_cached(window, polyorder, deriv, float(delta), tuple(range(window)))
    out[..., :half] = (x[..., :window] @ edge.T)[..., :half]
    out[..., n - half:] = (x[..., n - window:] @ edge.T)[..., window - half:]
    return np.moveaxis(out, -1, axis)
