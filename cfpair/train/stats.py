"""Paired significance tests between two ablation arms over matched runs (one observation per
(data seed, training seed): both arms saw the same scenes and the same seed): paired t-test,
exact sign-flip permutation test, Wilcoxon signed-rank, and a paired bootstrap interval; Holm's
step-down adjustment for a family of tests."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from cfpair.errors import ConfigError

#: above this many pairs the sign-flip test samples instead of enumerating 2^n flips
EXACT_MAX = 16


@dataclass(frozen=True)
class PairedTest:
    """b - a over n matched runs: mean and sample std of the differences, the paired t
    statistic and its two-sided p, the sign-flip permutation p, the Wilcoxon p (nan when every
    difference is 0), and a 95 % paired-bootstrap interval of the mean difference."""

    n: int
    mean_diff: float
    sd_diff: float
    t: float
    p_t: float
    p_sign_flip: float
    p_wilcoxon: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict."""
        return asdict(self)


def _diffs(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> np.ndarray:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"paired samples must be two 1-D arrays of one length, got {x.shape} "
                          f"and {y.shape}")
    if len(x) < 2:
        raise ConfigError(f"a paired test needs at least 2 pairs, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError("paired samples must be finite")
    return y - x


def paired_t(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> tuple[float, float]:
    """t = mean(d) / (sd(d) / sqrt(n)) with d = b - a (sample sd), two-sided p from Student's t
    with n - 1 degrees of freedom. All differences equal: the test is undefined, t = +-inf and
    p = nan (the sign-flip test and the interval still speak), or t = 0, p = 1 when all 0."""
    d = _diffs(a, b)
    n, m, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return (0.0, 1.0) if m == 0.0 else (math.copysign(math.inf, m), math.nan)
    t = m / (sd / math.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def sign_flip_p(a: np.ndarray | list[float], b: np.ndarray | list[float],
                n_resamples: int = 20000, seed: int = 0) -> float:
    """Two-sided permutation p of the mean difference under "the arm labels are exchangeable
    within each pair": the share of sign assignments of d whose |mean| >= the observed one
    (exact over all 2^n for n <= EXACT_MAX, else ``n_resamples`` random flips + the observed)."""
    d = _diffs(a, b)
    obs = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if len(d) <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d / len(d)) >= obs - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_resamples, len(d)))
    hits = int(np.sum(np.abs(signs @ d / len(d)) >= obs - tol))
    return (hits + 1) / (n_resamples + 1)


def bootstrap_ci(a: np.ndarray | list[float], b: np.ndarray | list[float],
                 n_resamples: int = 10000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile interval of the mean of d = b - a over pairs resampled with replacement."""
    d = _diffs(a, b)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_test(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> PairedTest:
    """Every paired statistic of b against a (same order = same run)."""
    d = _diffs(a, b)
    t, p_t = paired_t(a, b)
    if np.all(d == 0):
        p_w = float("nan")
    else:
        p_w = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    lo, hi = bootstrap_ci(a, b)
    return PairedTest(n=len(d), mean_diff=float(d.mean()), sd_diff=float(d.std(ddof=1)), t=t,
                      p_t=p_t, p_sign_flip=sign_flip_p(a, b), p_wilcoxon=p_w, ci_low=lo,
                      ci_high=hi)


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p values of one family of tests (same order as given; nan
    stays nan and does not count in the family): the i-th smallest of m becomes
    max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if (p[ok] < 0).any() or (p[ok] > 1).any():
        raise ConfigError("p values must lie in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def margin_p(a: np.ndarray | list[float], b: np.ndarray | list[float], ratio: float) -> float:
    """One-sided paired t p of "b is below ``ratio`` x a" (H1: mean(b - ratio a) < 0), e.g.
    ratio 0.7 for "b has at least 30 % fewer collisions than a". nan when every difference is
    equal and not 0 (the t test is undefined); 1 when all are 0."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = _diffs(ratio * x, y)
    if float(d.std(ddof=1)) == 0.0:
        return 1.0 if d.mean() >= 0 else math.nan
    return float(stats.ttest_1samp(d, 0.0, alternative="less").pvalue)
