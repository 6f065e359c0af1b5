"""Split-virtqueue invariants: EVENT_IDX arithmetic, 16-bit wrap, malformed chains."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from perfsuite.model.device import S_OK
from perfsuite.model.system import System
from perfsuite.model.virtqueue import U16, DeviceQueue, Vring, need_event

u16 = st.integers(0, U16)


@given(u16, u16, st.integers(0, 4096))
def test_need_event_is_window_membership(event, old, moved):
    # need_event(e, new, old) must be true exactly when e is one of the indices
    # old, old+1, ..., new-1 (mod 2**16) that were just consumed/produced.
    new = (old + moved) & U16
    window = {(old + k) & U16 for k in range(moved)}
    assert need_event(event, new, old) == (event in window)


def _run_workload(system: System, plan: list[tuple[int, int]]) -> list[int]:
    """Submit plan = [(cpu, burst)], processing after each burst; return the ids."""
    ids = []
    d = system.driver
    for cpu, burst in plan:
        cpu %= d.nr_cpus
        for k in range(burst):
            rid = d.submit(cpu, 0, 8 * k, 4096, kick=(k == burst - 1))
            if rid is not None:
                ids.append(rid)
        system.device.step()
        system.deliver_interrupts()
    assert system.drain()
    return ids


@settings(max_examples=40, deadline=None)
@given(start=st.integers(U16 - 40, U16), size=st.sampled_from([2, 4, 8, 16]),
       event_idx=st.booleans(),
       plan=st.lists(st.tuples(st.integers(0, 7), st.integers(1, 20)), min_size=1, max_size=30))
def test_wrap_around_at_65535(start, size, event_idx, plan):
    s = System(2, 2, queue_size=size, start_idx=start, event_idx=event_idx, slot_data=512)
    ids = _run_workload(s, plan)
    done = s.driver.completed
    assert sorted(r[0] for r in done) == sorted(ids)
    assert all(r[2] == S_OK for r in done)
    assert not s.driver.violations
    for ring, q in zip(s.rings, s.driver.queues):
        # Every index moved by exactly the number of requests that went through it.
        assert ring.used_idx == ring.avail_idx == q.last_used
        assert 0 <= ring.used_idx <= U16
    for qi, ring in enumerate(s.rings):
        moved = sum(1 for r in done if r[1] == qi)
        # Free-running index: start + requests through this queue, modulo 2**16
        # (plan sizes make most examples cross 65535 -> 0).
        assert ring.used_idx == (start + moved) & U16


MALFORMED = ["loop", "next_oob", "short_header", "no_status", "addr_oob", "write_then_read"]


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from([4, 8, 16]), start=st.integers(0, U16),
       ops=st.lists(st.one_of(st.sampled_from(MALFORMED), st.just("good")), min_size=1, max_size=40))
def test_malformed_chains_are_rejected_not_fatal(size, start, ops):
    s = System(1, 1, queue_size=size, start_idx=start, slot_data=512)
    expect_bad, expect_good = set(), set()
    for op in ops:
        if op == "good":
            rid = s.driver.submit(0, 0, 0, 512)
            target = expect_good
        else:
            rid = s.driver.submit_malformed(0, op)
            target = expect_bad
        if rid is None:  # ring full: let the device catch up, as blk-mq would wait
            assert s.drain()
            continue
        target.add(rid)
        if len(expect_bad) % 3 == 0:
            s.device.step()
            s.deliver_interrupts()
    assert s.drain(max_rounds=200)  # no hang
    status = {r[0]: r[2] for r in s.driver.completed}
    assert set(status) == expect_bad | expect_good
    assert len(s.driver.completed) == len(status)  # exactly once
    assert all(status[r] != S_OK for r in expect_bad)
    assert all(status[r] == S_OK for r in expect_good)
    assert s.device.rejected == len(expect_bad)
    assert not s.device.vqs[0].broken


def test_corrupt_avail_ring_breaks_queue_without_hanging():
    ring = Vring(8)
    vq = DeviceQueue(ring, 0, mem_size=1 << 16)
    ring.avail_ring[0] = 99  # head outside the table
    ring.avail_idx = 1
    assert vq.pop() is None and vq.broken
    ring2 = Vring(8)
    vq2 = DeviceQueue(ring2, 0, mem_size=1 << 16)
    ring2.avail_idx = 9  # guest claims 9 new heads in a ring of 8
    assert vq2.pop_many() == ([], []) and vq2.broken


def test_corrupt_queue_leaves_other_queues_working():
    s = System(2, 2, queue_size=8, slot_data=512)
    s.rings[0].avail_ring[0] = 200
    s.rings[0].avail_idx = 1
    s.device.kick(0)
    rid = s.driver.submit(1, 0, 0, 512)
    s.device.step()
    s.deliver_interrupts()
    assert s.device.vqs[0].broken and not s.device.vqs[1].broken
    assert [r[0] for r in s.driver.completed] == [rid]


@settings(max_examples=30, deadline=None)
@given(burst=st.integers(2, 30), size=st.sampled_from([32, 64]))
def test_event_idx_suppresses_kicks_until_device_catches_up(burst, size):
    # With EVENT_IDX, buffers added before the device has read avail_event's
    # position need no new kick: one kick covers the whole burst.
    s = System(1, 1, queue_size=size, slot_data=512)
    for _ in range(burst):
        s.driver.submit(0, 0, 0, 512)  # kick decision after every request
    assert s.driver.kicks[0] == 1
    s.device.step()
    s.deliver_interrupts()
    s.driver.submit(0, 0, 0, 512)
    assert s.driver.kicks[0] == 2  # the device has caught up: the next one kicks
    assert s.drain()


def test_no_notify_flag_without_event_idx():
    s = System(1, 1, queue_size=8, event_idx=False, slot_data=512)
    s.device.vqs[0].set_notification(False)  # the device is busy polling
    s.driver.submit(0, 0, 0, 512)
    assert s.driver.kicks[0] == 0
    s.device.vqs[0].set_notification(True)
    s.driver.submit(0, 0, 0, 512)
    assert s.driver.kicks[0] == 1


@settings(max_examples=20, deadline=None)
@given(event=u16, start=u16)
def test_interrupt_forced_after_half_the_index_space(event, start):
    # A driver whose used_event lags far behind would never be interrupted
    # again if the device kept comparing against a signalled index 2**15 or
    # more in the past; QEMU's virtqueue_flush() forgets it instead.
    ring = Vring(8, start_idx=start)
    vq = DeviceQueue(ring, 0, mem_size=0)
    vq.should_notify()                       # first check: always true, arms signalled_used
    ring.used_event = event
    for _ in range(0x8000):
        vq.push(0, 0)
    fired = vq.should_notify()
    assert fired
