"""NAVSIM v1.1's reference speed and curvature fits (spec navsim-tracking-and-scoring §2.2).

NAVSIM solves two regularised least-squares problems per proposal with ``np.linalg.pinv`` of
40 x 40 normal matrices. Both are rewritten here without changing their solutions:

- **Velocity.** The 80 x 40 design matrix ``A`` pairs row ``w_i`` (``dt`` in column 0, ``dt**2``
  in columns 1..i) with ``cos h_i`` and ``sin h_i``; since ``cos**2 + sin**2 = 1``,
  ``A^T A = W^T W`` does not depend on the proposal and ``A^T y = W^T s`` with
  ``s_i = cos h_i dx_i + sin h_i dy_i``. The speed profile is therefore one constant 40 x 40 map
  of ``s``, built once with the regulariser ``D`` **exactly as NAVSIM builds it** (⚠ the
  "banded difference" matrix whose ``+I`` is overwritten by ``-I``: a ridge on a_0..a_36 plus one
  true jerk term (a_38 - a_37)^2; reproduced on purpose, §2.2 and §6.2).
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


def integration_matrix(m: int, dt: float) -> F64:
    """W (m x m): row i has dt in column 0 and dt**2 in columns 1..i (the fits' design rows)."""
    w = np.tril(np.full((m, m), dt * dt), k=0)
    w[:, 0] = dt
    w[0, 1:] = 0.0
    return w


@lru_cache(maxsize=16)
def velocity_fit_map(m: int, dt: float, jerk_penalty: float = JERK_PENALTY) -> F64:
    """(m, m) matrix G with speed profile v = s @ G.T, s the along-heading displacements."""
    w = integration_matrix(m, dt)
    regulariser = np.block([np.zeros((m - 2, 1)), navsim_banded_matrix(m - 2)])  # (m-2, m)
    normal = w.T @ w + jerk_penalty * (regulariser.T @ regulariser)
    theta_map = np.linalg.pinv(normal) @ w.T  # theta = [v_0, a_0, ..., a_{m-2}]
    profile = np.tril(np.full((m, m), dt), k=0)  # v_i = v_0 + dt * sum_{k<i} a_k
    profile[:, 0] = 1.0
    profile[0, 1:] = 0.0
    g = profile @ theta_map
    g.setflags(write=False)
    return g


def along_heading_displacements(reference: F64) -> F64:
    """(K, T, 3) poses -> (T-1, K) displacements projected on the heading at each interval start."""
    d = np.diff(reference[:, :, :2], axis=1)
    h = reference[:, :-1, 2]
    return np.ascontiguousarray((np.cos(h) * d[..., 0] + np.sin(h) * d[..., 1]).T)


def velocity_profile_t(along: F64, dt: float) -> F64:
    """(M, K) along-heading displacements -> (M, K) fitted speeds (proposals along axis 1).

    The 40-term sums run in a fixed order over (M, K) rows, so a proposal's speeds do not depend
    on how many other proposals share the batch (a BLAS product or einsum does not promise that).
    """
    g = velocity_fit_map(along.shape[0], float(dt))
    speeds = g[:, :1] * along[0]
    for i in range(1, along.shape[0]):
        speeds += g[:, i:i + 1] * along[i]
    return speeds


def velocity_profile(reference: F64, dt: float) -> F64:
    """(K, T, 3) reference poses -> (K, T-1) fitted speeds v_i over interval i -> i+1 (§2.2)."""
    return np.ascontiguousarray(velocity_profile_t(along_heading_displacements(reference), dt).T)


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
    cp = np.empty_like(diag)
    dp = np.empty_like(diag)
    cp[0] = c / diag[0]
    dp[0] = rhs[0] / diag[0]
    for i in range(1, m):
        denom = diag[i] - c * cp[i - 1]
        cp[i] = c / denom
        dp[i] = (rhs[i] - c * dp[i - 1]) / denom
    kappa = np.empty_like(diag)
    kappa[-1] = dp[-1]
    for i in range(m - 2, -1, -1):
        kappa[i] = dp[i] - cp[i] * kappa[i + 1]
    return kappa
