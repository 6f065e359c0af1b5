"""perfsuite.analysis.tails: p99 / p99.9 from fio json+ histograms, per boot, on the log scale."""

import math

import numpy as np
import orjson
import pytest
from scipy import stats as ss

import synthetic
from perfsuite.analysis import comparison as C
from perfsuite.analysis import tails as T
from perfsuite.analysis.results import load_runs


def fio_bucket(ns: np.ndarray) -> np.ndarray:
    """fio's histogram grid: 64 buckets per power of two (value = the bucket's lower edge)."""
    e = np.floor(np.log2(np.maximum(ns, 1)))
    step = np.maximum(2.0 ** (e - 6), 1)
    return (np.floor(ns / step) * step).astype(np.int64)


def jsonplus(lat_us: np.ndarray, jobs: int = 2) -> dict:
    """A fio 3 json+ document: the completions split over `jobs` jobs, each with its clat_ns
    percentiles (what the results frame reads) and bins (what tails reads)."""
    out = []
    for part in np.array_split(lat_us * 1000, jobs):
        keys, counts = np.unique(fio_bucket(part), return_counts=True)
        pct = {f"{q:.6f}": float(np.percentile(part, q)) for q in (50.0, 99.0, 99.9)}
        clat = {"min": float(part.min()), "max": float(part.max()), "mean": float(part.mean()),
                "N": int(part.size), "percentile": pct,
                "bins": {str(k): int(c) for k, c in zip(keys, counts)}}
        out.append({"jobname": "j", "groupid": 0, "error": 0, "job options": {"rw": "randread"},
                    "read": {"iops": part.size / 2.0, "runtime": 2000, "total_ios": int(part.size),
                             "clat_ns": clat}})
    return {"fio version": "fio-3.33", "jobs": out}


def write_side(runs, name, rng, boots, reps, scale=1.0, boot_sd=0.05, n=20000, bins=True):
    """boots x reps json+ runs of lognormal completions (median 100 us x scale), each boot
    shifted by exp(N(0, boot_sd^2)); the metas (boot numbers) from tests/synthetic."""
    synthetic.write_runs(runs, name, 1e5, 0.01, boots * reps, seed=rng, per_boot=reps, first_boot=1)
    for b in range(boots):
        level = scale * math.exp(rng.normal(0, boot_sd))
        for r in range(reps):
            lat = 100.0 * level * np.exp(rng.normal(0, 0.5, n))
            doc = jsonplus(lat)
            if not bins:
                for job in doc["jobs"]:
                    del job["read"]["clat_ns"]["bins"]
            (runs / name / f"{b * reps + r + 1}.json").write_bytes(orjson.dumps(doc))


def test_histogram_sums_jobs_and_refuses_bad_bins():
    doc = jsonplus(np.array([8.192, 8.192, 16.384, 32.768]))
    vals, counts = T.histogram(doc)
    assert counts.sum() == 4 and list(vals) == [8.192, 16.384, 32.768] and list(counts) == [2, 1, 1]
    doc["jobs"][0]["read"]["clat_ns"]["bins"] = {"8192": -1}
    assert T.histogram(doc) is None
    assert T.histogram({"jobs": [{"read": {"clat_ns": {"N": 0}}}]}) is None  # plain json


def test_order_statistic_interval_covers_the_true_quantile():
    rng = np.random.default_rng(1)
    true = -math.log(1 - 0.99)  # exponential(1)'s p99
    cover = 0
    for _ in range(300):
        x = np.sort(rng.exponential(1.0, 2000))
        est, lo, hi = T.quantile_ci((x, np.ones(x.size)), 0.99)
        cover += lo <= true <= hi
        assert lo <= est <= hi
    assert 0.92 <= cover / 300 <= 0.99, cover


def test_boots_are_the_noise_not_only_the_sampling_within_them():
    # Tiny within-boot errors: the side's variance is the spread between boots, so the
    # test is Welch's t on the boot log quantiles exactly.
    ya, yb = np.log([100, 110, 92.0]), np.log([104, 99, 120.0])
    small = np.full(3, 1e-4)
    ratio, lo, hi, p = T.compare_tails(ya, small, yb, small, 0.95)
    assert p == pytest.approx(ss.ttest_ind(yb, ya, equal_var=False).pvalue, rel=1e-9)
    assert lo < 1 < hi and ratio == pytest.approx(math.exp(yb.mean() - ya.mean()))
    # Boots closer together than their own sampling allows: the within-boot error counts.
    same = np.log([100, 100.1, 99.9])
    wide = np.full(3, 0.05)
    _, lo, hi, _ = T.compare_tails(same, wide, same, wide, 0.95)
    assert math.log(hi) > 0.05 * math.sqrt(2 / 3)


@pytest.mark.parametrize("metric,q", [("p99", 0.99), ("p99.9", 0.999)])
def test_compare_finds_a_known_tail_shift_from_the_histograms(tmp_path, metric, q):
    rng = np.random.default_rng(7)
    write_side(tmp_path / "a", "v-smp-1", rng, boots=4, reps=2)
    write_side(tmp_path / "b", "v-smp-1", rng, boots=4, reps=2, scale=1.3)
    comp = C.compare(load_runs(tmp_path / "a").frame, load_runs(tmp_path / "b").frame, metric=metric)
    row = comp.rows.iloc[0]
    assert comp.params["tail"].startswith("json+ histograms (1 of 1")
    assert row.verdict == "regression" and row.n_base == row.n_cand == 4
    assert row.ci_low < 1.3 < row.ci_high and abs(row.ratio / 1.3 - 1) < 0.1
    true_q = 100 * math.exp(0.5 * ss.norm.ppf(q))  # the boots' median level
    assert abs(row.mean_base / true_q - 1) < 0.15


def test_an_aa_with_boot_effects_is_not_a_regression(tmp_path):
    # 20,000 completions a run make each boot's p99 precise to ~1%; boots differ by ~10%:
    # only the boot-to-boot variance makes the interval honest.
    alarms = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        d = tmp_path / str(seed)
        write_side(d / "a", "v-smp-1", rng, boots=3, reps=1, boot_sd=0.1)
        write_side(d / "b", "v-smp-1", rng, boots=3, reps=1, boot_sd=0.1)
        comp = C.compare(load_runs(d / "a").frame, load_runs(d / "b").frame, metric="p99")
        alarms += comp.rows.iloc[0].verdict == "regression"
        assert comp.rows.iloc[0].ci_high / comp.rows.iloc[0].ci_low > 1.1
    assert alarms == 0


def test_runs_without_histograms_keep_the_repetition_percentiles(tmp_path):
    rng = np.random.default_rng(9)
    write_side(tmp_path / "a", "v-smp-1", rng, boots=3, reps=2, bins=False, n=4000)
    write_side(tmp_path / "b", "v-smp-1", rng, boots=3, reps=2, bins=False, n=4000, scale=1.2)
    fa, fb = load_runs(tmp_path / "a").frame, load_runs(tmp_path / "b").frame
    comp = C.compare(fa, fb, metric="p99")
    assert comp.params["tail"] == "repetition percentiles (no json+ histograms)"
    units = [np.exp(np.log(f["lat_p99_us"].to_numpy()).reshape(3, 2).mean(axis=1)) for f in (fa, fb)]
    w = C.log_welch(units[0][None, :], units[1][None, :], 0.95)
    assert comp.rows.iloc[0].ratio == pytest.approx(float(w.ratio[0]))
