"""compare --metric p99: tail latency on the log scale, boot means as the unit."""

import numpy as np
import pandas as pd

from perfsuite.analysis import comparison as C


def _side(rng, label, factor, boots=4, reps=3):
    level = 800 * factor * np.exp(rng.normal(0, 0.05, boots))
    v = np.repeat(level, reps) * np.exp(rng.normal(0, 0.15, boots * reps))  # skewed, multiplicative
    return pd.DataFrame({"name": f"{label}-x", "label": label, "lat_p99_us": v, "iops": 1e4,
                         "boot": np.repeat(np.arange(1, boots + 1), reps)})


def test_p99_regression_and_interval_on_the_log_scale():
    rng = np.random.default_rng(1)
    a, b = _side(rng, "a", 1.0), _side(rng, "b", 1.4)
    c = C.compare(a, b, metric="p99")
    r = c.rows.iloc[0]
    assert c.params["metric"] == "lat_p99_us" and r.verdict == "regression"
    ga = np.exp(np.log(a["lat_p99_us"]).groupby(a["boot"]).mean().mean())
    assert abs(r.mean_base / ga - 1) < 1e-9  # geometric mean of boot means of logs
    assert r.ci_low < r.ratio < r.ci_high and r.ci_low > 1


def test_p99_aa_false_alarms():
    rng = np.random.default_rng(2)
    frames = [(_side(rng, "a", 1.0).assign(name=f"a-{i}", smp=i), _side(rng, "b", 1.0).assign(name=f"b-{i}", smp=i))
              for i in range(400)]
    a = pd.concat([f for f, _ in frames])
    b = pd.concat([g for _, g in frames])
    rows = C.compare(a, b, metric="p99", correction="none").rows
    assert np.mean(rows["p"] < 0.05) <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / 400)
