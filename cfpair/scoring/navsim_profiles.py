"""NAVSIM v1.1's reference speed and curvature fits (spec navsim-tracking-and-scoring §2.2).

NAVSIM solves two regularised least-squares problems per proposal with ``np.linalg.pinv`` of
40 x 40 normal matrices. Both are rewritten here without changing their solutions:

- **Velocity.** The 80 x 40 design matrix ``A`` pairs row ``w_i`` (``dt`` in column 0, ``dt**2``
  in columns 1..i) with ``cos h_i`` and ``sin h_i``; since ``cos**2 + sin**2 = 1``,
  ``A^T A = W^T W`` does not depend on the proposal and ``A^T y = W^T s`` with
  ``s_i = cos h_i dx_i + sin h_i dy_i``. The speeds therefore solve one constant linear system
  in ``s``, built once with the regulariser ``D`` **exactly as NAVSIM builds it** (⚠ the
  "banded difference" matrix whose ``+I`` is overwritten by ``-I``: a ridge on a_0..a_36 plus one
  true jerk term (a_38 - a_37)^2; reproduced on purpose, §2.2 and §6.2). In speed variables the
  normal matrix is banded and well conditioned (cond ~7), solved by a precomputed Cholesky factor.
- **Curvature.** With ``B = diag(v) W`` and the change of variables ``kappa = W phi / dt``
  (kappa_0 = phi_0, phi_k = (kappa_k - kappa_{k-1}) / dt), the ridge problem becomes
  ``min sum (dt v_i kappa_i - dpsi_i)^2 + l0 kappa_0^2 + lk/dt^2 sum (kappa_k - kappa_{k-1})^2``,
  whose normal matrix is symmetric positive definite and tridiagonal; it is solved for all K
  proposals at once by the Thomas recursion (a fixed 2 x M step loop over (K,) arrays).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cfpair.scoring.navsim_reference import wrap_atan2
from cfpair.types import F64

Band = tuple[tuple[int, ...], ...]

#: velocity-fit regulariser ("jerk_penalty", §2.1)
JERK_PENALTY = 1e-4
#: curvature-fit regulariser ("curvature_rate_penalty", §2.1)
CURVATURE_RATE_PENALTY = 1e-2
#: regulariser on the initial curvature (INITIAL_CURVATURE_PENALTY, §2.1)
INITIAL_CURVATURE_PENALTY = 1e-10


def navsim_banded_matrix(n_rows: int) -> F64:
    """NAVSIM's ``_make_banded_difference_matrix`` as it really is (not a difference matrix)."""
    banded = np.zeros((n_rows, n_rows + 1), dtype=np.float64)
    eye = np.eye(n_rows, dtype=np.float64)
    banded[:, 1:] = eye
    banded[:, :-1] = -eye  # overwrites all but the last +1: the quirk of §2.2
    return banded


@lru_cache(maxsize=16)
def velocity_fit_factor(
    m: int, dt: float, jerk_penalty: float = JERK_PENALTY
) -> tuple[F64, Band, Band]:
    """Cholesky factor L of the speed-space normal matrix, and per row i the columns j < i with
    L[i, j] != 0 and the rows j > i with L[j, i] != 0 (banded: one neighbour, two at the end).

    theta = [v_0, a_0, ..., a_{m-2}] = P^-1 v with a_k = (v_{k+1} - v_k) / dt. NAVSIM's normal
    matrix A^T A + l R^T R becomes P^-T (dt^2 P^T P + l R^T R) P^-1 = dt^2 I + l (R P^-1)^T (R P^-1)
    (because W = dt P), and A^T y = W^T s becomes dt s; R is NAVSIM's quirky regulariser.
    """
    p_inv = np.zeros((m, m))
    p_inv[0, 0] = 1.0
    rows = np.arange(1, m)
    p_inv[rows, rows - 1] = -1.0 / dt
    p_inv[rows, rows] = 1.0 / dt
    regulariser = np.block([np.zeros((m - 2, 1)), navsim_banded_matrix(m - 2)]) @ p_inv
    normal = (dt * dt) * np.eye(m) + jerk_penalty * (regulariser.T @ regulariser)
    chol = np.linalg.cholesky(normal)
    chol.setflags(write=False)
    lower = tuple(tuple(int(j) for j in np.nonzero(chol[i, :i])[0]) for i in range(m))
    upper = tuple(tuple(int(j) + i + 1 for j in np.nonzero(chol[i + 1:, i])[0]) for i in range(m))
    return chol, lower, upper


