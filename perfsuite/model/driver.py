"""Guest side: the Linux virtio_blk driver over blk-mq, reduced to what matters here.

* Queue count: virtio_blk's init_vq() asks for
  ``min(num_queues offered by the device, nr_cpu_ids)`` virtqueues
  (``nr_cpu_ids`` = *possible* CPUs, which is the vCPU count for a plain
  ``-smp N``).  Queues past that are never set up, so never used.
* CPU -> queue map: with MSI-X, virtio-pci spreads the queue interrupt vectors
  over the CPUs (irq_create_affinity_masks / group_cpus_evenly) and blk-mq
  reuses that affinity: on one NUMA node without SMT siblings, queue q gets a
  contiguous run of CPUs and the first ``nr_cpus % nr_queues`` queues get one
  extra CPU ("spread").  Without affinity information blk_mq_map_queues() of
  older kernels used ``cpu % nr_queues`` ("modulo").  Both give every queue at
  least one CPU when nr_queues <= nr_cpus, which the driver guarantees.
* Submission adds a chain (header, data, status) to the CPU's queue and kicks
  only if virtqueue_kick_prepare() says so (EVENT_IDX or NO_NOTIFY flag).
* The interrupt handler (virtblk_done) reaps used entries with callbacks
  disabled and re-enables them with used_event = last_used_idx, looping while
  more arrived meanwhile.

The driver fills each status byte with 0xFF before submitting: a status the
device never wrote then reads as an error, as virtblk_result() treats any
unknown status as BLK_STS_IOERR.
"""

from __future__ import annotations

import struct

from .virtqueue import (U16, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
                        VRING_USED_F_NO_NOTIFY, Vring, need_event)

HDR_BYTES = 16
SLOT_OVERHEAD = 32  # header (16) + status (1), padded
STATUS_UNSET = 0xFF
_HDR = struct.Struct("<IIQ")


def nr_hw_queues(num_queues: int, nr_cpus: int) -> int:
    """How many virtqueues the Linux driver really uses: min(num_queues, nr_cpu_ids)."""
    if num_queues < 1 or nr_cpus < 1:
        raise ValueError("num_queues and the CPU count must be >= 1")
    return min(num_queues, nr_cpus)


def queue_map(nr_cpus: int, nr_queues: int, policy: str = "spread") -> list[int]:
    """The blk-mq CPU -> hardware queue map (see the module docstring)."""
    if not 1 <= nr_queues <= nr_cpus:
        raise ValueError(f"need 1 <= queues ({nr_queues}) <= CPUs ({nr_cpus})")
    if policy == "modulo":
        return [cpu % nr_queues for cpu in range(nr_cpus)]
    if policy != "spread":
        raise ValueError(f"unknown mapping policy {policy!r} (spread|modulo)")
    per, extra = divmod(nr_cpus, nr_queues)
    out: list[int] = []
    for q in range(nr_queues):
        out += [q] * (per + (1 if q < extra else 0))
    return out


class _Queue:
    """Driver-side state of one virtqueue (struct vring_virtqueue, split part)."""

    __slots__ = ("ring", "free", "last_used", "num_added", "inflight", "base", "mask")

    def __init__(self, ring: Vring, base: int):
        self.ring = ring
        self.free = list(range(ring.size - 1, -1, -1))  # a stack of free descriptors
        self.last_used = ring.used_idx
        self.num_added = 0
        self.inflight: dict[int, tuple] = {}  # head -> (req id, chain descriptors)
        self.base = base
        self.mask = ring.size - 1


