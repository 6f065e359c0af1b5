"""One boot of one configuration, driven to its end: what each repetition's outcome is, and
recording it in the run directory (perfsuite.rundir) as it happens.

`fio_verdict` is pure: fio exits 0 after doing no I/O at all (`failed setting up IO queues`
with an absurd iodepth), so exit status 0 is not enough for "ok"; fio's own message (which it
prints into its --output file too) is kept in the error and the log.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from perfsuite import rundir
from perfsuite.errors import PerfsuiteError
from perfsuite.run.boot import boot_timeouts
from perfsuite.run.meta import build_meta, host_info, now_iso, versions

if TYPE_CHECKING:
    from perfsuite.matrix.config import Config

POLL = 0.1


class Finished(NamedTuple):
    """What one attempted repetition came to: status, error, and for an ok one the flat fio
    record of its result (perfsuite.analysis.fio), so a caller can decide without re-reading
    the run directory (the nightly's sequential stop)."""

    status: str
    error: str | None
    record: dict | None = None


class RecordError(PerfsuiteError):
    """A repetition could not be written (disk full, read-only runs dir): exit 2."""


def fio_message(data: bytes, limit: int = 400) -> str | None:
    """fio's own words in its output file: the text lines around the JSON ("fio: ...")."""
    text = data.decode("utf-8", "replace")
    start = text.find("{")
    end = text.rfind("}")
    noise = (text if start < 0 else text[:start] + "\n" + text[end + 1:]).splitlines()
    lines = [ln.strip() for ln in noise if ln.strip()]
    if not lines:
        return None
    msg = "; ".join(lines)
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def console_fio_lines(console: str, n: int, limit: int = 400) -> str | None:
    """What fio printed on the guest console (its stderr) while repetition N ran."""
    inside, lines = False, []
    for line in console.splitlines():
        if re.search(rf"perfsuite-guest\[[^]]*\]: repetition {n}$", line):
            inside = True
        elif inside and "perfsuite-guest[" in line:
            break
        elif inside and line.startswith("fio:"):
            lines.append(line.strip())
    msg = "; ".join(lines)
    return (msg if len(msg) <= limit else msg[: limit - 3] + "...") or None


def fio_verdict(data: bytes, console_said: str | None = None) -> str | None:
    """None when fio's JSON shows a measurement; else why this repetition failed."""
    return fio_judged(data, console_said)[0]


def fio_judged(data: bytes, console_said: str | None = None) -> tuple[str | None, dict | None]:
    """(why it failed or None, the fio record when it is a measurement): one parse serves
    the verdict and the record the runner hands back."""
    from perfsuite.analysis.fio import FioParseError, parse_bytes

    said = fio_message(data) or console_said
    tail = f": {said}" if said else ""
    try:
        rec = parse_bytes(data)
    except FioParseError as exc:
        return f"fio output unreadable ({exc}){tail}", None
    if rec.get("error"):
        return f"fio reported error {rec['error']}{tail}", None
    io = [rec.get(k) or 0 for k in ("iops", "read_bw_kib", "write_bw_kib")]
    if not any(v > 0 for v in io):
        return f"fio did no I/O (0 IOPS, 0 bytes){tail or ' and printed no reason'}", None
    return None, rec


def exit_reason(code: int | None) -> str:
    """QEMU's exit status in words: a signal is named ('killed by SIGKILL')."""
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def run_boot(c: Config, run_dir: Path, reps: list[int], attempts: dict[int, int], runner: Any,
             boot_no: int) -> dict[int, Finished]:
    """Boot once for `reps`; returns {rep: Finished(status, error, record)} for every rep it attempted."""
    choice = runner.accel(c.qemu)
    tmo = boot_timeouts(c, choice.accel, runner.options.timeout)
    boot = runner.launch(c, reps, choice.accel)
    try:  # from here on the boot's work dir is ours to remove, whatever happens
        return _run_launched(c, run_dir, reps, attempts, runner, boot_no, boot, tmo, choice)
    finally:
        boot.cleanup()


def _run_launched(c: Config, run_dir: Path, reps: list[int], attempts: dict[int, int],
                  runner: Any, boot_no: int, boot: Any, tmo: Any, choice: Any) -> dict:
    runner.event("boot", name=c.name, reps=list(reps), accel=choice.accel, boot=boot_no)
    common = dict(boot=boot_no, argv=list(boot.argv), accel=choice.accel,
                  accel_note=choice.note, versions=versions(c.qemu), host=host_info())
    results: dict[int, Finished] = {}
    state = {"started": now_iso(), "device": {}}

    def record(n: int, status: str, error: str | None, json_path: Path | None = None) -> None:
        attempts[n] += 1
        status, error, data, rec = _judge(boot, n, status, error, json_path)
        meta = build_meta(c, n, guest=boot.guest_info(), device=state["device"],
                          started=state["started"], finished=now_iso(), status=status,
                          error=error, attempt=attempts[n], pinned=getattr(boot, "pinned", None),
                          **common)
        meta.update(getattr(boot, "take_host_view", lambda *_: {})(n, run_dir))  # hostview
        image = runner.image
        if image is not None and hasattr(image, "key"):
            meta["image"] = {"key": image.key, "kernel_source": getattr(image, "kernel_source", None)}
        log = boot.console()
        if error:
            log += f"\n--- perfsuite ---\nrepetition {n}: {status}: {error}\n"
        try:
            rundir.write_rep(run_dir, n, meta, log, data)
        except OSError as e:
            raise RecordError(f"cannot record {run_dir / f'{n}.json'}: {e.strerror or e} "
                              "(repetitions already recorded are kept)") from None
        results[n] = Finished(status, error, rec if status == "ok" else None)
        state["started"] = now_iso()
        if status == "ok" or attempts[n] > runner.options.retries:
            runner.event("rep", name=c.name, rep=n, status=status, error=error)
        else:
            runner.event("note", text=f"{c.name} #{n}: {status} ({error}); retrying")

    status, error, result = "ok", None, None
    try:
        try:
            boot.start()
            state["device"] = dict(getattr(boot, "device", {}) or {})
        except PerfsuiteError:
            raise
        except Exception as e:  # noqa: BLE001 - QEMU refused the config: blame the first rep
            record(reps[0], "failed", f"QEMU did not start: {' '.join(str(e).split())[:500]}")
            status, error = "failed", str(e)
            return results
        status, error, result = _drive(boot, reps, results, record, tmo)
    except BaseException:  # Ctrl-C, SIGTERM, disk full: stop the guest at once, keep what is written
        status = "interrupted"
        raise
    finally:
        if result is None:
            result = boot.finish(status, error)
        if result.status == "ok":
            _final_logs(run_dir, results, boot.console())
    return results


def _judge(boot: Any, n: int, status: str, error: str | None,
           json_path: Path | None) -> tuple[str, str | None, bytes | None, dict | None]:
    """(status, error, result bytes, fio record) of repetition N as the guest left it: a
    result without a measurement fails, and a failure carries fio's own words when it left any."""
    if json_path is not None:
        data = json_path.read_bytes()
        why, rec = fio_judged(data, console_fio_lines(boot.console(), n))
        return ("failed", why, None, None) if why else (status, error, data, rec)
    if status == "failed":
        said = _fio_part_message(boot, n) or console_fio_lines(boot.console(), n)
        if said and said not in (error or ""):
            error = f"{error}: {said}"
    return status, error, None, None


def _final_logs(run_dir: Path, results: dict, console: str) -> None:
    """The complete console (power-off included) for the repetitions that succeeded."""
    for n, fin in results.items():
        if fin.status == "ok":
            try:
                rundir.write_log(run_dir, n, console)
            except OSError:
                pass  # the log written with the result stays


def _fio_part_message(boot: Any, n: int) -> str | None:
    """fio's message from the output it left unfinished (W/N.json.part) when it failed."""
    workdir = getattr(boot, "workdir", None)
    if workdir is None:
        return None
    try:
        return fio_message(Path(workdir, f"{n}.json.part").read_bytes())
    except OSError:
        return None


def _drive(boot: Any, reps: list[int], results: dict, record, tmo) -> tuple[str, str | None, Any]:
    """Poll the guest until every rep is recorded, the guest exits, or a deadline passes."""
    deadline = time.monotonic() + tmo.first
    while True:
        for n, path in sorted(boot.poll_new().items()):
            record(n, "ok", None, path)
            deadline = time.monotonic() + tmo.each
        for n, st in sorted(boot.failed_reps().items()):
            if n not in results:
                record(n, "failed", f"fio exited with status {st} in the guest")
                deadline = time.monotonic() + tmo.each
        todo = [n for n in reps if n not in results]
        if not todo:
            return "ok", None, None
        if boot.exited():
            for n, path in sorted(boot.poll_new().items()):  # written just before exit
                record(n, "ok", None, path)
            todo = [n for n in reps if n not in results]
            if not todo:
                return "ok", None, None
            why = getattr(boot, "guest_error", lambda: None)()
            code = getattr(boot, "exit_code", lambda: None)()
            who = (f"QEMU {exit_reason(code)}" if code is not None and code != 0
                   else "guest exited")
            error = f"{who} before repetition {todo[0]}" + (f": {why}" if why else "")
            record(todo[0], "failed", error)
            return "failed", error, None
        if time.monotonic() > deadline:
            error = (f"repetition {todo[0]} did not finish in time "
                     f"({tmo.first if not results else tmo.each:.0f} s); guest killed")
            result = boot.finish("timeout", error)  # kill first: the log is then complete
            record(todo[0], "timeout", error)
            return "timeout", error, result
        time.sleep(POLL)
