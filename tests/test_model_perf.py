"""Performance model: the qualitative facts of the issue hold for any parameters; fit recovers truth."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings, strategies as st

from perfsuite.model.fit import fit_frame
from perfsuite.model.perf import DEFAULTS, PARAM_NAMES, FRACTIONS, Params, PerfConfig, mq_gain_bound, predict
from perfsuite.model.simulate import SimConfig, seed_matrix, simulate
from perfsuite.analysis.results import load_runs

times = st.floats(0.05, 500.0)
fractions = st.floats(0.001, 1.0)
params = st.builds(Params, **{k: (fractions if k in FRACTIONS else times) for k in PARAM_NAMES})
cpus = st.integers(1, 64)
queues = st.integers(1, 64)


def cfg(**kw) -> PerfConfig:
    base = dict(smp=4, num_queues=4, dataplane=True, numjobs=None, iodepth=32, accel="kvm")
    base.update(kw)
    return PerfConfig(**base)


@given(p=params, n=cpus, q=queues, dp=st.booleans(), d=st.integers(1, 128), h=st.sampled_from([None, 1, 2, 8]))
def test_queues_beyond_vcpus_stay_idle(p, n, q, dp, d, h):
    extra = predict(cfg(smp=n, num_queues=n + q, dataplane=dp, iodepth=d, host_cpus=h), p)
    exact = predict(cfg(smp=n, num_queues=n, dataplane=dp, iodepth=d, host_cpus=h), p)
    assert extra.queues_used == n
    assert math.isclose(extra.iops, exact.iops, rel_tol=1e-12)


@given(p=params, q=queues, dp=st.booleans(), jobs=st.integers(1, 8), d=st.integers(1, 128))
def test_multiqueue_gains_nothing_with_one_vcpu(p, q, dp, jobs, d):
    mq = predict(cfg(smp=1, num_queues=q, dataplane=dp, numjobs=jobs, iodepth=d), p).iops
    single = predict(cfg(smp=1, num_queues=1, dataplane=dp, numjobs=jobs, iodepth=d), p).iops
    assert math.isclose(mq, single, rel_tol=1e-12)


@given(p=params, n=cpus, q=queues, dp=st.booleans(), jobs=st.integers(1, 64), d=st.integers(1, 128),
       k=st.integers(1, 8), mapping=st.booleans(), h=st.sampled_from([None, 2, 16]))
def test_multiqueue_gain_is_bounded(p, n, q, dp, jobs, d, k, mapping, h):
    kw = dict(smp=n, dataplane=dp, numjobs=jobs, iodepth=d, iothreads=k, vq_mapping=mapping, host_cpus=h)
    mq = predict(cfg(num_queues=q, **kw), p)
    single = predict(cfg(num_queues=1, **kw), p)
    assert mq.iops <= single.iops * mq_gain_bound(n, q, jobs) * (1 + 1e-9)
    # One AioContext for every queue: never more than the handler thread can emulate.
    if not (dp and mapping and k > 1):
        assert mq.iops <= 1e6 / p.emul_us * (1 + 1e-9)
    else:
        assert mq.iops <= min(k, q, n, jobs) * 1e6 / p.emul_us * (1 + 1e-9)


@given(p=params, n=cpus, q=queues, jobs=st.integers(1, 64), d=st.integers(1, 128))
def test_iothread_frees_the_vcpus(p, n, q, jobs, d):
    dp = predict(cfg(smp=n, num_queues=q, dataplane=True, numjobs=jobs, iodepth=d), p)
    main = predict(cfg(smp=n, num_queues=q, dataplane=False, numjobs=jobs, iodepth=d), p)
    assert dp.bounds["vcpu"] >= main.bounds["vcpu"]
    # Only the cross-thread cost of the IOThread can make dataplane slower.
    free = replace(p, iothread_us=0.0)
    dp0 = predict(cfg(smp=n, num_queues=q, dataplane=True, numjobs=jobs, iodepth=d), free)
    main0 = predict(cfg(smp=n, num_queues=q, dataplane=False, numjobs=jobs, iodepth=d), free)
    assert dp0.iops >= main0.iops * (1 - 1e-12)


@given(p=params, n=cpus, q=queues, dp=st.booleans(), d=st.integers(1, 127))
def test_deeper_queues_never_hurt(p, n, q, dp, d):
    # More I/Os in flight: a higher latency bound and bigger EVENT_IDX batches.
    a = predict(cfg(smp=n, num_queues=q, dataplane=dp, iodepth=d), p).iops
    b = predict(cfg(smp=n, num_queues=q, dataplane=dp, iodepth=d + 1), p).iops
    assert b >= a * (1 - 1e-12)


def test_prediction_is_positive_and_below_every_bound():
    for accel, p in DEFAULTS.items():
        for c in seed_matrix():
            pr = predict(PerfConfig(c.smp, c.num_queues, c.dataplane, c.numjobs, c.iodepth, accel,
                                    host_cpus=2), p)
            assert 0 < pr.iops <= min(pr.bounds.values())


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.3, 3.0), share=st.floats(0.05, 0.9))
def test_fit_recovers_known_truth_from_simulated_runs(tmp_path_factory, seed, scale, share):
    # A "true" machine unlike the priors; simulate runs around it, fit, and
    # ask the fit to reproduce every configuration's true mean.
    d = DEFAULTS["kvm"].as_dict()
    true = Params(**{**d, "guest_us": d["guest_us"] * scale, "emul_us": d["emul_us"] / scale,
                     "bql_share": share})
    from perfsuite.model.fit import Model
    configs = seed_matrix("t") + [
        SimConfig("t-smp-2-dataplane", 2, 2, True, 2, 32, 1),
        SimConfig("t-smp-2-dataplane-no-mq", 2, 1, True, 2, 32, 1),
        SimConfig("t-smp-8-dataplane", 8, 8, True, 8, 16, 1),
        SimConfig("t-smp-4-dataplane-qd-1", 4, 4, True, 4, 1, 1),
    ]
    out = tmp_path_factory.mktemp("sim")
    truth = simulate(configs, out, repeat=4, cv=0.02, seed=seed, model=Model(params={"kvm": true}))
    res = fit_frame(load_runs(out).frame)
    assert len(res.rows) == len(configs)
    for r in res.rows:
        assert abs(r.predicted / truth[r.row.name] - 1) < 0.06, r.row.name
    assert res.rms_log < 0.05


@given(p=params, n=st.integers(1, 32), k=st.integers(1, 8), d=st.integers(1, 64))
def test_iothread_vq_mapping_spreads_queue_i_to_thread_i_mod_k(p, n, k, d):
    # The busiest IOThread owns ceil(n/k) of the n queues (queue i -> i mod k).
    pr = predict(cfg(smp=n, num_queues=n, iodepth=d, iothreads=k, vq_mapping=True), p)
    per_thread = [sum(1 for i in range(n) if i % k == t) for t in range(k)]
    assert math.isclose(pr.handler_threads, n / max(per_thread))
    one = predict(cfg(smp=n, num_queues=n, iodepth=d, iothreads=1, vq_mapping=True), p)
    assert pr.iops >= one.iops * (1 - 1e-12)


@given(p=params, n=cpus, dp=st.booleans(), d=st.integers(1, 128), h=st.sampled_from([None, 1, 2, 8]),
       lock=times)
def test_one_vcpu_per_queue_meets_no_lock_contention(p, n, dp, d, h, lock):
    # One queue per busy vCPU (smp 1, or num-queues = vCPUs): the vq lock is part of
    # that vCPU's own work, never a stage of its own, whatever it costs.
    assert "virtqueue" not in predict(cfg(smp=n, num_queues=n, dataplane=dp, iodepth=d, host_cpus=h), p).bounds
    # With one vCPU its cost cannot matter at all.  (With n > 1 it still caps the
    # prediction through the single-queue twin: n queues never beat n x one queue.)
    c = cfg(smp=1, num_queues=n, dataplane=dp, numjobs=1, iodepth=d, host_cpus=h)
    assert math.isclose(predict(c, p).iops, predict(c, replace(p, lock_us=lock)).iops, rel_tol=1e-12)


@given(p=params, n=st.integers(2, 32), d=st.integers(1, 128), h=st.sampled_from([1, 2, 8]))
def test_vcpus_sharing_a_queue_take_turns_on_its_lock(p, n, d, h):
    pr = predict(cfg(smp=n, num_queues=1, iodepth=d), p)
    assert "virtqueue" in pr.bounds
    # The section under the lock is vCPU work: one holder at a time is never
    # slower than one vCPU doing all of its work alone.
    assert pr.bounds["virtqueue"] >= pr.bounds["vcpu"] / n * (1 - 1e-12)
    # On an oversubscribed host a descheduled holder stalls the others.
    small = predict(cfg(smp=n, num_queues=1, iodepth=d, host_cpus=h), p)
    if n + 1 > h:
        assert math.isclose(small.bounds["virtqueue"], pr.bounds["virtqueue"] * h / (n + 1), rel_tol=1e-12)


@given(p=params, n=cpus, q=queues, dp=st.booleans(), d=st.integers(1, 128), k=st.integers(1, 4),
       mapping=st.booleans())
def test_host_cpus_limit_only_when_threads_outnumber_them(p, n, q, dp, d, k, mapping):
    kw = dict(smp=n, num_queues=q, dataplane=dp, iodepth=d, iothreads=k, vq_mapping=mapping)
    free = predict(cfg(**kw), p).iops
    threads = n + (min(k, q, n) if dp and mapping else 1)
    assert math.isclose(predict(cfg(host_cpus=threads, **kw), p).iops, free, rel_tol=1e-12)
    # Fewer host CPUs never help; more never hurt.
    prev = 0.0
    for h in range(1, threads + 2):
        x = predict(cfg(host_cpus=h, **kw), p).iops
        assert x >= prev * (1 - 1e-12)
        prev = x
    assert prev <= free * (1 + 1e-12)


def test_small_tcg_host_smp1_dataplane_runs_side_by_side():
    # smp 1 with an IOThread: the vCPU thread and the IOThread each have one of two
    # host CPUs, so neither the host bound nor the vq lock applies and dataplane can
    # beat smp 4 (four vCPU threads + the IOThread sharing the same two CPUs).
    p = replace(DEFAULTS["tcg"], guest_us=25.0, emul_us=30.0, lock_us=25.0)
    one = predict(PerfConfig(1, 1, True, 1, 32, "tcg", host_cpus=2), p)
    four = predict(PerfConfig(4, 4, True, 4, 32, "tcg", host_cpus=2), p)
    assert set(one.bounds) == {"vcpu", "handler", "latency"}
    assert "host_cpus" in four.bounds
    assert one.iops > four.iops
    # Without the IOThread the vCPU waits on the main loop's BQL: slower at smp 1.
    main = predict(PerfConfig(1, 1, False, 1, 32, "tcg", host_cpus=2), p)
    assert main.iops < one.iops


def test_fit_recovers_a_small_tcg_host(tmp_path):
    # TCG on 2 host CPUs, a truth away from the priors in the four fitted costs:
    # the seed matrix plus a few rows pins them down.
    from perfsuite.model.fit import FREE_PARAMS, Model
    d = DEFAULTS["tcg"].as_dict()
    true = Params(**{**d, "guest_us": 25.0, "emul_us": 30.0, "lock_us": 25.0, "bql_share": 0.4})
    configs = seed_matrix("t") + [
        SimConfig("t-smp-2-dataplane-no-mq", 2, 1, True, 2, 32, 1),
        SimConfig("t-smp-2-no-dataplane", 2, 2, False, 2, 32, 0),
    ]
    truth = simulate(configs, tmp_path, repeat=4, cv=0.02, seed=3, accel="tcg", host_cpus=2,
                     model=Model(params={"tcg": true}))
    res = fit_frame(load_runs(tmp_path).frame)
    for r in res.rows:
        assert abs(r.predicted / truth[r.row.name] - 1) < 0.06, r.row.name
    fitted = res.model.params["tcg"]
    for k in FREE_PARAMS:
        assert abs(math.log(getattr(fitted, k) / getattr(true, k))) < 0.3, k
