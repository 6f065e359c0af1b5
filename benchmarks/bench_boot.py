#!/usr/bin/env python3
"""Benchmark of the guest image: boot overhead against the floor, and cost per repetition.

    .venv/bin/python benchmarks/bench_boot.py [--runs 3] [--runtime 2] [--out benchmarks/RESULTS-guest.md]

Side by side in one run, interleaved round by round (so load from other processes hits
every variant alike), median of --runs boots each, all under TCG with the same QEMU argv
(q35, -smp 2, 1 GB, a null-co virtio-blk disk with 2 queues on an IOThread):

  floor            Debian's kernel (bzImage as shipped) + a busybox-only initramfs whose /init
                   powers off at once, with the command line of issue 4's measurement
  floor-pvh        the same initramfs with our kernel file (PVH ELF) and command line: what
                   our image costs beyond the kernel itself
  <mode>-0rep      our image, plan with zero repetitions (guest-info.json, then poweroff)
  <mode>-1rep/2rep our image running one / two fio repetitions of --runtime s in one boot

for each image variant: initramfs (fio + its libraries inside the initramfs, the optional
ones replaced by stubs: the default), hostroot (the host's / shared read-only over 9p,
stubs too), nostubs (initramfs with all 60 of fio's libraries). Per-repetition overhead = time between the two
result files of the 2rep boot (host mtimes, written over 9p) minus fio's own runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from perfsuite.guest import GuestPlan, cache_root, ensure_image, guest_argv, write_plan  # noqa: E402
from perfsuite.guest import cpio  # noqa: E402
from perfsuite.guest.image import BUSYBOX  # noqa: E402
from perfsuite.guest.protocol import BASE_APPEND  # noqa: E402

MACHINE = ["qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-m", "1024", "-smp", "2",
           "-nographic", "-no-reboot", "-nodefaults",
           "-object", "iothread,id=io0",
           "-blockdev", "driver=null-co,node-name=null0,size=8589934592,read-zeroes=on",
           "-device", "virtio-blk-pci,drive=null0,num-queues=2,iothread=io0"]
FLOOR_INIT = b"#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n" \
             b"echo \"floor[$(/bin/busybox cut -d' ' -f1 /proc/uptime)]: init started\"\n" \
             b"/bin/busybox poweroff -f\n"
# image variants: fio delivery mode, and whether fio's optional libraries are stubbed
MODES = {"initramfs": {"fio_mode": "initramfs"}, "hostroot": {"fio_mode": "hostroot"},
         "nostubs": {"fio_mode": "initramfs", "stub_libs": False}}
FLOOR_APPEND = "console=ttyS0 quiet panic=-1"   # the floor as measured in issue 4
JOB = ("[global]\nioengine=libaio\ndirect=1\nfilename=${PERFSUITE_DEVICE}\ntime_based=1\n"
       "runtime={runtime}\nnumjobs=2\niodepth=8\n[job1]\nrw=randread\nbs=4k\n")


def debian_bzimage(tmp: Path) -> Path:
    """Debian's vmlinuz exactly as shipped, from the .deb the image build downloaded."""
    debs = sorted((cache_root() / "debs").glob("*/linux-image-*.deb"))
    if not debs:
        sys.exit("no kernel .deb in the cache: run `perfsuite image build` first")
    tar = subprocess.run(f"dpkg-deb --fsys-tarfile '{debs[-1]}' | tar -x -C '{tmp}' "
                         "--wildcards './boot/vmlinuz-*'", shell=True)
    found = sorted(tmp.glob("boot/vmlinuz-*"))
    if tar.returncode or not found:
        sys.exit(f"cannot extract boot/vmlinuz-* from {debs[-1]}")
    return found[0]


def floor_image(tmp: Path, kernel: Path) -> tuple[list[str], Path]:
    initrd = tmp / "floor-initrd.img"
    entries = cpio.with_parents([cpio.directory("proc"), cpio.chardev("dev/console", 5, 1),
                                 cpio.regular("init", FLOOR_INIT, executable=True),
                                 cpio.regular("bin/busybox", Path(BUSYBOX).read_bytes(), True)])
    initrd.write_bytes(cpio.archive(entries))
    return ["-kernel", str(kernel), "-initrd", str(initrd), "-append", FLOOR_APPEND], initrd


