"""The report's figures: small pandas frames in, PNG bytes out.

matplotlib is imported only here, and only through the object API
(`Figure` + the Agg canvas), never pyplot: pyplot keeps global figure state and
picks a GUI backend from the environment, neither of which a report build wants.
Every function takes plain data prepared by `perfsuite.report.html` and knows
nothing about run directories, so each can be tested and timed on its own.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display on CI hosts; Agg is also the fastest raster path

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

# Bar colours: hue = dataplane (blue IOThread, orange main loop), shade = multiqueue,
# so the two effects the report is about read as colour and lightness at a glance.
VARIANT_COLORS = {
    (True, True): "#1f5f99",
    (True, False): "#8fb9de",
    (False, True): "#c2561a",
    (False, False): "#f2b47e",
}
VARIANT_LABELS = {
    (True, True): "dataplane, multiqueue",
    (True, False): "dataplane, 1 queue (no-mq)",
    (False, True): "no dataplane, multiqueue",
    (False, False): "no dataplane, 1 queue (no-mq)",
}
OTHER_COLOR = "#6b6b6b"
# perfsuite.analysis.comparison's verdicts
VERDICT_COLORS = {"improvement": "#2e7d32", "regression": "#c62828", "no change": "#6b6b6b", "inconclusive": "#b08900"}

DPI = 150  # 1.5 image pixels per CSS pixel (the page shows them at DPI / 1.5 = 100 per inch): crisp on HiDPI
WIDTH = 10.5  # inches = 1050 CSS pixels, the page's content width, so fonts are shown at their point size
STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.8,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
}


def text(s: object) -> str:
    """Plain text for matplotlib: a `$` in a run name would otherwise start mathtext."""
    return str(s).replace("\\", "\\\\").replace("$", r"\$")


def si(v: float, _pos: object = None) -> str:
    """13326598 -> '13.3M': tick labels that fit without overlapping."""
    if v is None or not math.isfinite(v):
        return ""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def wrap(label: str, width: int) -> str:
    """Break a long configuration name at its dashes so tick labels do not run into each other."""
    lines, cur = [], ""
    for part in label.split("-"):
        piece = part if not cur else "-" + part
        if cur and len(cur) + len(piece) > width:
            lines.append(cur + "-")
            cur = part
        else:
            cur += piece
    return "\n".join([*lines, cur])


def variant_color(dataplane: object, mq: object) -> str:
    return VARIANT_COLORS.get((dataplane, mq), OTHER_COLOR)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    """PNG with a 256-colour adaptive palette: charts are a few flat colours plus their
    anti-aliasing, so this looks the same as RGBA at a third of the size, which matters
    for a page that carries its images inline (mail attachments, CI artifacts)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1})
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, format="png")
    return out.getvalue()


def _rows_height(n: int, per_row: float = 0.38, extra: float = 1.3) -> float:
    return min(max(2.4, extra + per_row * n), 30.0)