class Driver:
    """Submits from vCPUs, kicks, takes interrupts; records every completion."""

    def __init__(self, mem: bytearray, rings: list[Vring], nr_cpus: int, kick, *,
                 event_idx: bool = True, mapping: str = "spread", slot_data: int = 4096):
        self.mem = mem
        self.nr_cpus = nr_cpus
        self.nr_queues = nr_hw_queues(len(rings), nr_cpus)
        self.cpu_queue = queue_map(nr_cpus, self.nr_queues, mapping)
        self.event_idx = event_idx
        self.kick_fn = kick
        self.slot = SLOT_OVERHEAD + slot_data
        self.slot_data = slot_data
        need = len(rings) * rings[0].size * self.slot
        if len(mem) < need:
            raise ValueError(f"guest memory of {len(mem)} bytes < {need} needed for the buffers")
        self.queues = [_Queue(r, i * r.size * self.slot) for i, r in enumerate(rings[:self.nr_queues])]
        self.next_id = 0
        self.kicks = [0] * self.nr_queues
        self.completed: list[tuple] = []   # (req id, vq, status, used len)
        self.violations: list[str] = []    # ring protocol breaches the driver noticed

    # -- submission ------------------------------------------------------------
    def submit(self, cpu: int, rtype: int, sector: int = 0, nbytes: int = 4096,
               kick: bool = True) -> int | None:
        """Queue one request from ``cpu``; None when its ring is full (blk-mq would
        stop the hardware queue and retry).  ``kick`` = this is the last request
        of the batch (blk-mq's bd->last), so ask whether the device needs a kick."""
        qi = self.cpu_queue[cpu]
        q = self.queues[qi]
        ndesc = 3 if nbytes > 0 else 2
        free = q.free
        if len(free) < ndesc:
            if kick and q.num_added:
                self.kick(qi)
            return None
        ring = q.ring
        head = free.pop()
        addr = q.base + head * self.slot
        mem = self.mem
        _HDR.pack_into(mem, addr, rtype, 0, sector)
        mem[addr + HDR_BYTES] = STATUS_UNSET
        da, dl, df, dn = ring.desc_addr, ring.desc_len, ring.desc_flags, ring.desc_next
        da[head] = addr
        dl[head] = HDR_BYTES
        df[head] = VRING_DESC_F_NEXT
        if ndesc == 3:
            d = free.pop()
            dn[head] = d
            da[d] = addr + SLOT_OVERHEAD
            dl[d] = min(nbytes, self.slot_data)
            # IN and GET_ID: the device writes the data; OUT: it reads it.
            df[d] = VRING_DESC_F_NEXT | (0 if rtype == 1 else VRING_DESC_F_WRITE)
            s = free.pop()
            dn[d] = s
            chain = (head, d, s)
        else:
            s = free.pop()
            dn[head] = s
            chain = (head, s)
        da[s] = addr + HDR_BYTES
        dl[s] = 1
        df[s] = VRING_DESC_F_WRITE
        rid = self.next_id
        self.next_id = rid + 1
        q.inflight[head] = (rid, chain)
        ring.avail_ring[ring.avail_idx & q.mask] = head
        ring.avail_idx = (ring.avail_idx + 1) & U16
        q.num_added += 1
        if kick:
            self.kick(qi)
        return rid

    def submit_many(self, cpu: int, requests) -> list[int]:
        """blk-mq's queue_rqs(): add a list of (type, sector, nbytes) to the CPU's
        queue, then one kick decision.  Stops early when the ring is full; returns
        the ids of the requests queued (the same chains submit() builds)."""
        qi = self.cpu_queue[cpu]
        q = self.queues[qi]
        ring = q.ring
        free = q.free
        mem = self.mem
        pack = _HDR.pack_into
        da, dl, df, dn = ring.desc_addr, ring.desc_len, ring.desc_flags, ring.desc_next
        avail = ring.avail_ring
        inflight = q.inflight
        slot, slot_data, base, mask = self.slot, self.slot_data, q.base, q.mask
        idx = ring.avail_idx
        rid = self.next_id
        ids = []
        for rtype, sector, nbytes in requests:
            ndesc = 3 if nbytes > 0 else 2
            if len(free) < ndesc:
                break
            head = free.pop()
            addr = base + head * slot
            pack(mem, addr, rtype, 0, sector)
            mem[addr + HDR_BYTES] = STATUS_UNSET
            da[head] = addr
            dl[head] = HDR_BYTES
            df[head] = VRING_DESC_F_NEXT
            if ndesc == 3:
                d = free.pop()
                dn[head] = d
                da[d] = addr + SLOT_OVERHEAD
                dl[d] = nbytes if nbytes < slot_data else slot_data
                df[d] = VRING_DESC_F_NEXT if rtype == 1 else VRING_DESC_F_NEXT | VRING_DESC_F_WRITE
                s = free.pop()
                dn[d] = s
                chain = (head, d, s)
            else:
                s = free.pop()
                dn[head] = s
                chain = (head, s)
            da[s] = addr + HDR_BYTES
            dl[s] = 1
            df[s] = VRING_DESC_F_WRITE
            inflight[head] = (rid, chain)
            ids.append(rid)
            rid += 1
            avail[idx & mask] = head
            idx = (idx + 1) & U16
        # One store of avail->idx for the batch, after every entry is written.
        ring.avail_idx = idx
        self.next_id = rid
        q.num_added += len(ids)
        if q.num_added:
            self.kick(qi)
        return ids

    def submit_malformed(self, cpu: int, kind: str) -> int | None:
        """Queue a broken chain (for the rejection tests); returns its request id.

        kinds: loop, next_oob (next outside the table), short_header (8-byte
        header), no_status (no writable descriptor), addr_oob (buffer outside
        guest memory), write_then_read (readable descriptor after a writable one).
        """
        qi = self.cpu_queue[cpu]
        q = self.queues[qi]
        ring = q.ring
        if len(q.free) < 2:
            return None
        head, d = q.free.pop(), q.free.pop()
        addr = q.base + head * self.slot
        mem = self.mem
        _HDR.pack_into(mem, addr, 0, 0, 0)
        mem[addr + HDR_BYTES] = STATUS_UNSET
        da, dl, df, dn = ring.desc_addr, ring.desc_len, ring.desc_flags, ring.desc_next
        da[head], dl[head], df[head], dn[head] = addr, HDR_BYTES, VRING_DESC_F_NEXT, d
        da[d], dl[d], df[d], dn[d] = addr + HDR_BYTES, 1, VRING_DESC_F_WRITE, 0
        if kind == "loop":
            df[d] |= VRING_DESC_F_NEXT
            dn[d] = head
        elif kind == "next_oob":
            dn[head] = ring.size + 7
        elif kind == "short_header":
            dl[head] = 8
        elif kind == "no_status":
            df[d] = 0
        elif kind == "addr_oob":
            da[d] = len(mem) + 4096
        elif kind == "write_then_read":
            df[head] = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE
            df[d] = 0
        else:
            raise ValueError(f"unknown malformation {kind!r}")
        rid = self.next_id
        self.next_id += 1
        q.inflight[head] = (rid, (head, d))
        ring.avail_ring[ring.avail_idx & q.mask] = head
        ring.avail_idx = (ring.avail_idx + 1) & U16
        q.num_added += 1
        self.kick(qi)
        return rid

    def kick(self, qi: int) -> bool:
        """virtqueue_kick_prepare() + notify: kick only if the device asked for it."""
        q = self.queues[qi]
        ring = q.ring
        new = ring.avail_idx
        old = (new - q.num_added) & U16
        q.num_added = 0
        if self.event_idx:
            needed = need_event(ring.avail_event, new, old)
        else:
            needed = not ring.used_flags & VRING_USED_F_NO_NOTIFY
        if needed:
            self.kicks[qi] += 1
            self.kick_fn(qi)
        return needed

    # -- completion ------------------------------------------------------------
    def interrupt(self, qi: int) -> int:
        """virtblk_done(): reap the used ring of one queue; returns how many."""
        if qi >= self.nr_queues:
            self.violations.append(f"interrupt on vq {qi}, which the driver never set up")
            return 0
        q = self.queues[qi]
        ring = q.ring
        mem = self.mem
        inflight = q.inflight
        free = q.free
        done = self.completed
        mask = q.mask
        n = 0
        while True:
            used = ring.used_idx
            pending = (used - q.last_used) & U16
            if pending > len(inflight):
                # More used entries than buffers we made available: the device
                # ran past the avail ring.  Take none of them.
                self.violations.append(
                    f"vq {qi}: used index {used} is {pending} ahead with {len(inflight)} in flight")
                return n
            while q.last_used != used:
                slot = q.last_used & mask
                head = ring.used_id[slot]
                entry = inflight.pop(head, None)
                q.last_used = (q.last_used + 1) & U16
                if entry is None:
                    self.violations.append(f"vq {qi}: used id {head} is not in flight")
                    continue
                rid, chain = entry
                free.extend(chain)
                done.append((rid, qi, mem[q.base + head * self.slot + HDR_BYTES], ring.used_len[slot]))
                n += 1
            # virtqueue_enable_cb(): ask for an interrupt at the next used entry,
            # then look again in case one slipped in before we asked.
            if self.event_idx:
                ring.used_event = q.last_used
            if ring.used_idx == q.last_used:
                return n

    def outstanding(self) -> int:
        return sum(len(q.inflight) for q in self.queues)
