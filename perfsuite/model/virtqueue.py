"""Split virtqueues (virtio 1.x, section 2.7), both sides of the shared ring.

A split virtqueue is three areas in guest memory: the descriptor table (addr,
len, flags, next), the available ring (driver -> device: flags, idx, ring[],
used_event) and the used ring (device -> driver: flags, idx, ring[] of (id, len),
avail_event).  Here they are the attributes of one :class:`Vring` object that
the driver and the device models share, the way both sides share guest RAM.
The driver writes only ``desc_*``, ``avail_*`` and ``used_event``; the device
writes only ``used_*`` and ``avail_event``.  Keeping them as flat Python lists
rather than a packed bytearray keeps the hot path fast (>= 200k requests/s on
one core) without changing what each side may see.

Ring indices are free-running 16-bit counters (``idx`` wraps from 65535 to 0,
the slot is ``idx % size``), so every comparison is done modulo 2**16.

Notification suppression (VIRTIO_F_EVENT_IDX), both directions:

* driver -> device (kick): the device publishes ``avail_event``; the driver
  kicks after moving ``avail_idx`` from ``old`` to ``new`` only if
  ``need_event(avail_event, new, old)``.
* device -> driver (interrupt): the driver publishes ``used_event``; the
  device interrupts after moving the used index from the last signalled value
  ``old`` to ``new`` only if ``need_event(used_event, new, old)``.

Without EVENT_IDX the flags do the job: VRING_USED_F_NO_NOTIFY and
VRING_AVAIL_F_NO_INTERRUPT.

The device side mirrors QEMU's hw/virtio/virtio.c: ``last_avail_idx``, a
shadow ``used_idx``, ``signalled_used`` / ``signalled_used_valid`` and
``inuse``; a corrupt ring (the guest moving avail_idx by more than the ring
size, a head index outside the table) marks the queue broken, like QEMU's
virtio_error(), instead of raising.  A malformed *chain* behind a valid head
(a loop, a ``next`` outside the table, a buffer outside guest memory, an
INDIRECT descriptor we did not negotiate, a readable descriptor after a
writable one) is reported to the caller as :class:`ChainError` so that the
device can fail that one request; the walk is bounded by the table size, so it
can never hang.
"""

from __future__ import annotations

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_USED_F_NO_NOTIFY = 1
VRING_AVAIL_F_NO_INTERRUPT = 1

U16 = 0xFFFF


def need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """vring_need_event(): did the index cross ``event_idx`` while moving old -> new?

    True iff event_idx lies in the half-open window [old, new) modulo 2**16,
    i.e. the other side asked to be told once this entry was consumed.
    """
    return ((new_idx - event_idx - 1) & U16) < ((new_idx - old_idx) & U16)


class ChainError(Exception):
    """A descriptor chain that cannot be mapped; carries the head to fail."""

    def __init__(self, head: int, reason: str):
        super().__init__(reason)
        self.head = head
        self.reason = reason


class Vring:
    """The shared memory of one split virtqueue of ``size`` entries (a power of two)."""

    __slots__ = (
        "size", "desc_addr", "desc_len", "desc_flags", "desc_next",
        "avail_flags", "avail_idx", "avail_ring", "used_event",
        "used_flags", "used_idx", "used_id", "used_len", "avail_event",
    )

    def __init__(self, size: int, start_idx: int = 0):
        if size <= 0 or size & (size - 1) or size > 32768:
            raise ValueError(f"queue size must be a power of two in 1..32768, got {size}")
        self.size = size
        self.desc_addr = [0] * size
        self.desc_len = [0] * size
        self.desc_flags = [0] * size
        self.desc_next = [0] * size
        # start_idx lets tests begin just below the 16-bit wrap, as a ring does
        # after 65 000 requests or after migration of a long-running guest.
        start_idx &= U16
        self.avail_flags = 0
        self.avail_idx = start_idx
        self.avail_ring = [0] * size
        self.used_event = start_idx
        self.used_flags = 0
        self.used_idx = start_idx
        self.used_id = [0] * size
        self.used_len = [0] * size
        self.avail_event = start_idx


