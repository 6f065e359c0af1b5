"""perfsuite.analysis.moderated: the empirical-Bayes prior, and false alarms / power by simulation."""

import numpy as np
import pandas as pd

from perfsuite.analysis import comparison as C
from perfsuite.analysis import moderated as M
from perfsuite.analysis import stats


def test_prior_recovers_a_known_scaled_inverse_chi2():
    rng = np.random.default_rng(1)
    d0, s02, df = 12.0, 0.05**2, 8
    sigma2 = d0 * s02 / rng.chisquare(d0, 20000)
    var = sigma2 * rng.chisquare(df, 20000) / df
    e_d0, e_s02 = M.prior(var, np.full(20000, float(df)))
    assert abs(e_d0 / d0 - 1) < 0.2 and abs(e_s02 / s02 - 1) < 0.05


def test_false_alarms_hold_and_power_rises():
    rng = np.random.default_rng(2)
    rows, n, cv = 30, 5, 0.05
    trials = 300
    fa_w = fa_m = hit_w = hit_m = 0
    for _ in range(trials):
        a = rng.normal(1, cv, (rows, n))
        b = rng.normal(1, cv, (rows, n))
        b[0] *= 0.90
        pw, pm = stats.welch(a, b).p, M.moderated_p(a, b)
        fa_w += np.any(stats.holm(pw)[1:] < 0.05)
        fa_m += np.any(stats.holm(pm)[1:] < 0.05)
        hit_w += stats.holm(pw)[0] < 0.05
        hit_m += stats.holm(pm)[0] < 0.05
    assert fa_m / trials <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / trials)
    assert hit_m > hit_w * 1.2, (hit_w, hit_m)


def test_compare_moderated_interval_agrees_with_its_verdict():
    rng = np.random.default_rng(3)
    recs = []
    for side, f in (("a", 1.0), ("b", 1.0)):
        for i in range(6):
            v = rng.normal(1e5 * (0.9 if side == "b" and i == 0 else 1), 3e3, 5)
            recs.append(pd.DataFrame({"name": f"{side}-c{i}", "iops": v, "label": side, "smp": i}))
    df = pd.concat(recs)
    c = C.compare(df[df.label == "a"], df[df.label == "b"], test="moderated")
    r = c.rows.set_index("config")
    sig = r["p_adj"] < 0.05
    assert ((r["ci_high"] < 1) | (r["ci_low"] > 1))[sig].all()
