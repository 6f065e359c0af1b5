"""perfsuite.analysis.sequential: the mixture t-test's formula, and its guarantees by simulation."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from perfsuite.analysis import sequential as S


@pytest.mark.parametrize("n,t", [(3, 0.5), (5, 2.0), (12, -3.1), (30, 1.2)])
def test_bayes_factor_is_the_noncentral_t_mixture(n, t):
    """BF = integral of the noncentral-t density of t over delta ~ N(0, tau^2), over the central one."""
    tau, nu = S.TAU, n - 1
    num = integrate.quad(lambda d: sps.nct.pdf(t, nu, d * math.sqrt(n)) * sps.norm.pdf(d, 0, tau),
                         -12 * tau, 12 * tau, limit=200)[0]
    ref = num / sps.t.pdf(t, nu)
    sd = 1.7
    mean = t * sd / math.sqrt(n)
    assert float(S.bayes_factor(n, mean, sd)) == pytest.approx(ref, rel=1e-6)


def test_false_alarms_hold_when_looking_after_every_pair():
    rng = np.random.default_rng(4)
    d = rng.normal(0, 0.07, (20000, 120))
    des = S.Design(alpha=0.05, n_min=2, n_max=120, threshold=1e-9)  # never stop for "no change"
    rate = np.mean(S.run_paths(d, des).decision == S.SEQ_CHANGE)
    assert rate <= 0.05, rate


def test_confidence_sequence_covers_and_no_change_is_safe():
    rng = np.random.default_rng(5)
    mu = math.log(0.95)  # a true 5% drop: "no change" within 5% must be rare
    d = rng.normal(mu, 0.07, (20000, 60))
    des = S.Design(alpha=0.05, n_max=60)
    res = S.run_paths(d, des)
    assert np.mean(res.decision == S.SEQ_NONE) <= 0.05
    hw = S.cs_halfwidth(res.n, res.sd, des.alpha)
    assert np.mean(np.abs(res.mean - mu) > hw) <= 0.05


def test_bias_adjusted_estimate_is_closer_to_the_truth():
    rng = np.random.default_rng(6)
    des = S.Design(alpha=0.05, n_max=38)
    mu, sd = math.log(0.95), math.sqrt(2) * 0.10  # CV 10%: early stops exaggerate most
    res = S.run_paths(rng.normal(mu, sd, (800, 38)), des)
    # Whitehead's estimate shrinks the bias of the stopped mean (not all of it: the spread
    # it simulates with is the path's own, which is small on paths that stop early).
    naive = res.mean
    adj = np.array([S.adjusted_mean(m, s, n, des, n < des.n_max, sims=200, seed=1)
                    for m, s, n in zip(res.mean, res.sd, res.n)])
    assert abs(adj.mean() - mu) < abs(naive.mean() - mu), (naive.mean(), adj.mean(), mu)
    early = (res.decision == S.SEQ_CHANGE) & (res.n < 15)  # where the exaggeration is largest
    assert abs(adj[early].mean() - mu) < abs(naive[early].mean() - mu)


def test_pairs_from_boots_pairs_boot_means_in_boot_order():
    d = S.pairs_from_boots([1.0, 3.0, 10.0, 10.0], [10, 10, 2, 2], [2.0, 2.0, 20.0, 20.0], [2, 2, 10, 10])
    np.testing.assert_allclose(d, [math.log(2 / 10), math.log(20 / 2)])