class DeviceQueue:
    """Device-side state of one virtqueue (what QEMU keeps in VirtQueue)."""

    __slots__ = (
        "ring", "index", "event_idx", "last_avail_idx", "shadow_avail_idx",
        "used_idx", "signalled_used", "signalled_used_valid", "inuse",
        "broken", "error", "mem_size",
    )

    def __init__(self, ring: Vring, index: int, mem_size: int, event_idx: bool = True):
        self.ring = ring
        self.index = index
        self.event_idx = event_idx
        self.mem_size = mem_size
        self.last_avail_idx = ring.avail_idx
        self.shadow_avail_idx = ring.avail_idx
        self.used_idx = ring.used_idx
        self.signalled_used = ring.used_idx
        self.signalled_used_valid = False
        self.inuse = 0
        self.broken = False
        self.error = ""

    # -- available side --------------------------------------------------
    def _fail(self, msg: str) -> None:
        # QEMU's virtio_error(): the device stops using the queue until reset.
        self.broken = True
        self.error = msg

    def pending(self) -> int:
        """How many heads the driver has made available and we have not popped."""
        n = (self.ring.avail_idx - self.last_avail_idx) & U16
        if n > self.ring.size:
            self._fail(f"vq {self.index}: guest moved avail index from "
                       f"{self.last_avail_idx} to {self.ring.avail_idx}")
            return 0
        return n

    def set_notification(self, enable: bool) -> None:
        """virtio_queue_set_notification(): ask for (or stop asking for) kicks."""
        r = self.ring
        if self.event_idx:
            # With EVENT_IDX only enabling writes: "kick me once avail_idx passes
            # what I have seen".  Disabling is implicit: avail_event stays behind.
            if enable:
                self.shadow_avail_idx = r.avail_idx
                r.avail_event = r.avail_idx
        elif enable:
            r.used_flags &= ~VRING_USED_F_NO_NOTIFY
        else:
            r.used_flags |= VRING_USED_F_NO_NOTIFY

    def pop(self):
        """virtqueue_pop(): the next chain as (head, out_segs, in_segs), or None.

        Segments are lists of (addr, len).  Raises ChainError for a malformed
        chain behind a valid head (the head is consumed: the caller must push
        it back with an error).  Returns None when empty or broken.
        """
        elems, bad = self.pop_many(1)
        if bad:
            raise bad[0]
        return elems[0] if elems else None

    def pop_many(self, limit: int = 1 << 16):
        """Pop up to ``limit`` chains: (list of (head, out_segs, in_segs), list of ChainError).

        The same walk as pop(), in one loop with everything in locals: this is
        the hot path of the functional model.
        """
        elems: list = []
        bad: list = []
        if self.broken:
            return elems, bad
        r = self.ring
        avail = self.pending()
        if avail > limit:
            avail = limit
        size = r.size
        mask = size - 1
        ring = r.avail_ring
        addr_t, len_t, flags_t, next_t = r.desc_addr, r.desc_len, r.desc_flags, r.desc_next
        mem_size = self.mem_size
        last = self.last_avail_idx
        append = elems.append
        for _ in range(avail):
            if self.inuse >= size:
                # More chains in use than the ring holds: the guest re-used a head.
                self._fail(f"vq {self.index}: virtqueue size exceeded")
                break
            head = ring[last & mask]
            if head >= size:
                self._fail(f"vq {self.index}: guest provided head {head} outside a table of {size}")
                break
            last = (last + 1) & U16
            self.inuse += 1
            out_segs: list = []
            in_segs: list = []
            i = head
            err = None
            # A chain can have at most `size` descriptors; one more means a loop.
            for _ in range(size):
                flags = flags_t[i]
                a = addr_t[i]
                n = len_t[i]
                if flags & VRING_DESC_F_INDIRECT:
                    err = "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC"
                    break
                if a < 0 or n < 0 or a + n > mem_size:
                    err = f"descriptor {i} maps [{a}, {a + n}) outside guest memory"
                    break
                if flags & VRING_DESC_F_WRITE:
                    in_segs.append((a, n))
                elif in_segs:
                    err = "device-readable descriptor after a writable one"
                    break
                else:
                    out_segs.append((a, n))
                if not flags & VRING_DESC_F_NEXT:
                    append((head, out_segs, in_segs))
                    break
                i = next_t[i]
                if i >= size:
                    err = f"descriptor next {i} outside a table of {size}"
                    break
            else:
                err = "looped descriptor chain"
            if err is not None:
                bad.append(ChainError(head, err))
        self.last_avail_idx = last
        if self.event_idx:
            # Tell the driver how far we have read, so that it kicks only for
            # buffers added after this point.
            r.avail_event = last
        return elems, bad

    # -- used side ---------------------------------------------------------
    def push(self, head: int, length: int) -> None:
        """virtqueue_push(): fill one used entry and publish the new used index."""
        r = self.ring
        idx = self.used_idx
        slot = idx & (r.size - 1)
        r.used_id[slot] = head
        r.used_len[slot] = length
        idx = (idx + 1) & U16
        self.used_idx = idx
        r.used_idx = idx  # the write barrier + idx store of virtqueue_flush()
        self.inuse -= 1
        # virtqueue_flush(): once the used index has run 2**15 or more past the
        # last signalled value, need_event() can no longer tell old from new;
        # forget signalled_used so that the next check notifies.
        d = (idx - self.signalled_used) & U16
        if d == 0 or d >= 0x8000:
            self.signalled_used_valid = False

    def should_notify(self) -> bool:
        """virtio_should_notify(): does the driver want an interrupt now?

        Called once per notification opportunity; it moves signalled_used, as
        QEMU does, so that the next call only considers newer used entries.
        """
        r = self.ring
        if not self.event_idx:
            return not r.avail_flags & VRING_AVAIL_F_NO_INTERRUPT
        valid = self.signalled_used_valid
        old = self.signalled_used
        new = self.used_idx
        self.signalled_used_valid = True
        self.signalled_used = new
        return not valid or need_event(r.used_event, new, old)

    def save(self) -> dict:
        return {"last_avail_idx": self.last_avail_idx, "used_idx": self.used_idx,
                "inuse": self.inuse, "broken": self.broken, "error": self.error}

    def load(self, state: dict) -> None:
        self.last_avail_idx = state["last_avail_idx"]
        self.shadow_avail_idx = self.last_avail_idx
        self.used_idx = state["used_idx"]
        self.inuse = state["inuse"]
        self.broken = state["broken"]
        self.error = state["error"]
        # As after QEMU's virtio_load(): the destination has no idea what the
        # source last signalled, so the first completion always interrupts.
        self.signalled_used_valid = False
        self.signalled_used = self.used_idx
        n = (self.ring.avail_idx - self.last_avail_idx) & U16
        if n > self.ring.size:
            self._fail(f"vq {self.index}: {n} available heads after migration exceed the ring size")
