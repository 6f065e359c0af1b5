"""perfsuite.bisect.render and the bisect HTML page, from a bisection on a synthetic host."""

import math

import numpy as np
import orjson

from perfsuite.bisect import decide as D
from perfsuite.bisect import render as R
from perfsuite.bisect import schedule as S
from perfsuite.bisect.driver import Outcome
from perfsuite.bisect.git import CommitInfo


def outcome():
    hashes = [f"{k:02d}" + "ab" * 19 for k in range(9)]
    commits = [CommitInfo(h, f"commit {k} <script>", f"2026-01-0{k + 1}T00:00:00+00:00")
               for k, h in enumerate(hashes)]
    rng = np.random.default_rng(3)
    values: dict[str, list[tuple]] = {}

    def measure(c):
        v = (1000.0 * (0.5 if hashes.index(c) >= 6 else 1.0) * math.exp(rng.normal(0, 0.05)),)
        values.setdefault(c, []).append(v)
        return v
    p = S.policy_for(8)
    levels = S.Levels(hashes[0], hashes[8])
    out = Outcome("found", commits[0], commits[8], 8, p, ["bisect-smp-1-dataplane"], "iops")
    out.confirm = S.run_confirm(levels, measure, p)
    lo, hi = 0, 8
    while hi - lo > 1:
        mid = (lo + hi) // 2
        step = S.run_step(hashes[mid], levels, measure, p)
        out.steps.append((commits[mid], step))
        lo, hi = (mid, hi) if step.decision == D.GOOD else (lo, mid)
    out.first_bad = commits[hi]
    out.builds, out.boots, out.wall_s = 2 + len(out.steps), sum(map(len, values.values())), 12.0
    out.bound = S.stated_bound(p, [s for _, s in out.steps])
    out.levels = [{"commit": h, "index": i, "values": [list(v) for v in values[h]]}
                  for i, h in enumerate(hashes) if h in values]
    return out, hashes


def test_text_markdown_json_say_the_same():
    out, hashes = outcome()
    d = R.to_dict(out)
    assert d["first_bad"]["hash"] == hashes[6] and d["status"] == "found"
    assert orjson.loads(orjson.dumps(d)) == d          # plain JSON values, no NaN
    t = R.text(d)
    assert t.startswith(f"first bad commit: {hashes[6]} 'commit 6 <script>' (2026-01-07")
    assert "P(wrong commit) <=" in t and "totals: 5 builds" in t
    for k, (info, _s) in enumerate(out.steps, 1):
        assert f"{k}  " in t and info.short in t
    md = R.markdown(d)
    assert md.startswith("**first bad commit:") and "| step | commit |" in md
    assert len([ln for ln in md.splitlines() if ln.startswith("| ")]) == 1 + 1 + len(out.steps)


def test_not_reproduced_and_undecided_headlines():
    out, _ = outcome()
    d = R.to_dict(out)
    d["status"] = "not reproduced"
    assert R.headline(d).startswith("not reproduced: the bad commit is not significantly worse")
    d["status"] = "undecided"
    d["steps"][-1]["reason"] = "no call within 16 midpoint boots"
    assert "--assume" in R.headline(d)


def test_bisect_page_is_self_contained_and_escaped():
    from perfsuite.report.bisect_page import render_page

    out, hashes = outcome()
    html = render_page(R.to_dict(out))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'src="data:image/png;base64,' in html
    assert hashes[6] in html and "http" not in html.replace("http-equiv", "")
