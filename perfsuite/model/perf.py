"""Performance model: expected IOPS of a virtio-blk configuration (bottleneck analysis).

The guest runs ``numjobs`` fio jobs, each keeping ``iodepth`` I/Os in flight,
on ``smp`` vCPUs; the device has ``num_queues`` virtqueues served by one
handler context.  Every request costs CPU time in a few places ("stages"),
and each place has a capacity.  Throughput is limited by the most loaded one:

====================  =====================================================  ==============
resource              demand per request (microseconds)                      servers
====================  =====================================================  ==============
vCPU                  guest_us + (exit_us + irq_us) / B                      a = min(J, N)
                      [+ bql_share * (emul_us + notify_us / B), no IOThread]
virtqueue (only when  lock_us: the part of the vCPU work done under the      u * s
vCPUs share a queue)  queue's lock, stretched by 1/s on an oversubscribed
                      host
handler thread        emul_us + notify_us / B [+ iothread_us with an         h (below)
                      IOThread]
host CPUs (only when  the sum of all CPU stages                              host_cpus
threads > host_cpus)
latency (Little)      one request alone: every stage + backend_us            C = J * D
====================  =====================================================  ==============

* Q' = min(num_queues, smp): the Linux driver never sets up more queues than
  possible CPUs, so extra queues stay idle; u = min(Q', a) queues with a busy
  vCPU.
* h = 1: all queues are served by one AioContext (the main loop, or the one
  IOThread of the seed's series).  With ``iothread-vq-mapping`` over K
  IOThreads, queue i goes to IOThread i mod K; the busiest thread has
  ceil(u/K) queues, so h = u / ceil(u/K) (= min(K, u) when K divides u).
* Host threads: every busy vCPU is one host thread (KVM, and TCG with MTTCG),
  plus the handler threads (the main loop, or min(K, u) IOThreads).  While
  there are no more of them than host CPUs, each has a core and the stages
  above are the whole story: a host-CPU bound would only count the same
  limit twice.  With more threads than CPUs (smp 4 on 2 host cores) the
  CPUs are shared: host_cpus / (sum of all CPU time per request) is a bound,
  and every thread, including a vCPU that holds a queue's lock, runs only a
  share s = host_cpus / threads of the time (s = 1 otherwise).
* The virtqueue lock (Linux ``virtio_blk``: ring updates on submission,
  ``virtblk_done`` draining the used ring on completion) is vCPU work, part
  of guest_us + irq_us, not extra time.  It is a stage of its own only when
  several vCPUs submit to one queue (a > u): then the queue admits one
  holder at a time, and a holder descheduled by the host keeps everyone else
  waiting, so a queue completes at most s / lock_us requests per second.
  With one vCPU per queue (smp 1, or one queue per vCPU) the lock is never
  contended and limits nothing beyond the vCPU's own time.
* B = 1 + batch_eff * (C/u - 1): requests per kick and per interrupt.  EVENT_IDX
  suppresses kicks while the handler is still draining a queue and interrupts
  while the guest is still reaping, so the deeper each queue, the more requests
  share one exit and one interrupt.
* Without an IOThread the handler is the main loop, which holds the big QEMU
  lock (BQL) while it emulates; a share ``bql_share`` of that time stalls the
  vCPU threads (waiting on a mutex: stalled, not using CPU).  An IOThread runs
  without the BQL: it frees the vCPUs, but its requests cross threads
  (ioeventfd wake-up of another thread, AioContext lock, irqfd), which costs
  ``iothread_us`` per request on the handler.  With smp 1 the vCPU and the
  IOThread run side by side on two host CPUs, so dataplane helps most there;
  on a host with fewer CPUs than threads the freed vCPU time is worth little
  (the seed's table and our TCG runs show no-dataplane level with or ahead).
* u queues each fed by a/u of the vCPUs cannot together do more than u times
  one queue fed by all a of them: the prediction is capped at u times its
  single-queue twin (the stages differ, so the soft minimum alone does not
  guarantee that).
* IOPS = soft-min over the bounds, (sum_i X_i^-p)^(-1/p), p = 3: never above
  the tightest bound, and below it when two bounds are close, as queues
  in front of two nearly saturated stations interfere.

Consequences (tested): more queues than vCPUs change nothing; one vCPU gains
nothing from multiqueue; the gain of Q queues over one is at most min(Q, N)
and, with one handler thread, at most the handler bound; one queue per vCPU
meets no lock contention.

Parameters are per accelerator (KVM and TCG differ by an order of magnitude);
the defaults are rough priors, ``fit`` replaces them with measured ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

SOFTMIN_P = 3.0
PARAM_NAMES = ("guest_us", "exit_us", "irq_us", "emul_us", "notify_us", "lock_us",
               "bql_share", "backend_us", "batch_eff", "iothread_us")
# Parameters that are fractions, not times: bounded to (0, 1].
FRACTIONS = ("bql_share", "batch_eff")


@dataclass(frozen=True)
class Params:
    """Stage costs in microseconds of host time (see the module docstring)."""

    guest_us: float     # guest CPU per I/O on the submitting vCPU: fio, block layer, driver
    exit_us: float      # one kick: VM exit (KVM) or MMIO + eventfd write (TCG), on the vCPU
    irq_us: float       # one completion interrupt taken by the guest, on the vCPU
    emul_us: float      # device emulation per request on the handler thread
    notify_us: float    # one interrupt injection / handler wake-up, on the handler thread
    lock_us: float      # vCPU time under a queue's lock (ring ops, completion drain); part of guest work
    bql_share: float    # share of main-loop emulation that stalls vCPUs (no IOThread)
    backend_us: float   # backend service latency (null-co: a bottom half), not CPU
    batch_eff: float    # how well EVENT_IDX batches kicks/interrupts with queue depth
    iothread_us: float  # extra handler cost per request when it runs in an IOThread

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULTS: dict[str, Params] = {
    # KVM: a few microseconds per stage, the scale of the seed's 2016 numbers
    # (hundreds of thousands of IOPS on 4 vCPUs against null_blk / null-co).
    "kvm": Params(guest_us=6.0, exit_us=3.0, irq_us=2.0, emul_us=2.5, notify_us=1.5,
                  lock_us=3.5, bql_share=0.3, backend_us=1.0, batch_eff=0.1,
                  iothread_us=0.5),
    # TCG: the guest kernel and fio run translated, ~10x slower; every MMIO
    # access takes the BQL.
    "tcg": Params(guest_us=60.0, exit_us=20.0, irq_us=15.0, emul_us=10.0, notify_us=5.0,
                  lock_us=20.0, bql_share=0.5, backend_us=2.0, batch_eff=0.1,
                  iothread_us=2.0),
}


@dataclass(frozen=True)
class PerfConfig:
    smp: int
    num_queues: int
    dataplane: bool = True
    numjobs: int | None = None      # None: one fio job per vCPU (the runner's default)
    iodepth: int = 32
    accel: str = "kvm"
    iothreads: int = 1
    vq_mapping: bool = False        # iothread-vq-mapping: queue i -> IOThread i mod K
    host_cpus: int | None = None    # None: as many host CPUs as threads
    queue_size: int = 256

    def __post_init__(self):
        for k in ("smp", "num_queues", "iodepth", "iothreads", "queue_size"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.numjobs is not None and self.numjobs < 1:
            raise ValueError(f"numjobs must be >= 1, got {self.numjobs}")
        if self.host_cpus is not None and self.host_cpus < 1:
            raise ValueError(f"host_cpus must be >= 1, got {self.host_cpus}")

    @property
    def jobs(self) -> int:
        return self.numjobs if self.numjobs is not None else self.smp


@dataclass(frozen=True)
class Prediction:
    iops: float
    bounds: dict[str, float] = field(default_factory=dict)   # resource -> IOPS it allows
    queues_used: int = 1           # queues the Linux driver sets up: min(Q, N)
    busy_queues: int = 1
    handler_threads: float = 1.0
    batch: float = 1.0

    @property
    def bottleneck(self) -> str:
        return min(self.bounds, key=self.bounds.get)


def guest_queues(num_queues: int, smp: int) -> int:
    """Queues the Linux virtio_blk driver uses: min(num_queues, nr_cpu_ids)."""
    return max(1, min(num_queues, smp))


def predict(cfg: PerfConfig, params: Params | None = None) -> Prediction:
    """Expected IOPS of ``cfg`` (pure; a few microseconds of Python)."""
    p = params if params is not None else DEFAULTS.get(cfg.accel, DEFAULTS["kvm"])
    pr = _predict(cfg, p)
    if pr.busy_queues > 1:
        # u queues fed by a/u vCPUs each cannot beat u times one queue fed by all a.
        single = _predict(replace(cfg, num_queues=1), p)
        cap = pr.busy_queues * single.iops
        if pr.iops > cap:
            pr = replace(pr, iops=cap)
    return pr


def _predict(cfg: PerfConfig, p: Params) -> Prediction:
    n = cfg.smp
    jobs = cfg.jobs
    q = guest_queues(cfg.num_queues, n)
    a = min(jobs, n)                       # vCPUs with a fio job on them
    u = min(q, a)                          # queues those vCPUs submit to
    if cfg.dataplane and cfg.vq_mapping:
        # Queue i -> IOThread i mod K: the busiest IOThread serves ceil(u/K)
        # queues, so K threads are worth u / ceil(u/K) (3 queues on 2: 1.5).
        h = u / -(-u // cfg.iothreads)
        handler_threads = min(cfg.iothreads, u)
    else:
        h = 1                              # one AioContext serves every queue
        handler_threads = 1
    inflight = jobs * cfg.iodepth
    per_queue = min(inflight / u, cfg.queue_size)
    b = 1.0 + p.batch_eff * max(per_queue - 1.0, 0.0)

    handler = p.emul_us + p.notify_us / b + (p.iothread_us if cfg.dataplane else 0.0)
    vcpu_cpu = p.guest_us + (p.exit_us + p.irq_us) / b
    vcpu = vcpu_cpu + (0.0 if cfg.dataplane else p.bql_share * handler)
    alone = p.guest_us + p.exit_us + p.irq_us + p.emul_us + p.notify_us + p.backend_us

    threads = a + handler_threads          # busy host threads
    over = cfg.host_cpus is not None and threads > cfg.host_cpus
    share = cfg.host_cpus / threads if over else 1.0

    bounds = {
        "vcpu": a / vcpu * 1e6,
        "handler": h / handler * 1e6,
        "latency": inflight / alone * 1e6,
    }
    if a > u:
        # Several vCPUs take turns on one queue's lock; the section under it is
        # part of a vCPU's work, so never longer than that work.
        bounds["virtqueue"] = u * share / min(p.lock_us, vcpu_cpu) * 1e6
    if over:
        bounds["host_cpus"] = cfg.host_cpus / (vcpu_cpu + handler) * 1e6
    iops = sum(x ** -SOFTMIN_P for x in bounds.values()) ** (-1.0 / SOFTMIN_P)
    return Prediction(iops=iops, bounds=bounds, queues_used=q, busy_queues=u,
                      handler_threads=h, batch=b)


def mq_gain_bound(smp: int, num_queues: int, numjobs: int | None = None) -> float:
    """The most num_queues queues can gain over one: min(Q, N, busy vCPUs)."""
    jobs = numjobs if numjobs is not None else smp
    return float(max(1, min(num_queues, smp, jobs)))


def params_from_vector(theta) -> Params:
    """Params from log-values in PARAM_NAMES order (the fit works in log space)."""
    return Params(**{k: math.exp(v) for k, v in zip(PARAM_NAMES, theta)})


def params_to_vector(p: Params) -> list[float]:
    return [math.log(getattr(p, k)) for k in PARAM_NAMES]
