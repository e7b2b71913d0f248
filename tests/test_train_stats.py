"""Paired significance tests between ablation arms: hand numbers, and scipy as the independent
reference for the t-test and the permutation test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cfpair.errors import ConfigError
from cfpair.train.stats import (
    bootstrap_ci,
    holm,
    margin_p,
    paired_t,
    paired_test,
    sign_flip_p,
)

# collision rates of two arms over 6 (scene seed, training seed) runs
A = [0.30, 0.28, 0.35, 0.25, 0.31, 0.33]
B = [0.14, 0.15, 0.20, 0.16, 0.12, 0.18]


def test_paired_t_by_hand_and_against_scipy() -> None:
    # d = B - A = -0.16 -0.13 -0.15 -0.09 -0.19 -0.15: mean -0.145; squared deviations sum to
    # 0.00555, sample sd sqrt(0.00555 / 5) = 0.0333167; t = -0.145 / (0.0333167 / sqrt 6)
    d = np.array(B) - np.array(A)
    assert np.isclose(d.mean(), -0.145) and np.isclose(d.std(ddof=1), 0.0333167, atol=1e-6)
    t, p = paired_t(A, B)
    assert np.isclose(t, -10.6606, atol=1e-3)
    ref = stats.ttest_rel(B, A)
    assert np.isclose(t, ref.statistic) and np.isclose(p, ref.pvalue)
    assert p < 0.001
    assert paired_t([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)
    t, p = paired_t([0.0, 0.0], [1.0, 1.0])   # no spread: the t-test is undefined
    assert t == np.inf and np.isnan(p)


def test_sign_flip_exact_by_hand() -> None:
    # 4 pairs, every difference positive: only all-plus and all-minus reach |mean| = obs
    assert sign_flip_p([0, 0, 0, 0], [1, 2, 3, 4]) == pytest.approx(2 / 16)
    # 9 pairs all one way: 2 / 512 -- the smallest p a 3 x 3 seed grid can give
    assert sign_flip_p(np.zeros(9), -np.arange(1, 10)) == pytest.approx(2 / 512)
    # d = (1, -1): observed mean 0, every assignment reaches it -> p = 1
    assert sign_flip_p([0, 0], [1, -1]) == 1.0
    # d = (3, 1, -1), observed |mean| 1: the 8 flips give sums +-3, +-5, +-3, +-1 (|mean|
    # 1, 5/3, 1, 1/3): 6 of 8 reach 1
    assert sign_flip_p([0, 0, 0], [3, 1, -1]) == pytest.approx(6 / 8)


def test_sign_flip_matches_scipy_permutation_test() -> None:
    ref = stats.permutation_test((A, B), lambda x, y: np.mean(y - x), vectorized=False,
                                 permutation_type="samples", n_resamples=np.inf)
    assert sign_flip_p(A, B) == pytest.approx(ref.pvalue)
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 20), rng.normal(0.3, 1, 20)   # 20 pairs: Monte Carlo branch
    ref = stats.permutation_test((a, b), lambda x, y: np.mean(y - x), vectorized=False,
                                 permutation_type="samples", n_resamples=20000, random_state=0)
    assert abs(sign_flip_p(a, b) - ref.pvalue) < 0.02


def test_paired_test_bundle_and_bootstrap() -> None:
    r = paired_test(A, B)
    assert r.n == 6 and np.isclose(r.mean_diff, -0.145)
    assert np.isclose(r.p_wilcoxon, stats.wilcoxon(np.array(B) - np.array(A)).pvalue)
    assert r.p_sign_flip == pytest.approx(2 / 64)
    assert r.ci_low <= -0.145 <= r.ci_high < 0   # the whole interval below 0
    assert min(np.array(B) - np.array(A)) <= r.ci_low
    lo, hi = bootstrap_ci([0, 0, 0], [1, 1, 1])
    assert lo == hi == 1.0
    same = paired_test([0.2, 0.3], [0.2, 0.3])
    assert same.mean_diff == 0.0 and np.isnan(same.p_wilcoxon) and same.p_sign_flip == 1.0


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ConfigError, match="one length"):
        paired_t([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="at least 2"):
        paired_test([1.0], [2.0])
    with pytest.raises(ConfigError, match="finite"):
        sign_flip_p([1.0, np.nan], [1.0, 2.0])


def test_holm_by_hand() -> None:
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, max(0.04, 0.06), max(.., 0.06), max(.., 0.5)
    got = holm([0.03, 0.5, 0.01, 0.02])
    assert got == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])          # monotone step-down
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])          # capped at 1
    nan = holm([0.01, float("nan"), 0.04])                        # nan is not in the family
    assert nan[0] == pytest.approx(0.02) and np.isnan(nan[1]) and nan[2] == pytest.approx(0.04)
    assert holm([]).shape == (0,)
    # Holm never rejects less than Bonferroni and never more than the unadjusted tests
    rng = np.random.default_rng(0)
    for _ in range(100):
        p = rng.uniform(0, 0.2, 7)
        h = holm(p)
        assert (h >= p - 1e-15).all() and (h <= np.minimum(1, 7 * p) + 1e-15).all()
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        holm([1.5])


def test_margin_p_by_hand_and_against_scipy() -> None:
    a = [0.30, 0.25, 0.20, 0.28]
    b = [0.10, 0.12, 0.09, 0.15]
    d = np.subtract(b, 0.7 * np.asarray(a))
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert margin_p(a, b, 0.7) == pytest.approx(stats.t.cdf(t, len(d) - 1))
    assert margin_p(a, b, 0.7) == pytest.approx(
        stats.ttest_1samp(d, 0.0, alternative="less").pvalue)
    assert margin_p(a, b, 0.7) < 0.05                      # well past a 30 % cut
    assert margin_p(a, [0.27, 0.2, 0.19, 0.26], 0.7) > 0.5  # a 5-10 % cut is not 30 %
    assert margin_p([1.0, 1.0], [0.7, 0.7], 0.7) == 1.0     # exactly on the margin
    with pytest.raises(ConfigError):
        margin_p([0.1], [0.1], 0.7)
