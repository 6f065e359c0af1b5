"""One QEMU process and its QMP connection: start, check the device, pin, stop, kill.

Every QEMU runs in its own session/process group, gets SIGKILL if perfsuite itself dies
(PR_SET_PDEATHSIG), and is killed by an atexit hook and on SIGTERM/SIGHUP, so nothing
outlives the command.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import threading
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from qemu.qmp.legacy import QEMUMonitorProtocol

from perfsuite.qemu.argv import DEVICE_ID

log = logging.getLogger(__name__)
_LIVE: set["QemuProcess"] = set()


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; atexit + signals still apply
        pass


class QemuError(PerfsuiteError, RuntimeError):
    pass


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, unwinding like Ctrl-C. A subclass, not KeyboardInterrupt itself:
    raising the exact KeyboardInterrupt from the SIGTERM handler, an interrupted bisect
    printed its message, called sys.exit(130) and still ended killed by SIGINT in about half
    of the tries (CPython re-raises SIGINT at exit when it saw an unhandled KeyboardInterrupt;
    where it saw one is not established). With this subclass: 130 in 5 of 5 tries."""


_DEFERRED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def _signals_deferred():
    """Hold Ctrl-C/SIGTERM/SIGHUP for the few milliseconds of a QMP connect: interrupted
    inside it, qemu.qmp's event loop is left with a task that prints an asyncio traceback
    ("Task exception was never retrieved"). The signal is delivered right after.

    The handlers are swapped for one that only notes the signal, rather than the signals
    being blocked with pthread_sigmask: a mask is per thread, so the kernel hands a blocked
    process-wide signal to another thread, and an interrupted perfsuite then died of SIGINT
    instead of exiting 130 (seen with bisect's SIGTERM test).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    noted: list[int] = []
    previous = {}
    for sig in _DEFERRED:
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: noted.append(signum))
        except (ValueError, OSError):  # pragma: no cover - not settable here
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if noted:
            handler = previous.get(noted[0])
            if callable(handler):
                handler(noted[0], None)      # e.g. KeyboardInterrupt, as if it came now
            elif handler == signal.SIG_DFL:
                signal.raise_signal(noted[0])


def _try_connect(sock: str) -> tuple[QEMUMonitorProtocol | None, Exception | None]:
    qmp = QEMUMonitorProtocol(sock)
    try:
        if all(hasattr(qmp, a) for a in ("_sync", "_qmp", "_address")):
            # legacy connect() has no timeout; signals are held meanwhile, so bound it
            qmp._qmp.await_greeting = qmp._qmp.negotiate = True
            qmp._sync(qmp._qmp.connect(qmp._address), timeout=5.0)
        else:  # pragma: no cover - another qemu.qmp version
            qmp.connect(negotiate=True)
        qmp.settimeout(15.0)
        return qmp, None
    except Exception as e:  # noqa: BLE001 - not listening yet
        qmp.close()
        return None, e


class QemuProcess:
    """A QEMU started paused (-S) with a QMP server socket; see `start`."""

    def __init__(self, argv: Sequence[str], qmp_socket: str | os.PathLike,
                 stderr_path: str | os.PathLike):
        self.argv = list(argv)
        self.qmp_socket = str(qmp_socket)
        self.stderr_path = Path(stderr_path)
        self.proc: subprocess.Popen | None = None
        self.qmp: QEMUMonitorProtocol | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, connect_timeout: float = 30.0) -> None:
        try:
            os.unlink(self.qmp_socket)  # a stale socket from an earlier boot
        except FileNotFoundError:
            pass
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_pdeathsig)
        _LIVE.add(self)
        deadline = time.monotonic() + connect_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise QemuError(f"QEMU exited with {self.proc.returncode} before QMP: "
                                f"{self.stderr_text()[-600:].strip()}")
            if os.path.exists(self.qmp_socket):
                with _signals_deferred():
                    qmp, last = _try_connect(self.qmp_socket)
                if qmp is not None:
                    self.qmp = qmp
                    return
            time.sleep(0.02)
        self.kill()
        raise QemuError(f"no QMP connection within {connect_timeout:.0f} s ({last})")

    def cmd(self, name: str, **args: Any) -> Any:
        if self.qmp is None:
            raise QemuError("QMP is not connected")
        return self.qmp.cmd(name, **args)

    def cont(self) -> None:
        self.cmd("cont")

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask QEMU to quit over QMP, wait, then kill the process group."""
        if self.poll() is None and self.qmp is not None:
            try:
                self.qmp.cmd("quit")
            except Exception:  # noqa: BLE001 - already going away
                pass
        rc = self.wait(timeout) if self.poll() is None else self.poll()
        if rc is None:
            self.kill()
        self._close_qmp()
        _LIVE.discard(self)
        return self.poll()

    def kill(self) -> None:
        """SIGKILL the whole process group; reap the process."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - D state
                log.warning("QEMU pid %s did not die after SIGKILL", self.proc.pid)
        self._close_qmp()
        _LIVE.discard(self)

    def _close_qmp(self) -> None:
        if self.qmp is not None:
            try:
                self.qmp.close()
            except Exception:  # noqa: BLE001
                pass
            self.qmp = None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- inspection ------------------------------------------------------------------
    def device_props(self) -> dict[str, Any]:
        """What QEMU really built: every property an axis sets (the registry's `device_prop`:
        num-queues, queue-size, ...) and the iothread of the benchmark disk."""
        from perfsuite.matrix import axes
        base = f"/machine/peripheral/{DEVICE_ID}"
        out: dict[str, Any] = {}
        for axis in axes.device_axes():
            out[axis.device_prop] = self.cmd("qom-get", path=f"{base}/virtio-backend",
                                             property=axis.device_prop)
        try:
            link = self.cmd("qom-get", path=base, property="iothread")
        except Exception:  # noqa: BLE001 - iothread-vq-mapping devices have no single link
            link = None
        out["iothread"] = (link.rsplit("/", 1)[-1] or None) if link else None
        try:  # QEMU >= 9.0: the IOThreads the queues are spread over, as QEMU holds them
            vqm = self.cmd("qom-get", path=base, property="iothread-vq-mapping")
        except Exception:  # noqa: BLE001 - older QEMU: no such property
            vqm = None
        if vqm:
            out["iothread-vq-mapping"] = [m.get("iothread") for m in vqm]
        return out

    def thread_ids(self) -> dict[str, list[int]]:
        vcpus = sorted(self.cmd("query-cpus-fast"), key=lambda c: c["cpu-index"])
        iothreads = sorted(self.cmd("query-iothreads"), key=lambda t: t["id"])
        return {"vcpus": [c["thread-id"] for c in vcpus],
                "iothreads": [t["thread-id"] for t in iothreads]}

    def pin(self, cpus: Sequence[int] | None = None) -> dict[str, list[int]]:
        """Pin vCPU i to host CPU cpus[i % n], IOThreads to the CPUs after the vCPUs."""
        cpus = sorted(cpus or os.sched_getaffinity(0))
        tids = self.thread_ids()
        plan = pin_plan(len(tids["vcpus"]), len(tids["iothreads"]), cpus)
        for tid, cpu in zip(tids["vcpus"] + tids["iothreads"], plan["vcpus"] + plan["iothreads"]):
            os.sched_setaffinity(tid, {cpu})
        return plan


def pin_plan(n_vcpus: int, n_iothreads: int, cpus: Sequence[int]) -> dict[str, list[int]]:
    """Round-robin host CPUs: vCPUs first, then IOThreads (pure)."""
    cpus = list(cpus)
    seq = [cpus[i % len(cpus)] for i in range(n_vcpus + n_iothreads)]
    return {"vcpus": seq[:n_vcpus], "iothreads": seq[n_vcpus:]}


def kill_all() -> None:
    for q in list(_LIVE):
        q.kill()


def live_processes() -> list[QemuProcess]:
    return list(_LIVE)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C (finally blocks stop guests); call from the CLI."""
    def _handler(signum: int, _frame: object) -> None:
        raise Interrupted(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, _handler)
        except (ValueError, OSError):  # not the main thread
            pass


atexit.register(kill_all)
