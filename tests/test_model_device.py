"""virtio-blk device + driver invariants over random workloads, queue counts and migrations."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from perfsuite.model.device import ID_BYTES, S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT
from perfsuite.model.driver import nr_hw_queues, queue_map
from perfsuite.model.system import System
from perfsuite.model.virtqueue import U16

op = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 63), st.sampled_from([T_IN, T_OUT, T_FLUSH, T_GET_ID]),
              st.integers(1, 12), st.booleans()),
    st.tuples(st.just("batch"), st.integers(0, 63),
              st.lists(st.tuples(st.sampled_from([T_IN, T_OUT, T_FLUSH]), st.integers(1, 12)), max_size=12)),
    st.tuples(st.just("handle")),
    st.tuples(st.just("complete"), st.integers(0, 20), st.booleans(), st.randoms(use_true_random=False)),
    st.tuples(st.just("irq")),
    st.tuples(st.just("migrate")),
)


def _check_rings(s: System) -> None:
    """The used ring never overtakes the avail ring, on any queue, at any time."""
    for ring, dq in zip(s.rings, s.device.vqs):
        ahead = (ring.avail_idx - ring.used_idx) & U16
        assert ahead <= ring.size
        assert (dq.last_avail_idx - ring.used_idx) & U16 <= ahead
        assert dq.inuse == (dq.last_avail_idx - dq.used_idx) & U16


@settings(max_examples=120, deadline=None)
@given(cpus=st.integers(1, 8), queues=st.integers(1, 8), size=st.sampled_from([4, 8, 16, 32]),
       event_idx=st.booleans(), batch=st.booleans(), start=st.integers(0, U16),
       mapping=st.sampled_from(["spread", "modulo"]), ops=st.lists(op, max_size=60))
def test_every_request_completes_once_on_its_own_queue(cpus, queues, size, event_idx, batch, start,
                                                        mapping, ops):
    s = System(cpus, queues, queue_size=size, event_idx=event_idx, batch_notify=batch,
               start_idx=start, slot_data=1024, mapping=mapping)
    d = s.driver
    submitted: dict[int, tuple[int, int]] = {}  # id -> (queue, type)
    per_batch: list[Counter] = []
    if batch:
        # Record which vqs each batch-notify BH interrupts: at most once each.
        def watch(dev):
            orig = dev.flush_batch

            def flush():
                before = list(dev.notifications)
                orig()
                per_batch.append(Counter({i: b - a for i, (a, b) in
                                          enumerate(zip(before, dev.notifications)) if b > a}))
            dev.flush_batch = flush
        watch(s.device)
    for o in ops:
        kind = o[0]
        if kind == "submit":
            _, cpu, rtype, n, last = o
            cpu %= cpus
            nbytes = 0 if rtype == T_FLUSH else 512 * n if rtype != T_GET_ID else ID_BYTES
            rid = d.submit(cpu, rtype, sector=8 * n, nbytes=nbytes, kick=last)
            if rid is not None:
                submitted[rid] = (d.cpu_queue[cpu], rtype)
        elif kind == "batch":
            _, cpu, reqs = o
            cpu %= cpus
            reqlist = [(t, 8 * n, 0 if t == T_FLUSH else 512 * n) for t, n in reqs]
            for rid, (t, _, _) in zip(d.submit_many(cpu, reqlist), reqlist):
                submitted[rid] = (d.cpu_queue[cpu], t)
        elif kind == "handle":
            s.device.handle_kicks()
        elif kind == "complete":
            _, count, shuffle, rnd = o
            if shuffle:
                order = list(range(len(s.device.inflight)))
                rnd.shuffle(order)
                s.device.complete(order=order[:count])
            else:
                s.device.complete(count)
        elif kind == "irq":
            s.deliver_interrupts()
        else:
            s.migrate()
            if batch:
                watch(s.device)
        _check_rings(s)
    # Requests left with kick=False still need their kick, as blk-mq's commit_rqs gives.
    for qi in range(d.nr_queues):
        if d.queues[qi].num_added:
            d.kick(qi)
    assert s.drain()
    done = d.completed
    ids = [r[0] for r in done]
    assert len(ids) == len(set(ids)), "a request completed twice"
    assert set(ids) == set(submitted), "a request was lost"
    for rid, qi, status, _ in done:
        assert qi == submitted[rid][0], "completed on another vq"
        assert status == S_OK
    assert not d.violations
    notes, comps = s.totals()
    assert comps == len(submitted)
    assert notes <= comps
    for b in per_batch:
        assert all(v == 1 for v in b.values())
    # Queues the driver never set up stay idle.
    nq = nr_hw_queues(queues, cpus)
    assert all(c == 0 for c in s.device.completions[nq:])


@given(cpus=st.integers(1, 256), queues=st.integers(1, 64), policy=st.sampled_from(["spread", "modulo"]))
def test_blk_mq_map_covers_every_cpu_and_queue(cpus, queues, policy):
    nq = nr_hw_queues(queues, cpus)
    assert nq == min(queues, cpus)
    m = queue_map(cpus, nq, policy)
    assert len(m) == cpus
    counts = Counter(m)
    assert set(counts) == set(range(nq))           # no idle queue, none out of range
    assert max(counts.values()) - min(counts.values()) <= 1  # balanced
    if policy == "spread":
        assert m == sorted(m)                      # contiguous CPU ranges per queue


def test_queue_map_rejects_more_queues_than_cpus():
    with pytest.raises(ValueError):
        queue_map(2, 4)


def _one(s: System, rtype: int, sector: int, nbytes: int):
    rid = s.driver.submit(0, rtype, sector, nbytes)
    assert s.drain()
    return next(r for r in s.driver.completed if r[0] == rid)


def test_request_types_against_the_null_backend():
    s = System(1, 1, queue_size=8, slot_data=4096, capacity_sectors=1024)
    assert _one(s, T_IN, 0, 4096)[2] == S_OK
    assert _one(s, T_OUT, 1016, 4096)[2] == S_OK        # last 8 sectors
    assert _one(s, T_OUT, 1017, 4096)[2] == S_IOERR     # one past the end
    assert _one(s, T_IN, 0, 1000)[2] == S_IOERR         # not whole sectors
    assert _one(s, T_FLUSH, 0, 0)[2] == S_OK
    assert _one(s, 77, 0, 512)[2] == S_UNSUPP
    rid, _, status, used_len = _one(s, T_GET_ID, 0, ID_BYTES)
    assert status == S_OK and used_len == ID_BYTES + 1  # data + status byte written
    q = s.driver.queues[0]
    head = next(h for h in range(8) if s.rings[0].used_id[(s.rings[0].used_idx - 1) & 7] == h)
    data_addr = q.base + head * s.driver.slot + 32
    assert bytes(s.mem[data_addr:data_addr + ID_BYTES]).rstrip(b"\0") == b"perfsuite-model"


def test_header_is_little_endian_virtio_blk_outhdr():
    s = System(1, 1, queue_size=4, slot_data=512)
    s.driver.submit(0, T_OUT, 0x0102030405, 512, kick=False)
    q = s.driver.queues[0]
    addr = s.rings[0].desc_addr[s.rings[0].avail_ring[0]]
    assert struct.unpack_from("<IIQ", s.mem, addr) == (T_OUT, 0, 0x0102030405)
    assert q.inflight


def test_restore_rejects_a_stream_with_another_queue_count():
    from perfsuite.model.device import VirtioBlk
    s = System(2, 2, queue_size=4, slot_data=512)
    state = s.device.save()
    other = System(2, 3, queue_size=4, slot_data=512)
    with pytest.raises(ValueError):
        VirtioBlk.restore(state, other.mem, other.rings)
