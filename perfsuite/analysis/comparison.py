"""Baseline vs candidate, row by row: ratio with a (1 - alpha) CI, a corrected p-value, a verdict.

Rows are matched by configuration: every config column except the ones that name the
build under test (`label`, and `qemu`, the binary's path, which differs between two
builds by construction), plus the fio job shape (numjobs, iodepth, rw, bs). Data without
meta.json falls back to the run name with a leading "<label>-" removed.

Verdict of a row (statistics in perfsuite.analysis.stats):
- regression / improvement: significant after the multiplicity correction (p_adj < alpha)
  AND the estimated change is larger than the threshold, in the bad / good direction;
- no change: the whole (1 - alpha) Fieller CI of the ratio lies within 1 +- threshold;
- inconclusive: anything else (too noisy to tell at this threshold), and every row with
  fewer than two runs on a side.
Its renderings (table, markdown, json, junit) are perfsuite.report.verdicts'.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perfsuite.analysis import hosts, stats
from perfsuite.matrix import axes

VERDICTS = ("regression", "improvement", "no change", "inconclusive")
TESTS = ("welch", "mannwhitney", "moderated")


class CompareError(PerfsuiteError, ValueError):
    """Inputs that cannot be compared (unknown metric, test, ambiguous rows)."""


@dataclass
class Comparison:
    rows: pd.DataFrame  # one row per matched configuration (columns: see ROW_COLUMNS)
    only_baseline: list[str] = field(default_factory=list)
    only_candidate: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        vc = self.rows["verdict"].value_counts() if len(self.rows) else {}
        return {v: int(vc.get(v, 0)) for v in VERDICTS}

    @property
    def exit_code(self) -> int:
        """0 no regression, 1 at least one regression (2 is the CLI's, for errors)."""
        return 1 if self.counts["regression"] else 0


ROW_COLUMNS = (
    "config", "name_base", "name_cand", "n_base", "n_cand", "mean_base", "mean_cand",
    "cv_base", "cv_cand", "ratio", "ci_low", "ci_high", "p", "p_adj", "verdict",
    "outliers_base", "outliers_cand", "ci_rays", "reps_needed",
    "runs_base", "runs_cand", "one_boot_base", "one_boot_cand",
)
# "Runs needed" is sized to catch a true change of DETECT x the threshold 80% of the time: a
# change of exactly the threshold is out of reach (its estimate lands beyond it half the time).
DETECT = 1.5


def lower_is_better(column: str) -> bool:
    return column.startswith("lat")


# Tail latency: compared on the log scale (a percentile's run-to-run spread is
# multiplicative and skewed), ratio = geometric-mean ratio with a log-scale t interval.
TAIL_METRICS = {"p50": "lat_p50_us", "p99": "lat_p99_us", "p99.9": "lat_p999_us",
                "p999": "lat_p999_us"}
LOG_SCALE = frozenset(TAIL_METRICS.values())


def resolve_metric(metric: str, *frames: pd.DataFrame) -> str:
    from perfsuite.analysis.summary import metric_column

    if metric in TAIL_METRICS:
        return TAIL_METRICS[metric]
    try:
        return metric_column(metric)
    except ValueError:
        if all(metric in f.columns for f in frames):
            return metric
        raise CompareError(f"unknown metric {metric!r}") from None


def compare(baseline_df: pd.DataFrame, candidate_df: pd.DataFrame, threshold: float = 0.05,
            test: str = "welch", correction: str = "holm", metric: str = "iops",
            alpha: float = 0.05, ignore: tuple[str, ...] = (), outlier: str = "mad",
            prior: tuple[float, float] | None = None, strict_hosts: bool = False) -> Comparison:
    """Compare two results frames (CONTRACTS.md section 3), one verdict per configuration.

    prior: (d0, s0^2) for `--test moderated` (e.g. from the nightly history,
    history.variance_prior); by default it is estimated from the rows themselves.
    strict_hosts: a difference of host between the sides is an error (hosts.HostsDiffer)."""
    if test not in TESTS:
        raise CompareError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    if correction not in stats.CORRECTIONS:
        raise CompareError(f"unknown correction {correction!r}; choose one of holm, bh, none")
    if not 0 < threshold < 1:
        raise CompareError(f"threshold must be a fraction between 0 and 1, got {threshold}")
    col = resolve_metric(metric, baseline_df, candidate_df)
    base, cand = _usable(baseline_df, col), _usable(candidate_df, col)
    notes = _nonfinite_warnings(baseline_df, candidate_df, col)
    for side, given, usable in (("baseline", baseline_df, base), ("candidate", candidate_df, cand)):
        # otherwise every row is listed as "only in" the other side, as if the runs were missing
        if len(given) and not len(usable):
            raise CompareError(f"{side}: none of its {len(given)} run(s) has {col} data"
                               + (" (fio recorded no latency: gtod_reduce=1?)" if col.startswith("lat") else ""))
    keys = _key_columns(base, cand, set(axes.build_columns()) | set(ignore))
    gb, gc = _groups(base, col, keys, "baseline"), _groups(cand, col, keys, "candidate")
    common = sorted(set(gb) & set(gc), key=lambda k: (gc[k][0], k))
    params = dict(threshold=threshold, test=test, correction=correction, metric=col,
                  alpha=alpha, match_on=list(keys) or ["name"])
    only_b = sorted(gb[k][1] for k in set(gb) - set(gc))
    only_c = sorted(gc[k][1] for k in set(gc) - set(gb))
    rows = _rows(common, gb, gc, threshold, test, correction, alpha, outlier, lower_is_better(col),
                 col in LOG_SCALE, prior)
    notes += _one_boot_warnings(rows)
    from perfsuite.hostview.findings import host_load_differs  # "different host load"
    result = Comparison(rows, only_b, only_c, params,
                        notes + _accel_warnings(base, cand) + host_load_differs(rows, base, cand))
    if col in LOG_SCALE:  # tails: json+ histograms when every run of a row has them
        from perfsuite.analysis import tails

        tails.apply(result, base, cand)
    hosts.annotate(result, base, cand, strict=strict_hosts)  # host differences: warned, rows marked
    return result


def _one_boot_warnings(rows: pd.DataFrame) -> list[str]:
    """A side whose repetitions all share one boot has no boot-to-boot variation in its spread."""
    out = []
    for side, col in (("baseline", "one_boot_base"), ("candidate", "one_boot_cand")):
        if col in rows.columns and rows[col].any():
            k = int(rows[col].sum())
            out.append(f"{side}: {k} configuration(s) ran all their repetitions in one boot; their "
                       "error and p-values are understated (boot-to-boot variation is not in the "
                       "spread): run with --boots 3 or more")
    return out


def _nonfinite_warnings(baseline_df: pd.DataFrame, candidate_df: pd.DataFrame, col: str) -> list[str]:
    """Runs whose value is inf (or -inf) are left out; say so instead of shrinking n silently."""
    out = []
    for side, df in (("baseline", baseline_df), ("candidate", candidate_df)):
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.isinf(v)
        if bad.any():
            names = sorted(set(df["name"].astype(str).to_numpy()[bad]))
            out.append(f"{side}: {int(bad.sum())} run(s) with a non-finite {col} left out "
                       f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
    return out


def _accel_warnings(base: pd.DataFrame, cand: pd.DataFrame) -> list[str]:
    """A side that fell back to TCG (a failed KVM probe) makes every ratio ~10x: say so."""
    def accels(df):
        return sorted({_canon(v) for v in df["accel"]} - {""}) if "accel" in df.columns else []

    a, b = accels(base), accels(cand)
    if a and b and a != b:
        return [f"accelerators differ: baseline {'/'.join(a)}, candidate {'/'.join(b)}; "
                "the ratios measure the accelerator, not the QEMU builds"]
    return []


def select_label(df: pd.DataFrame, label: str, side: str) -> pd.DataFrame:
    """The runs of one build (label) in a results frame; CompareError naming the labels there."""
    have = sorted({_canon(v) for v in df["label"]} - {""}) if "label" in df.columns else []
    if label not in have:
        known = ", ".join(have) if have else "none (no meta.json labels)"
        raise CompareError(f"{side}: no runs with label {label!r}; labels present: {known}")
    return df[df["label"].map(_canon) == label]


def _usable(df: pd.DataFrame, col: str) -> pd.DataFrame:
    if col not in df.columns:
        raise CompareError(f"results have no column {col!r}")
    if "status" in df.columns:
        df = df[df["status"].isna() | (df["status"] == "ok")]
    return df[np.isfinite(pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float))]


def _key_columns(a: pd.DataFrame, b: pd.DataFrame, skip: set[str]) -> tuple[str, ...]:
    def known(df, c):
        return c in df.columns and df[c].notna().any()

    # the registry's identity columns, and `variant` (the name's rest) for runs without meta
    keys = (*axes.identity_columns(), "variant")
    return tuple(c for c in keys if c not in skip and (known(a, c) or known(b, c)))


def _canon(v) -> str:
    # One spelling per value, whatever pandas made of it (1 vs 1.0 vs "1", NaN vs None).
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def strip_label(name: str, label) -> str:
    lab = _canon(label)
    return name[len(lab) + 1:] if lab and name.startswith(lab + "-") else name


def _groups(df: pd.DataFrame, col: str, keys: tuple[str, ...], side: str) -> dict:
    """key -> (display name, run name, values). Refuses two builds under one key.

    Vectorised (one sort, one split) because a nightly matrix may hold thousands of runs.
    """
    if df.empty:
        return {}
    names = df["name"].astype(str).to_numpy()
    labels = df["label"].map(_canon).to_numpy() if "label" in df.columns else np.full(len(df), "")
    if keys:
        canon = pd.DataFrame({k: df[k].map(_canon).to_numpy() for k in keys})
        canon.insert(0, "name", names)
        # A name's key is the set of values its runs carry (normally exactly one each).
        canon = canon.drop_duplicates()
        if canon["name"].is_unique:
            keyed = canon.set_index("name")
        else:
            keyed = canon.groupby("name", sort=False).agg(lambda v: "|".join(sorted(set(v))))
        key_of = {n: tuple(r) for n, r in zip(keyed.index, keyed.itertuples(index=False))}
    order = np.argsort(names, kind="stable")
    sorted_names = names[order]
    uniq, first = np.unique(sorted_names, return_index=True)
    values = np.split(df[col].to_numpy(dtype=float)[order], first[1:])
    boots = (np.split(df["boot"].to_numpy(dtype=object)[order], first[1:]) if "boot" in df.columns
             else [None] * len(values))
    out: dict = {}
    for name, start, vals, bts in zip(uniq.tolist(), first.tolist(), values, boots):
        display = strip_label(name, labels[order[start]])
        key = key_of[name] if keys else (display,)
        if key in out:
            raise CompareError(
                f"{side} holds two runs of the same configuration ({out[key][1]!r} and {name!r}); "
                "select one build with --label")
        out[key] = (display, name, vals, stats.boot_units(vals, bts), bts)
    return out


def log_welch(a, b, conf: float):
    """Welch on log values: the ratio of geometric means with its log-scale t interval."""
    from scipy.special import stdtrit

    la = np.log(np.where(a > 0, a, np.nan))
    lb = np.log(np.where(b > 0, b, np.nan))
    w = stats.welch(la, lb, conf)
    ma, mb = stats.moments(la), stats.moments(lb)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(ma.var / ma.n + mb.var / mb.n)
        half = stdtrit(w.df, 0.5 + conf / 2) * se
    d = mb.mean - ma.mean
    return w._replace(mean_a=np.exp(ma.mean), mean_b=np.exp(mb.mean), ratio=np.exp(d),
                      ci_low=np.exp(d - half), ci_high=np.exp(d + half),
                      ci_rays=np.zeros(len(d), bool))


def verdicts(p_adj, ratio, ci_low, ci_high, ci_rays, few, threshold: float, alpha: float,
             lower_better: bool) -> np.ndarray:
    """The verdict per row (docs/statistics.md, Verdicts) from its corrected p and interval."""
    change = np.asarray(ratio, dtype=float) - 1.0
    worse = change > threshold if lower_better else change < -threshold
    better = change < -threshold if lower_better else change > threshold
    sig = p_adj < alpha
    within = ~ci_rays & (ci_low >= 1 - threshold) & (ci_high <= 1 + threshold)
    return np.select([few, sig & worse, sig & better, within],
                     ["inconclusive", "regression", "improvement", "no change"], "inconclusive")


def _rows(common, gb, gc, threshold, test, correction, alpha, outlier, lower_better,
          log_scale: bool = False, prior=None) -> pd.DataFrame:
    if not common:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    raw_a = stats.pack([gb[k][2] for k in common])
    raw_b = stats.pack([gc[k][2] for k in common])
    # The unit of every test is the boot (boot means) when runs share boots: see boot_units.
    if log_scale:  # boot means of the logs (geometric), then the log-scale test
        def units(g):
            return np.exp(stats.boot_units(np.log(np.where(g[2] > 0, g[2], np.nan)), g[4]).values)
    else:
        def units(g):
            return g[3].values
    a = stats.pack([units(gb[k]) for k in common])
    b = stats.pack([units(gc[k]) for k in common])
    # the interval's level is the verdict's
    w = log_welch(a, b, 1.0 - alpha) if log_scale else stats.welch(a, b, conf=1.0 - alpha)
    if test == "welch":
        p = w.p
    elif test == "moderated" and (len(common) >= 3 or prior):  # else nothing to borrow: Welch
        from perfsuite.analysis.moderated import moderated

        d0, s02 = prior if prior else (None, None)
        p, lo, hi = moderated(a, b, d0, s02, conf=1.0 - alpha)
        # its own interval, so the verdict and the interval still agree
        w = w._replace(ci_low=lo, ci_high=hi, ci_rays=np.zeros(len(common), bool))
    elif test == "moderated":
        p = w.p
    else:
        p = stats.mannwhitney_p(a, b)
    ma, mb = stats.moments(a), stats.moments(b)
    few = (w.n_a < 2) | (w.n_b < 2)
    p = np.where(few, np.nan, p)
    p_adj = stats.adjust(p, correction)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv_a, cv_b = np.sqrt(ma.var) / ma.mean, np.sqrt(mb.var) / mb.mean
    verdict = verdicts(p_adj, w.ratio, w.ci_low, w.ci_high, w.ci_rays, few, threshold, alpha, lower_better)
    return pd.DataFrame({
        "config": [gc[k][0] for k in common],
        "name_base": [gb[k][1] for k in common], "name_cand": [gc[k][1] for k in common],
        "n_base": w.n_a, "n_cand": w.n_b, "mean_base": w.mean_a, "mean_cand": w.mean_b,
        "cv_base": cv_a, "cv_cand": cv_b, "ratio": w.ratio, "ci_low": w.ci_low, "ci_high": w.ci_high,
        "p": p, "p_adj": p_adj, "verdict": verdict,
        "runs_base": [gb[k][3].runs for k in common], "runs_cand": [gc[k][3].runs for k in common],
        "one_boot_base": [gb[k][3].one_boot for k in common],
        "one_boot_cand": [gc[k][3].one_boot for k in common],
        "outliers_base": stats.outliers(raw_a, outlier).sum(axis=1),
        "outliers_cand": stats.outliers(raw_b, outlier).sum(axis=1),
        "ci_rays": w.ci_rays,
        # Sized for the verdict itself: corrected over the table's rows and beyond the threshold.
        "reps_needed": stats.reps_needed(cv_a, cv_b, DETECT * threshold, alpha=alpha, power=0.8,
                                         threshold=threshold, rows=int(np.isfinite(p_adj).sum())),
    })


# ---------------------------------------------------------------- renderers (pure)