def _plain_log_ticks(ax, values) -> None:
    """Log axis labelled 0.2, 0.3, 50, 200 rather than 2x10^-1: within a decade or so the minor
    ticks get labels too, wider spans keep only the decades (labels would collide)."""
    from matplotlib.ticker import LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _p: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    span = math.log10(max(values) / min(values)) if values and min(values) > 0 else 9.0
    if span < 1.3:
        ax.xaxis.set_minor_locator(LogLocator(subs=(1.5, 2, 3, 4, 5, 7) if span < 0.7 else (2, 3, 5)))
        ax.xaxis.set_minor_formatter(fmt)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def iops_bars(bars) -> bytes:
    """Grouped bar chart. `bars`: frame with group, dataplane, mq, mean, lo, hi (one row per config)."""
    import matplotlib as mpl

    groups = list(dict.fromkeys(bars["group"]))
    rank = {v: i for i, v in enumerate(VARIANT_COLORS)}
    variants = sorted(dict.fromkeys(zip(bars["dataplane"], bars["mq"])), key=lambda v: rank.get(v, 99))
    width = 0.8 / max(bars.groupby("group", sort=False).size().max(), 1)
    # Bars of a group sit side by side, centred on the group's tick, whatever variants it has
    # (a group without a no-mq run leaves no gap).
    x = {}
    for gi, g in enumerate(groups):
        members = sorted((i for i in bars.index if bars.at[i, "group"] == g),
                         key=lambda i: rank.get((bars.at[i, "dataplane"], bars.at[i, "mq"]), 99))
        for k, i in enumerate(members):
            x[i] = gi + (k - (len(members) - 1) / 2) * width
    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, 4.6)
        ax = fig.subplots()
        annotate = len(bars) <= 16
        for variant in variants:
            sub = bars[[(d, m) == variant for d, m in zip(bars["dataplane"], bars["mq"])]]
            xs = [x[i] for i in sub.index]
            # NaN (a single run) draws no error bar at all, rather than a misleading zero-width one
            yerr = [(sub["mean"] - sub["lo"]).clip(lower=0), (sub["hi"] - sub["mean"]).clip(lower=0)]
            label = VARIANT_LABELS.get(variant, "other")
            ax.bar(xs, sub["mean"], width * 0.92, color=variant_color(*variant), label=label,
                   yerr=yerr, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#222"}, zorder=2)
            if annotate:
                for xx, top, mean in zip(xs, sub["hi"].fillna(sub["mean"]), sub["mean"]):
                    ax.annotate(si(mean), (xx, top), xytext=(0, 3), textcoords="offset points",
                                ha="center", va="bottom", fontsize=8, color="#333")
        ax.set_xticks(range(len(groups)), [wrap(text(g), max(10, 110 // max(len(groups), 1))) for g in groups])
        ax.grid(axis="x", visible=False)
        ax.set_axisbelow(True)
        ax.yaxis.set_major_formatter(FuncFormatter(si))
        ax.set_ylabel("IOPS (mean, error bar = 95% CI)")
        ax.set_xlabel("configuration group (label, vCPUs, other axes)")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)  # head-room for the value labels
        ax.set_title("Mean IOPS per configuration")
        fig.legend(loc="outside lower center", ncol=min(4, len(variants)))
        return _png(fig)


def speedup(rows) -> bytes:
    """Multiqueue speedup per group. `rows`: frame with label, dataplane, ratio, lo, hi."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, _rows_height(len(rows), 0.42, 1.4))
        ax = fig.subplots()
        ys = list(range(len(rows)))[::-1]
        for y, (_, r) in zip(ys, rows.iterrows()):
            c = variant_color(r["dataplane"], True)
            lo, hi = r["lo"], r["hi"]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=c, lw=2.2, solid_capstyle="butt")
            ax.plot([r["ratio"]], [y], "o", color=c, ms=7, zorder=3)
            ci = f"  [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "  (CI n/a)"
            ax.annotate(f"{r['ratio']:.2f}×{ci}", (max(r["ratio"], hi if math.isfinite(hi) else 0), y),
                        xytext=(6, 0), textcoords="offset points", va="center", fontsize=8.5)
        ax.axvline(1.0, color="#444", lw=1, ls="--", zorder=1)
        ax.set_yticks(ys, [text(s) for s in rows["label"]])
        ax.grid(axis="y", visible=False)
        lo_all = min([1.0, *[v for v in rows["lo"] if math.isfinite(v)], *rows["ratio"]])
        hi_all = max([1.0, *[v for v in rows["hi"] if math.isfinite(v)], *rows["ratio"]])
        pad = (hi_all - lo_all) * 0.08 + 0.02
        ax.set_xlim(lo_all - pad, hi_all + pad + (hi_all - lo_all) * 0.35)  # room for the labels
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel("speedup = mean IOPS multiqueue / mean IOPS 1 queue (×, 95% CI)")
        ax.set_title("Multiqueue speedup per group")
        return _png(fig)


def strip(points, order: list[str], colors: dict[str, str]) -> bytes:
    """Every repetition as a point. `points`: frame with name, iops; `order`: top-to-bottom names."""
    import matplotlib as mpl
    import numpy as np

    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, _rows_height(len(order), 0.42, 1.3))
        ax = fig.subplots()
        ys = {name: len(order) - 1 - i for i, name in enumerate(order)}
        for name in order:
            vals = points.loc[points["name"] == name, "iops"].dropna().to_numpy(dtype=float)
            y = ys[name]
            jitter = rng.uniform(-0.16, 0.16, size=vals.size)
            ax.scatter(vals, y + jitter, s=30, color=colors.get(name, OTHER_COLOR), alpha=0.85,
                       edgecolors="white", linewidths=0.6, zorder=3)
            if vals.size:
                ax.plot([vals.mean()] * 2, [y - 0.3, y + 0.3], color="#111", lw=1.6, zorder=4)
        ax.set_yticks(list(ys.values()), [text(n) for n in ys])
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(FuncFormatter(si))
        ax.set_xlabel("IOPS of one repetition (black bar = mean)")
        ax.set_title("Every repetition")
        return _png(fig)


def latency(rows) -> bytes:
    """p50/p99/p99.9 per config. `rows`: frame with name, p50, p99, p999 (µs), top-to-bottom."""
    import matplotlib as mpl

    marks = (("p50", "o", "#1f5f99", "p50"), ("p99", "s", "#c2561a", "p99"), ("p999", "^", "#7b2d8e", "p99.9"))
    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, _rows_height(len(rows), 0.42, 1.8))
        ax = fig.subplots()
        ys = list(range(len(rows)))[::-1]
        for y, (_, r) in zip(ys, rows.iterrows()):
            vals = [r[k] for k, *_ in marks if math.isfinite(r[k])]
            if vals:
                ax.plot([min(vals), max(vals)], [y, y], color="#bbb", lw=1.2, zorder=1)
        for key, marker, color, label in marks:
            ax.scatter(rows[key], ys, marker=marker, s=42, color=color, label=label, zorder=3)
        ax.set_xscale("log")
        _plain_log_ticks(ax, [v for k, *_ in marks for v in rows[k] if math.isfinite(v)])
        ax.set_yticks(ys, [text(n) for n in rows["name"]])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", which="minor", color="#f0f0f0")
        ax.set_xlabel("completion latency (µs, log scale; mean over repetitions)")
        ax.set_title("Completion latency percentiles")
        fig.legend(loc="outside lower center", ncol=3)
        return _png(fig)


def ratios(rows, xlabel: str, title: str) -> bytes:
    """Forest plot: `rows` with label, ratio, lo, hi, verdict; one line per row, coloured by verdict."""
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, _rows_height(len(rows), 0.42, 1.9))
        ax = fig.subplots()
        ys = list(range(len(rows)))[::-1]
        seen = {}
        for y, (_, r) in zip(ys, rows.iterrows()):
            c = VERDICT_COLORS.get(str(r["verdict"]).lower(), "#444")
            seen[str(r["verdict"])] = c
            if math.isfinite(r["lo"]) and math.isfinite(r["hi"]):
                ax.plot([r["lo"], r["hi"]], [y, y], color=c, lw=2.2, solid_capstyle="butt")
            ax.plot([r["ratio"]], [y], "o", color=c, ms=7, zorder=3)
        ax.axvline(1.0, color="#444", lw=1, ls="--", zorder=1)
        ax.set_yticks(ys, [text(s) for s in rows["label"]])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        handles = [Line2D([], [], color=c, marker="o", lw=2.2, label=text(v)) for v, c in seen.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=max(1, len(handles)), title="verdict")
        return _png(fig)


def history(series, changes) -> bytes:
    """Nightly trend per config, two panels sharing the night axis: the candidate's mean IOPS
    and the candidate/baseline ratio (what change points are detected on).
    `series`: name, x, iops, ratio; `changes`: name, x, series ('ratio' or 'cand_mean')."""
    import matplotlib as mpl

    names = list(dict.fromkeys(series["name"]))
    palette = mpl.colormaps["tab10"]
    has_ratio = series["ratio"].notna().any()
    with mpl.rc_context(STYLE):
        fig = _figure(WIDTH, 6.6 if has_ratio else 4.2)
        axes = fig.subplots(2 if has_ratio else 1, 1, sharex=True, squeeze=False,
                            height_ratios=[3, 2] if has_ratio else None)[:, 0]
        panels = [(axes[0], "iops", "candidate IOPS (nightly mean)")]
        if has_ratio:
            panels.append((axes[1], "ratio", "candidate / baseline (×)"))
            axes[1].axhline(1.0, color="#444", lw=1, ls="--", zorder=1)
        for i, name in enumerate(names):
            s = series[series["name"] == name]
            c = palette(i % 10)
            for ax, col, _ in panels:
                ax.plot(s["x"], s[col], "-o", color=c, ms=3.5, lw=1.4, label=text(name) if col == "iops" else None)
            for _, cp in changes[changes["name"] == name].iterrows():
                col = "ratio" if cp["series"] == "ratio" and has_ratio else "iops"
                for ax, _c, _ in panels:
                    ax.axvline(cp["x"], color=c, ls=":", lw=1.3)
                ax = panels[[p[1] for p in panels].index(col)][0]
                y = s.loc[s["x"] == cp["x"], col]
                if len(y):
                    ax.plot([cp["x"]], [y.iloc[0]], marker="D", ms=10, mfc="none", mec="#c62828", mew=2, zorder=4)
        for ax, _col, label in panels:
            ax.set_ylabel(label)
        axes[0].yaxis.set_major_formatter(FuncFormatter(si))
        axes[-1].set_xlabel("night")
        axes[0].set_title("Nightly history (red diamond = detected change point)")
        fig.legend(loc="outside right upper", ncol=1 if len(names) <= 14 else 2, fontsize=8.5)
        for lab in axes[-1].get_xticklabels():
            lab.set_rotation(30)
            lab.set_horizontalalignment("right")
        return _png(fig)