def boot(argv: list[str], workdir: Path, timeout: float = 300) -> dict:
    console = workdir / "console.log"
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv + ["-serial", f"file:{console}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # QEMU's CPU seconds (all threads): TCG is CPU-bound, so this moves far less than the
    # wall time when other processes share the machine.
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    text = console.read_text(errors="replace") if console.exists() else ""
    m = re.search(r"\[([\d.]+)\]: init started", text)
    return {"rc": rc, "wall": wall, "cpu": cpu, "init_uptime": float(m.group(1)) if m else None, "log": text}


def rep_overhead(workdir: Path) -> float | None:
    """Seconds between the two result files beyond fio's own time for the second one."""
    a, b = workdir / "1.json", workdir / "2.json"
    if not (a.exists() and b.exists()):
        return None
    data = orjson.loads(b.read_bytes())
    fio_s = max(j["job_runtime"] for j in data["jobs"]) / 1000
    fio_s += float(data["global options"].get("ramp_time", 0) or 0)
    return b.stat().st_mtime - a.stat().st_mtime - fio_s


def machine() -> dict:
    from perfsuite.run.meta import host_info

    cpu = host_info()["cpu_model"]
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    return {"nproc": os.cpu_count(), "cpu": cpu, "qemu": qemu, "host_kernel": platform.release()}


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=2)
    ap.add_argument("--modes", default="initramfs,hostroot,nostubs",
                    help="image variants: " + ", ".join(MODES))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS-guest.md")
    args = ap.parse_args()
    modes = args.modes.split(",")
    images = {m: ensure_image(**MODES[m], log=lambda s: print(s, file=sys.stderr)) for m in modes}
    results: dict[str, list[dict]] = {}
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmpname:
        tmp = Path(tmpname)
        floor_args, floor_initrd = floor_image(tmp, debian_bzimage(tmp))
        pvh_args = list(floor_args)  # our kernel file and command line, the floor's initramfs
        pvh_args[1] = str(images[modes[0]].kernel)
        pvh_args[-1] = BASE_APPEND
        variants = [("floor", floor_args, None), ("floor-pvh", pvh_args, None)]
        for m in modes:
            variants += [(f"{m}-0rep", m, []), (f"{m}-2rep", m, [1, 2])]
            if m == modes[0]:
                variants.insert(-1, (f"{m}-1rep", m, [1]))
        for r in range(args.runs):
            for name, mode, reps in variants[r % len(variants):] + variants[:r % len(variants)]:
                w = tmp / f"{name}-{r}"
                w.mkdir()
                if reps is None:
                    argv = MACHINE + mode
                else:
                    (w / "job.fio").write_text(JOB.replace("{runtime}", str(args.runtime)))
                    write_plan(w, GuestPlan(repetitions=reps))
                    argv = MACHINE + guest_argv(images[mode], w)
                res = boot(argv, w)
                res["overhead"] = rep_overhead(w) if reps == [1, 2] else None
                res["ok"] = res["rc"] == 0 and (reps is None or (w / "done").exists())
                results.setdefault(name, []).append(res)
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1} {name:16s} wall {res['wall']:6.2f} s  cpu {res['cpu']:6.2f} s  init at "
                      f"{res['init_uptime']} s  ok={res['ok']}"
                      + (f"  overhead {res['overhead']:.2f} s" if res["overhead"] is not None else ""),
                      file=sys.stderr)
        sizes = {"floor": floor_initrd.stat().st_size, "floor-pvh": floor_initrd.stat().st_size,
                 **{m: images[m].initrd.stat().st_size for m in modes}}
    write_report(args, modes, results, sizes, loads, machine())


def write_report(args, modes, results, sizes, loads, mach) -> None:
    walls = {k: med([r["wall"] for r in v]) for k, v in results.items()}
    cpus = {k: med([r["cpu"] for r in v]) for k, v in results.items()}
    inits = {k: med([r["init_uptime"] for r in v]) for k, v in results.items()}
    lines = [
        "# Guest image boot benchmark", "",
        f"`benchmarks/bench_boot.py --runs {args.runs} --runtime {args.runtime}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. TCG, q35, -smp 2, 1 GB, null-co "
        "virtio-blk (2 queues, IOThread). Variants interleaved round by round; medians.", "",
        f"Machine: {mach['nproc']} CPUs, {mach['cpu']}, {mach['qemu']}, host kernel "
        f"{mach['host_kernel']}. Host load average during the run (other engineers' guests "
        f"share the machine): median {med(loads):.2f}, max {max(loads):.2f}.", "",
        "| variant | initrd | wall median (s) | all runs (s) | QEMU CPU median (s) | guest uptime at /init (s) | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        size = sizes.get(name if name.startswith("floor") else name.rsplit("-", 1)[0])
        lines.append(f"| {name} | {size / 1e6:.1f} MB | {walls[name]:.2f} | "
                     + ", ".join(f"{r['wall']:.2f}" for r in runs)
                     + f" | {cpus[name]:.2f} | {inits[name]:.2f} | {sum(not r['ok'] for r in runs)} |")
    lines += ["", "| image | boot ratio 0rep / floor, wall (goal <= 1.2) | same, QEMU CPU | "
              "0rep / floor-pvh, wall | 2nd repetition overhead beyond fio runtime, s (goal <= 0.5) | "
              "2rep - 1rep - runtime from walls, s |", "|---|---|---|---|---|---|"]
    for m in modes:
        over = med([r["overhead"] for r in results[f"{m}-2rep"]])
        by_wall = (f"{walls[f'{m}-2rep'] - walls[f'{m}-1rep'] - args.runtime:.2f}"
                   if f"{m}-1rep" in walls else "-")
        lines.append(f"| {m} | {walls[f'{m}-0rep'] / walls['floor']:.2f} | "
                     f"{cpus[f'{m}-0rep'] / cpus['floor']:.2f} | "
                     f"{walls[f'{m}-0rep'] / walls['floor-pvh']:.2f} | {over:.2f} | {by_wall} |")
    lines += ["", "How to read: `floor` is issue 4's reference (Debian's bzImage, an initramfs that "
              "only powers off); `floor-pvh` is the same initramfs with our kernel file and command "
              "line, so `0rep / floor-pvh` is what our init, modules and 9p share cost. The "
              "overhead column is the time between the two result files of a 2rep boot (host "
              "mtimes) minus fio's job_runtime of the second; it includes fio's own start-up and "
              "exit. QEMU CPU (user+sys of the whole process) moves less than wall time when "
              "other processes compete for the 2 CPUs; wall medians of 5 are still only good to "
              "~20% here."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
