"""A/A on real guests: how often does `perfsuite compare` call the same build a regression?

    nice .venv/bin/python benchmarks/bench_aa_real.py [--comparisons 20] [--boots 3] [--repeat 2]
        [--runtime 5] [--matrix jobs/ci.toml] [--only 'v*-mq*'] [--work DIR] [-o RESULTS-aa-real.md]

Not a CI test: it boots real guests (TCG here), 2 x comparisons x boots guests in all. For each
comparison it makes two fresh run directories of the SAME build and configuration with the
default design (`perfsuite run MATRIX --boots K --repeat R`, labels `a` and `b`), made
boot by boot with the sides interleaved (resume runs boot k of a, then of b, with the first side
alternating), then `perfsuite compare A B --format json`, and counts the verdicts. Expected
with alpha 0.05 and the threshold: at most about one `regression` in 20.

It also reports the variance components of every run it made (one-way random effects,
boots within side): within-boot variance, boot-to-boot variance and the intraclass
correlation ICC = boot / (boot + within), the figure that says how much repetitions in one
boot are worth (ICC near 0: as good as fresh boots; near 1: only boots count).

`--dry-run` passes --dry-run to `perfsuite run` (prints QEMU command lines, boots nothing)
and stops before comparing: a check of the plumbing that costs seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from perfsuite.commands.run import DEFAULT_BOOTS, DEFAULT_REPEAT  # noqa: E402 (after the path)


def perfsuite(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, check=check)


def run_side(args, runs_dir: Path, label: str, boots: int) -> None:
    """`perfsuite run --boots N` on a runs dir that holds boots 1..N-1 runs boot N only (resume)."""
    cmd = ["run", args.matrix, "--runs-dir", str(runs_dir), "--label", label, "--boots", str(boots),
           "--repeat", str(args.repeat), "--runtime", str(args.runtime), "--accel", args.accel]
    for o in args.only:
        cmd += ["--only", o]
    if args.dry_run:
        cmd.append("--dry-run")
    p = perfsuite(*cmd, check=False)
    if p.returncode != 0:
        raise SystemExit(f"perfsuite {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-400:]}")


def variance_components(groups: list[list[np.ndarray]]) -> dict:
    """Pooled one-way ANOVA estimates over sides: within-boot and boot-to-boot variance (relative)."""
    ss_w = df_w = ss_b = df_b = 0.0
    n_per = []
    for boots in groups:  # one side of one comparison: a list of arrays (one per boot)
        boots = [b for b in boots if b.size]
        if len(boots) < 2:
            continue
        grand = np.concatenate(boots).mean()
        rel = [b / grand for b in boots]  # relative units: sides of different speed pool
        m = np.array([r.mean() for r in rel])
        ss_w += sum(float(((r - r.mean()) ** 2).sum()) for r in rel)
        df_w += sum(r.size - 1 for r in rel)
        ss_b += sum(r.size * (mm - np.concatenate(rel).mean()) ** 2 for r, mm in zip(rel, m))
        df_b += len(rel) - 1
        n_per += [r.size for r in rel]
    if not df_w or not df_b:
        return {}
    ms_w, ms_b = ss_w / df_w, ss_b / df_b
    n0 = float(np.mean(n_per))
    var_boot = max(0.0, (ms_b - ms_w) / n0)
    return {"within_cv": ms_w**0.5, "boot_cv": var_boot**0.5,
            "icc": var_boot / (var_boot + ms_w) if var_boot + ms_w > 0 else float("nan"),
            "df_within": df_w, "df_boot": df_b}


def boots_of(runs_dir: Path) -> list[list[np.ndarray]]:
    from perfsuite.analysis.results import load_runs

    f = load_runs(runs_dir).frame
    f = f[(f["status"].isna()) | (f["status"] == "ok")] if "status" in f.columns else f
    out = []
    for _, g in f.groupby("name"):
        b = g["boot"] if "boot" in g.columns else g["rep"]
        out.append([g.loc[b == k, "iops"].to_numpy(dtype=float) for k in sorted(b.dropna().unique())])
    return out


def _results_in(work: Path) -> int:
    return sum(1 for f in work.glob("*/*/*/*.json") if not f.name.endswith(".meta.json")) if work.is_dir() else 0


def _pvalue_lines(rows: list[dict]) -> list[str]:
    """Beyond the verdicts: is the test calibrated (p-values roughly uniform under A/A) and
    is one side systematically faster (a sign test on the ratios)?"""
    ps = [r["p"] for r in rows if r.get("p") is not None]
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    if not ps or not ratios:
        return []
    from scipy.stats import binomtest

    above = sum(x > 1 for x in ratios)
    return ["", f"p-values (two-sided, before the verdict's threshold rule): {sum(p < 0.05 for p in ps)} of "
            f"{len(ps)} below 0.05, {sum(p < 0.10 for p in ps)} below 0.10 (expected under A/A: about "
            f"{0.05 * len(ps):.0f} and {0.10 * len(ps):.0f}), smallest {min(ps):.3f}, median {np.median(ps):.2f}.",
            f"Ratios b/a: median {np.median(ratios):.3f}, {above} of {len(ratios)} above 1 "
            f"(sign test, two-sided: p = {binomtest(above, len(ratios)).pvalue:.2f})."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comparisons", type=int, default=20)
    ap.add_argument("--boots", type=int, default=DEFAULT_BOOTS, help="boots per side (run's default)")
    ap.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="repetitions per boot (run's default)")
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--accel", default="auto")
    ap.add_argument("--matrix", default="jobs/ci.toml")
    ap.add_argument("--only", action="append", default=[], help="configuration glob (default: the first)")
    ap.add_argument("--work", default=None, help="keep the runs here (default: a temp dir, removed)")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_name("RESULTS-aa-real.md")))
    args = ap.parse_args()
    if not args.only:
        args.only = ["*-mq"] if args.matrix.endswith("ci.toml") else []
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="perfsuite-aa-"))
    t0 = time.perf_counter()
    verdicts: dict[str, int] = {}
    groups: list[list[np.ndarray]] = []
    rows: list[dict] = []  # compare's row of each comparison (ratio, p)
    found_before = _results_in(work)  # a rerun with the same --work resumes: nothing is booted again
    try:
        for i in range(args.comparisons):
            a, b = work / f"{i:02d}" / "a", work / f"{i:02d}" / "b"
            # Interleaved boot by boot, first side alternating (a b b a a b ...), so that host
            # drift and other load land on both sides alike rather than on the second side.
            for k in range(1, args.boots + 1):
                order = [(a, "a"), (b, "b")] if (i + k) % 2 else [(b, "b"), (a, "a")]
                for d, label in order:
                    run_side(args, d, label, k)
            if args.dry_run:
                print(f"dry run {i + 1}: plumbing ok")
                continue
            p = perfsuite("compare", str(a), str(b), "--format", "json", check=False)
            if p.returncode not in (0, 1):
                raise SystemExit(f"perfsuite compare failed ({p.returncode}): {p.stderr.strip()[-400:]}")
            for row in json.loads(p.stdout)["rows"]:
                verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
                rows.append(row)
            groups += boots_of(a) + boots_of(b)
            print(f"comparison {i + 1}/{args.comparisons} ({time.perf_counter() - t0:.0f} s): {verdicts}",
                  flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    if args.dry_run:
        print(f"dry run: {args.comparisons} x 2 `perfsuite run --dry-run` in {elapsed:.0f} s")
        return
    vc = variance_components(groups)
    made = _results_in(work) - found_before if args.work else None
    L = ["# A/A on real guests (benchmarks/bench_aa_real.py)", "",
         f"{args.comparisons} comparisons of the same build, {args.matrix} {' '.join(args.only)}, "
         f"--boots {args.boots} --repeat {args.repeat} --runtime {args.runtime} --accel {args.accel}; "
         f"{elapsed / 60:.1f} min in all"
         + (f" ({found_before} repetitions were already in {work} and were reused, {made} made now)"
            if found_before else "") + ".", "",
         "| verdict | comparisons |", "|---|---:|"]
    L += [f"| {k} | {v} |" for k, v in sorted(verdicts.items())]
    if vc:
        L += ["", f"Variance components of the runs made (relative to each side's mean): within-boot CV "
              f"{vc['within_cv']:.2%}, boot-to-boot CV {vc['boot_cv']:.2%}, ICC {vc['icc']:.2f} "
              f"(df {vc['df_within']:.0f} within, {vc['df_boot']:.0f} between boots)."]
    L += _pvalue_lines(rows)
    text = "\n".join(L) + "\n"
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
