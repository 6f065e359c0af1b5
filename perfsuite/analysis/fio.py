"""Parsing what fio wrote with --output-format=json or json+ into one flat record per run.

Handles fio 2.x (latencies in microseconds under ``clat``/``lat``) and fio 3.x
(nanoseconds under ``clat_ns``/``lat_ns``), text printed before the JSON object
(fio writes warnings and "note: ..." lines to the same stream), trailing text, several
job entries per file or one group_reporting entry, and client/server output
(``client_stats``). Anything else raises :class:`FioParseError` with a message that
names the problem, never a bare KeyError/TypeError.

This is on the hot path of ``./analyze.py`` (thousands of files), hence orjson, a
single pass over the jobs and no pandas here.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import orjson

# The record parse() returns; results.py turns a list of them into DataFrame columns.
FIELDS = (
    "iops", "read_iops", "write_iops", "trim_iops", "read_bw_kib", "write_bw_kib",
    "disk_read_ios", "lat_mean_us", "lat_p50_us", "lat_p99_us", "lat_p999_us",
    "runtime_s", "fio_version", "numjobs", "iodepth", "iodepth_total", "rw", "bs", "error",
)
# numjobs: the jobs over all job sections; iodepth: the first section's (what the model and the
# name speak of); iodepth_total: the I/Os fio could keep in flight, the sum over sections of
# iodepth x that section's jobs (None when a section's iodepth is unknown, e.g. fio 2.x)

# fio prints percentile keys with six decimals ("99.900000"); older builds used fewer.
_PCT_KEYS = {"p50": "50.000000", "p99": "99.000000", "p999": "99.900000"}
_PCT_VALUES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}

# Some fio builds print bare nan/inf for undefined statistics, which is not JSON.
_NONFINITE = re.compile(rb"(?<=[:\[,])(\s*)(-?)(nan|inf|infinity)\b", re.IGNORECASE)
_MAX_CANDIDATES = 20  # '{' positions tried when text precedes the object
# An unresolved git merge: "<<<<<<< ours" ... "=======" ... ">>>>>>> theirs", each at a line
# start. fio never prints such lines; the file holds two versions of a result, and taking
# either one (the first JSON object parses) would silently pick a side.
_CONFLICT = re.compile(rb"(?m)^<{7}(?:[ \t].*)?\r?$")


class FioParseError(ValueError):
    """A fio output file that cannot be read as fio JSON; the message says why."""


def parse_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and parse one fio output file (see :func:`parse_bytes`)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FioParseError(f"cannot read: {exc.strerror or exc}") from None
    return parse_bytes(data)


def parse_bytes(data: bytes) -> dict[str, Any]:
    """fio output (JSON or json+, any noise around it) -> the flat record of FIELDS."""
    return extract(load_json(data))


def load_json(data: bytes) -> dict[str, Any]:
    """Find and decode the JSON object in fio's output, tolerating text around it."""
    if not data.strip():
        raise FioParseError("empty file")
    try:
        # the common case: exactly what fio wrote, nothing else
        obj = orjson.loads(_without_bins(data))
    except orjson.JSONDecodeError as exc:
        obj = _load_noisy(data, exc)
    if not isinstance(obj, dict):
        raise FioParseError(f"top level is a JSON {type(obj).__name__}, not an object")
    return obj


def _without_bins(data: bytes) -> bytes:
    """json+ output minus its latency histograms ("bins"), which nothing here reads.

    The bins are ~60% of a json+ file and most of its parse time (one Python object per
    bucket). Each is a flat object of quoted integer keys and integer counts, the last
    member of clat_ns/lat_ns; it is cut out only when it looks exactly like that,
    otherwise the file is parsed whole. Pure byte searches: cheap next to the parse.
    """
    i = data.find(b'"bins"')
    if i < 0:
        return data
    parts = []
    pos = 0
    while i >= 0:
        comma = data.rfind(b",", pos, i)
        brace = data.find(b"{", i)
        end = data.find(b"}", i)
        body = data[brace + 1 : end] if 0 <= brace < end else b"{"
        # Only digits, quotes, separators and an even number of quotes: then the '}' is
        # not inside a string and there is no nested object, so the cut is exact.
        if (comma < 0 or data[comma + 1 : i].strip() or data[i + 6 : brace].strip() != b":"
                or body.translate(None, b'0123456789" :,\n\r\t') or body.count(b'"') % 2):
            return data
        parts.append(data[pos:comma])
        pos = end + 1
        i = data.find(b'"bins"', pos)
    parts.append(data[pos:])
    return b"".join(parts)


