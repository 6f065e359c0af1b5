"""perfsuite.hostview without a guest: /proc parsing, shares from two snapshots, the columns,
folded stacks, and the sampler against this test process's own threads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from perfsuite.hostview import columns, procstat
from perfsuite.hostview.procstat import Snapshot, TaskTimes
from perfsuite.hostview.sampler import HZ, WindowSampler, snapshot


def stat_line(pid: int, comm: str, utime: int, stime: int) -> str:
    # fields 3.. of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime ...
    return f"{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 100 0 0\n"


def test_task_stat_comm_with_spaces_and_parens():
    t = procstat.parse_task_stat(stat_line(7, "CPU 0/TCG) x", 150, 50))
    assert t == TaskTimes("CPU 0/TCG) x", 200)
    with pytest.raises(ValueError):
        procstat.parse_task_stat("garbage")


def test_proc_stat_and_loadavg():
    text = "cpu  10 2 30 400 5 1 1 8 0 0\ncpu0 1 1 1 1 1 1 1 1\nintr 1\n"
    assert procstat.parse_proc_stat(text) == {"user": 10, "nice": 2, "system": 30, "idle": 400,
                                              "iowait": 5, "irq": 1, "softirq": 1, "steal": 8}
    assert procstat.parse_loadavg("0.50 1.00 2.00 3/400 999\n") == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError):
        procstat.parse_proc_stat("intr 1\n")


def snap(t, threads, host, procs=None):
    return Snapshot(t=t, threads={k: TaskTimes(c, v) for k, (c, v) in threads.items()},
                    host=host, procs={k: TaskTimes(c, v) for k, (c, v) in (procs or {}).items()},
                    loadavg=[1.0, 1.0, 1.0])


def test_thread_cpu_roles_and_shares():
    a = snap(0.0, {10: ("qemu", 100), 11: ("rcu", 5), 12: ("CPU 0/TCG", 1000), 13: ("IO io0", 0)}, {})
    b = snap(2.0, {10: ("qemu", 120), 11: ("rcu", 5), 12: ("CPU 0/TCG", 1190),
                   13: ("IO io0", 60), 14: ("worker", 4)}, {})
    out = procstat.thread_cpu(a, b, pid=10, vcpus=[12], iothreads={13: "io0"}, hz=100)
    by_tid = {e["tid"]: e for e in out}
    assert [e["role"] for e in out] == ["vcpu", "iothread", "main", "other", "other"]
    assert by_tid[12]["cpu_pct"] == 95.0 and by_tid[12]["name"] == "vcpu0"
    assert by_tid[13]["cpu_pct"] == 30.0 and by_tid[13]["name"] == "io0"
    assert by_tid[10]["cpu_pct"] == 10.0
    assert by_tid[14]["cpu_pct"] == 2.0   # born in the window: counted from zero


def test_host_load_shares_and_other_processes():
    h0 = dict.fromkeys(procstat.PROC_STAT_FIELDS, 0)
    h1 = {**h0, "user": 50, "system": 20, "idle": 20, "steal": 10}
    a = snap(0.0, {}, h0, {1: ("qemu", 0), 2: ("hog", 0), 3: ("quiet", 0)})
    b = snap(1.0, {}, h1, {1: ("qemu", 100), 2: ("hog", 90), 3: ("quiet", 0), 4: ("new", 30)})
    load = procstat.host_load(a, b, hz=100, exclude={1})
    assert load["steal_pct"] == 10.0 and load["idle_pct"] == 20.0 and load["user_pct"] == 50.0
    assert [o["comm"] for o in load["others"]] == ["hog", "new"]   # qemu excluded, quiet < 1%
    assert load["others"][0]["cpu_pct"] == 90.0


def test_columns_from_meta():
    meta = {"host_threads": [
        {"role": "vcpu", "cpu_pct": 80.0}, {"role": "vcpu", "cpu_pct": 60.0},
        {"role": "iothread", "cpu_pct": 97.0}, {"role": "iothread", "cpu_pct": 10.0},
        {"role": "main", "cpu_pct": 5.0}, {"role": "other", "cpu_pct": 1.5}],
        "host_load": {"steal_pct": 6.0, "idle_pct": 30.0,
                      "others": [{"pid": 5, "comm": "gcc", "cpu_pct": 40.0}]}}
    c = columns.derive(meta)
    assert c["cpu_vcpu_pct"] == 70.0 and c["cpu_iothread_pct"] == 97.0 and c["cpu_main_pct"] == 5.0
    assert c["cpu_vcpus_total_pct"] == 140.0 and c["cpu_iothreads_total_pct"] == 107.0
    assert c["steal_pct"] == 6.0 and c["host_busy_pct"] == 70.0
    assert c["host_other_pct"] == 40.0 and c["host_other"] == "gcc (pid 5)"
    none = columns.derive({"host_threads": None, "host_load": None})
    assert set(none) == set(columns.COLUMNS) and all(v is None for v in none.values())
    # no IOThread (no dataplane): unknown, not zero
    assert columns.derive({"host_threads": [{"role": "vcpu", "cpu_pct": 1}]})["cpu_iothread_pct"] is None



def test_sampler_measures_a_busy_thread_of_this_process(tmp_path):
    """The real /proc of this process: a thread spinning through the window shows ~a core,
    and the window edges come from the marker files the guest would write."""
    stop = threading.Event()
    tid = []

    def spin():
        tid.append(threading.get_native_id())
        while not stop.is_set():
            pass

    t = threading.Thread(target=spin)
    t.start()
    try:
        while not tid:
            time.sleep(0.01)
        s = WindowSampler(tmp_path, [1], os.getpid(), vcpus=[tid[0]], iothreads={})
        s.poll()
        assert s.take(1) == {}                      # no window yet
        clock = time.pthread_getcpuclockid(t.ident)   # the thread's own CPU clock
        (tmp_path / "1.window-start").write_text("0\n")
        c0, w0 = time.clock_gettime(clock), time.monotonic()
        s.poll()
        time.sleep(1.0)
        (tmp_path / "1.window-end").write_text("0\n")
        got = s.take(1)
        own = 100.0 * (time.clock_gettime(clock) - c0) / (time.monotonic() - w0)
    finally:
        stop.set()
        t.join()
    vcpu = [e for e in got["host_threads"] if e["role"] == "vcpu"]
    assert len(vcpu) == 1 and vcpu[0]["tid"] == tid[0]
    # what /proc said agrees with the thread's own CPU clock (ticks are 1/HZ s: a few % off
    # at most over a 1 s window); how much it got depends on the load of the shared host
    assert vcpu[0]["cpu_pct"] > 0 and abs(vcpu[0]["cpu_pct"] - own) < 6.0, (vcpu, own)
    load = got["host_load"]
    assert 0.9 < load["window_s"] < 3.0
    shares = sum(load[k] for k in ("user_pct", "system_pct", "iowait_pct", "steal_pct", "idle_pct"))
    assert abs(shares - 100.0) < 0.5
    assert os.getpid() not in {o["pid"] for o in load["others"]}


def test_window_without_start_closes_on_status(tmp_path):
    s = WindowSampler(tmp_path, [1, 2], os.getpid(), vcpus=[], iothreads={})
    (tmp_path / "1.status").write_text("1\n")   # fio failed before any I/O
    s.poll()
    assert s.take(1) == {}
    (tmp_path / "2.window-start").write_text("0\n")
    s.poll()
    (tmp_path / "2.window-end").write_text("0\n")
    assert "host_threads" in s.take(2)


def test_snapshot_reads_real_proc():
    sn = snapshot(os.getpid())
    assert os.getpid() in sn.threads and os.getpid() in sn.procs
    assert sn.host["idle"] > 0 and len(sn.loadavg) == 3 and HZ > 0


def test_end_of_window_is_acknowledged_by_removing_the_marker(tmp_path):
    """The guest waits for N.window-end to go away before it powers off (WINDOW_ACK)."""
    s = WindowSampler(tmp_path, [1], os.getpid(), vcpus=[], iothreads={})
    (tmp_path / "1.window-start").write_text("0\n")
    s.poll()
    (tmp_path / "1.window-end").write_text("0\n")
    s.poll()
    assert not (tmp_path / "1.window-end").exists() and "host_threads" in s.take(1)