def along_heading_displacements(ref_t: F64, cos_h: F64, sin_h: F64) -> F64:
    """(T, 3, K) poses and cos/sin of their first T-1 headings -> (T-1, K) displacements
    projected on the heading at each interval's start (s_i of the velocity fit)."""
    d = np.diff(ref_t[:, :2], axis=0)
    return cos_h * d[:, 0] + sin_h * d[:, 1]


def velocity_profile_t(along: F64, dt: float) -> F64:
    """(M, K) along-heading displacements -> (M, K) fitted speeds (proposals along axis 1).

    Banded forward/back substitution with the constant factor of :func:`velocity_fit_factor`,
    row by row over (K,) arrays: a proposal's speeds do not depend on the rest of the batch.
    """
    m = along.shape[0]
    chol, lower, upper = velocity_fit_factor(m, float(dt))
    y = dt * along
    for i in range(m):
        for j in lower[i]:
            y[i] -= chol[i, j] * y[j]
        y[i] /= chol[i, i]
    v = y  # back substitution with L^T, in place
    for i in range(m - 1, -1, -1):
        for j in upper[i]:
            v[i] -= chol[j, i] * v[j]
        v[i] /= chol[i, i]
    return v


def velocity_profile(reference: F64, dt: float) -> F64:
    """(K, T, 3) reference poses -> (K, T-1) fitted speeds v_i over interval i -> i+1 (§2.2)."""
    ref_t = np.ascontiguousarray(np.asarray(reference, dtype=np.float64).transpose(1, 2, 0))
    h = ref_t[:-1, 2]
    along = along_heading_displacements(ref_t, np.cos(h), np.sin(h))
    return np.ascontiguousarray(velocity_profile_t(along, dt).T)


def curvature_profile(reference: F64, speeds: F64, dt: float) -> F64:
    """(K, T, 3) reference, (K, T-1) fitted speeds -> (K, T-1) fitted curvatures kappa_i (§2.2)."""
    dpsi = np.ascontiguousarray(wrap_atan2(np.diff(reference[:, :, 2], axis=1)).T)
    return np.ascontiguousarray(curvature_profile_t(dpsi, np.ascontiguousarray(speeds.T), dt).T)


def curvature_profile_t(
    dpsi: F64,
    speeds: F64,
    dt: float,
    curvature_rate_penalty: float = CURVATURE_RATE_PENALTY,
    initial_curvature_penalty: float = INITIAL_CURVATURE_PENALTY,
) -> F64:
    """(M, K) wrapped heading increments and fitted speeds -> (M, K) curvatures (Thomas solve)."""
    m = speeds.shape[0]
    coupling = curvature_rate_penalty / (dt * dt)
    # symmetric tridiagonal normal matrix: diag[i] (per proposal), off-diagonal -coupling
    diag = (dt * dt) * speeds * speeds
    diag += 2.0 * coupling
    diag[0] += initial_curvature_penalty - coupling
    diag[-1] -= coupling
    rhs = dt * speeds * dpsi
    c = -coupling
    cp = np.empty_like(diag)  # Thomas recursion, in place on (K,) rows
    dp = np.empty_like(diag)
    denom = np.empty_like(diag[0])
    scratch = np.empty_like(diag[0])
    np.divide(c, diag[0], out=cp[0])
    np.divide(rhs[0], diag[0], out=dp[0])
    for i in range(1, m):
        np.multiply(c, cp[i - 1], out=denom)
        np.subtract(diag[i], denom, out=denom)
        np.divide(c, denom, out=cp[i])
        np.multiply(c, dp[i - 1], out=scratch)
        np.subtract(rhs[i], scratch, out=scratch)
        np.divide(scratch, denom, out=dp[i])
    kappa = dp  # back substitution in place
    for i in range(m - 2, -1, -1):
        np.multiply(cp[i], kappa[i + 1], out=scratch)
        kappa[i] -= scratch
    return kappa