def _load_noisy(data: bytes, first_error: Exception) -> Any:
    if _CONFLICT.search(data) and re.search(rb"(?m)^>{7}", data):
        raise FioParseError("git conflict markers (<<<<<<< / >>>>>>>): an unresolved merge; "
                            "resolve it or remove the file")
    # fio's object starts a line with '{'; try such positions in order (a warning line may
    # itself contain braces), and cut at the last '}' so trailing text does not matter.
    end = data.rfind(b"}")
    starts = [m.start() for m in re.finditer(rb"(?:^|\n)\{", data[: end + 1])]
    starts = [s + 1 if data[s : s + 1] == b"\n" else s for s in starts][:_MAX_CANDIDATES]
    for start in starts:
        chunk = data[start : end + 1]
        try:
            return orjson.loads(chunk)
        except orjson.JSONDecodeError:
            pass
        # Slow path, rare: trailing text containing '}', bare nan/inf, numbers beyond a
        # double (orjson refuses them; the standard library reads them as inf or int and
        # the checks in extract() reject them where they matter).
        try:
            text = _NONFINITE.sub(_nonfinite_repl, chunk).decode("utf-8", "replace")
            obj, _ = json.JSONDecoder().raw_decode(text)
            return obj
        except (ValueError, RecursionError):
            continue
    if not starts:
        raise FioParseError("no JSON object found (is this fio --output-format=json output?)")
    raise FioParseError(f"invalid JSON: {first_error}")


def _nonfinite_repl(m: re.Match) -> bytes:
    word = b"NaN" if m.group(3).lower() == b"nan" else m.group(2) + b"Infinity"
    return m.group(1) + word


def extract(doc: dict[str, Any]) -> dict[str, Any]:
    """A decoded fio document -> the flat record of FIELDS (numbers as float, NaN if unknown)."""
    jobs = _jobs_of(doc)
    glob_opts = doc.get("global options")
    sums = _Sums(glob_opts if isinstance(glob_opts, dict) else {})
    for i, job in enumerate(jobs):
        sums.add_job(i, job)
    return sums.record(doc)


def _jobs_of(doc: dict[str, Any]) -> list:
    jobs = doc.get("jobs")
    if jobs is None and isinstance(doc.get("client_stats"), list):
        # fio --client: one entry per client plus an "All clients" sum we must not count twice.
        jobs = [j for j in doc["client_stats"] if not (isinstance(j, dict) and j.get("jobname") == "All clients")]
    if not isinstance(jobs, list):
        raise FioParseError("no 'jobs' list (not fio JSON output?)")
    if not jobs:
        raise FioParseError("'jobs' is empty: fio ran no job")
    return jobs


class _Sums:
    """What extract adds up over the jobs of one document."""

    def __init__(self, glob_opts: dict[str, Any]):
        self.glob_opts = glob_opts
        self.dir_iops = {"read": 0.0, "write": 0.0, "trim": 0.0}
        self.bw = {"read": 0.0, "write": 0.0}
        self.total = 0.0
        self.lat_sum = {"mean": 0.0, "p50": 0.0, "p99": 0.0, "p999": 0.0}
        self.lat_wsum = {"mean": 0.0, "p50": 0.0, "p99": 0.0, "p999": 0.0}
        self.runtime_ms = math.nan
        self.error = 0
        self.sections: dict[Any, list] = {}  # job section -> [entries, numjobs option, iodepth option]
        self.opts_first: dict[str, Any] | None = None

    def add_job(self, i: int, job: Any) -> None:
        if not isinstance(job, dict):
            raise FioParseError(f"jobs[{i}] is not an object")
        err = job.get("error", 0)
        if type(err) is float and err.is_integer():
            err = int(err)  # orjson reads integers beyond 64 bits as float
        if not _is_int(err):
            raise FioParseError(f"jobs[{i}].error is not an integer: {err!r}")
        if err and not self.error:
            self.error = int(err)
        opts = job.get("job options")
        opts = {**self.glob_opts, **opts} if isinstance(opts, dict) else self.glob_opts
        if self.opts_first is None:
            self.opts_first = opts
        key = (_key(job.get("jobname")), _key(job.get("groupid")))
        entry = self.sections.setdefault(key, [0, 1, _int_opt(opts.get("iodepth"))])
        entry[0] += 1
        entry[1] = max(entry[1], _int_opt(opts.get("numjobs")) or 1)
        seen = False
        for d in ("read", "write", "trim", "mixed"):
            st = job.get(d)
            if st is not None:
                self.add_direction(i, d, st)
                seen = True
        if not seen:
            raise FioParseError(f"jobs[{i}] has no read/write/trim section")
        jr = job.get("job_runtime")
        if not self.runtime_ms > 0 and _is_num(jr) and jr > 0:
            self.runtime_ms = float(jr)

    def add_direction(self, i: int, d: str, st: Any) -> None:
        if not isinstance(st, dict):
            raise FioParseError(f"jobs[{i}].{d} is not an object")
        iops = st.get("iops")
        if type(iops) is not float or not 0 <= iops < math.inf:  # the common case, without a call
            iops = _num(iops, f"jobs[{i}].{d}.iops")
        self.total += iops
        if d in self.dir_iops:
            self.dir_iops[d] += iops
        if d in self.bw:
            b = st.get("bw")
            self.bw[d] += b if _is_num(b) and 0 <= b < math.inf else 0.0
        rt = st.get("runtime")
        if _is_num(rt) and rt > 0 and not self.runtime_ms >= rt:
            self.runtime_ms = float(rt)
        if iops > 0:
            w = st.get("total_ios")
            w = float(w) if _is_num(w) and w > 0 else iops
            _add_latency(st, w, self.lat_sum, self.lat_wsum)

    def record(self, doc: dict[str, Any]) -> dict[str, Any]:
        if not math.isfinite(self.total):
            raise FioParseError(f"total iops overflows: {self.total}")
        opts = self.opts_first or {}
        lat = {k: (self.lat_sum[k] / self.lat_wsum[k] if self.lat_wsum[k] > 0 else math.nan) for k in self.lat_sum}
        version = doc.get("fio version")
        return {
            "iops": self.total,
            "read_iops": self.dir_iops["read"],
            "write_iops": self.dir_iops["write"],
            "trim_iops": self.dir_iops["trim"],
            "read_bw_kib": self.bw["read"],
            "write_bw_kib": self.bw["write"],
            "disk_read_ios": _disk_read_ios(doc.get("disk_util")),
            "lat_mean_us": lat["mean"],
            "lat_p50_us": lat["p50"],
            "lat_p99_us": lat["p99"],
            "lat_p999_us": lat["p999"],
            "runtime_s": self.runtime_ms / 1000.0,
            "fio_version": version if isinstance(version, str) else None,
            "numjobs": sum(max(n, nj) for n, nj, _ in self.sections.values()),
            "iodepth": _int_opt(opts.get("iodepth")),
            "iodepth_total": _depth_total(self.sections),
            "rw": _str_opt(opts.get("rw", opts.get("readwrite"))),
            "bs": _str_opt(opts.get("bs", opts.get("blocksize"))),
            "error": self.error,
        }


def _depth_total(sections: dict[Any, list]) -> int | None:
    """Sum over job sections of iodepth x jobs: a section reported per job (no
    group_reporting) has one entry per job; with group_reporting one entry stands for
    numjobs jobs."""
    if any(depth is None for _, _, depth in sections.values()):
        return None
    return sum(max(n, nj) * depth for n, nj, depth in sections.values())


def _add_latency(st: dict, w: float, sums: dict, wsums: dict) -> None:
    # Completion latency, normalised to microseconds. fio 3 reports ns (clat_ns), fio 2
    # reports us (clat). When only lat percentiles exist (lat_percentiles=1) use those.
    # Percentiles of several jobs are combined as an I/O-weighted mean: an approximation
    # (exact merging needs json+ bins), good enough to compare configurations.
    clat, scale = st.get("clat_ns"), 1e-3
    lat = st.get("lat_ns")
    if not isinstance(clat, dict):
        clat, lat, scale = st.get("clat"), st.get("lat"), 1.0
    if not isinstance(clat, dict):
        return
    # gtod_reduce=1 (and similar) turns latency measurement off: fio then prints zeros
    # with N = 0 (fio 3) or min = max = mean = 0 (fio 2). Unknown, not 0 us.
    if clat.get("N") == 0 or (clat.get("max") == 0 and clat.get("mean") == 0):
        return
    mean = clat.get("mean")
    if _is_num(mean) and math.isfinite(mean) and mean >= 0:
        sums["mean"] += w * mean * scale
        wsums["mean"] += w
    pct = clat.get("percentile")
    if not isinstance(pct, dict) and isinstance(lat, dict):
        pct = lat.get("percentile")
    if not isinstance(pct, dict):
        return
    for k, key in _PCT_KEYS.items():
        v = pct.get(key)
        if v is None:
            v = _find_pct(pct, _PCT_VALUES[k])
        if _is_num(v) and math.isfinite(v) and v >= 0:
            sums[k] += w * v * scale
            wsums[k] += w


def _find_pct(pct: dict, want: float) -> Any:
    for key, v in pct.items():
        try:
            if abs(float(key) - want) < 1e-9:
                return v
        except (TypeError, ValueError):
            continue
    return None


def _disk_read_ios(du: Any) -> float:
    if not isinstance(du, list) or not du:
        return math.nan
    total = 0.0
    found = False
    for entry in du:
        if isinstance(entry, dict):
            v = entry.get("read_ios")
            if _is_num(v) and v >= 0 and math.isfinite(v):
                total += v
                found = True
    return total if found else math.nan


def _num(v: Any, where: str) -> float:
    if type(v) is int and not _is_num(v):
        raise FioParseError(f"{where} is out of range: {_short(v)}")
    if not _is_num(v):
        raise FioParseError(f"{where} is not a number: {_short(v)}")
    f = float(v)
    if not math.isfinite(f) or f < 0:
        raise FioParseError(f"{where} is not a finite non-negative number: {_short(v)}")
    return f


def _is_num(v: Any) -> bool:
    # bool is an int subclass; a "true" IOPS is a broken file, not 1.0
    if type(v) is float:
        return True
    if type(v) is int:
        return -1e308 < v < 1e308
    return False


def _is_int(v: Any) -> bool:
    return type(v) is int


def _int_opt(v: Any) -> int | None:
    # job options are strings in fio's JSON ("32"); a malformed one is just unknown
    if isinstance(v, str) and v.strip().isascii() and v.strip().isdigit():
        v = int(v)
    if type(v) is int and 0 <= v < 2**31:
        return v
    return None


def _key(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float)) else repr(v)


def _str_opt(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."
