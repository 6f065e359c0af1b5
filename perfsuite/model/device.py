"""virtio-blk device model: num_queues virtqueues, one handler context, a null backend.

Follows QEMU's hw/block/virtio-blk.c as of the seed's multiqueue series:

* every virtqueue is served by the same handler context (one AioContext: the
  main loop, or the single IOThread with dataplane); a kick is an ioeventfd
  write, so several kicks of one vq before the handler runs coalesce;
* the handler drains a vq with notifications disabled and re-checks after
  re-enabling them (virtio_blk_handle_vq), so a buffer added while it ran is
  never left behind without a kick;
* requests go to a null backend (QEMU's null-co: no data is touched, every
  request succeeds) and complete later, from the event loop, in any order;
* completions are pushed to the used ring of the vq the request came from;
  with batch notify (dataplane in the seed's v4) each completion only marks its
  vq in a bitmap and one bottom half then notifies every marked vq once,
  subject to EVENT_IDX; without it each completion may notify at once;
* save()/restore() carry the requests the backend still holds, each with the
  index of its vq, across a migration; restore re-submits them and kicks every
  vq, as QEMU's dataplane start does, so nothing is lost or duplicated.

Request layout (virtio spec 5.2.6): device-readable header
``struct virtio_blk_outhdr {le32 type; le32 ioprio; le64 sector;}`` (16 bytes),
data, and a device-writable status byte at the very end.  QEMU answers a
missing or short header with virtio_error() (the device needs a reset); the
model instead fails just that request with VIRTIO_BLK_S_IOERR (written when a
status byte is writable), so that the "every request completes once"
invariant still holds and a test can see the rejection.
"""

from __future__ import annotations

import struct

from .virtqueue import DeviceQueue, Vring

T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
SECTOR = 512
ID_BYTES = 20  # VIRTIO_BLK_ID_BYTES
_HDR = struct.Struct("<IIQ")


class VirtioBlk:
    """The device.  ``mem`` is guest RAM (a bytearray), ``rings`` one Vring per queue."""

    def __init__(self, mem: bytearray, rings: list[Vring], *, capacity_sectors: int = 1 << 21,
                 serial: str = "perfsuite-model", event_idx: bool = True,
                 batch_notify: bool = True, read_zeroes: bool = False, irq=None):
        if not rings:
            raise ValueError("a virtio-blk device needs at least one virtqueue")
        self.mem = mem
        self.rings = rings
        self.capacity = capacity_sectors
        self.serial = serial.encode()[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self.batch_notify = batch_notify
        self.read_zeroes = read_zeroes
        self.irq = irq  # callback(vq_index) standing in for the MSI-X vector of that vq
        self.vqs = [DeviceQueue(r, i, len(mem), event_idx) for i, r in enumerate(rings)]
        self.kicked = [False] * len(rings)   # one ioeventfd per vq; writes coalesce
        self.inflight: list[tuple] = []       # submitted to the backend, not yet completed
        self.marked = [False] * len(rings)    # the batch-notify bitmap
        self.marked_list: list[int] = []
        self.completions = [0] * len(rings)
        self.notifications = [0] * len(rings)
        self.rejected = 0
        self.batches = 0

    @property
    def num_queues(self) -> int:
        return len(self.vqs)

    # -- guest -> device ------------------------------------------------------
    def kick(self, vq: int) -> None:
        """The guest wrote the notify register of ``vq`` (an ioeventfd write)."""
        self.kicked[vq] = True

    def handle_kicks(self) -> int:
        """One pass of the handler context over every signalled ioeventfd."""
        n = 0
        kicked = self.kicked
        for i in range(len(kicked)):
            if kicked[i]:
                kicked[i] = False
                n += self.handle_vq(i)
        return n

    def handle_vq(self, index: int) -> int:
        """virtio_blk_handle_vq(): pop and submit everything available on one vq."""
        vq = self.vqs[index]
        n = 0
        while True:
            vq.set_notification(False)
            while True:
                elems, bad = vq.pop_many()
                for e in bad:
                    self._reject(vq, e.head, [], [])
                if not elems:
                    break
                self._submit_many(index, elems)
                n += len(elems)
            vq.set_notification(True)
            # Re-check: the driver may have added a buffer after our last pop
            # but before it saw notifications enabled again.
            if vq.broken or vq.last_avail_idx == vq.ring.avail_idx:
                return n

    def _submit_many(self, index: int, elems: list) -> None:
        """Parse each request's header and status location and hand it to the backend."""
        mem = self.mem
        unpack = _HDR.unpack_from
        push = self.inflight.append
        for head, out_segs, in_segs in elems:
            if not out_segs or not in_segs:
                self._reject(self.vqs[index], head, out_segs, in_segs)
                continue
            a, length = out_segs[0]
            if length >= 16:
                rtype, _prio, sector = unpack(mem, a)
            else:
                raw = self._gather(out_segs, 16)
                if len(raw) < 16:
                    self._reject(self.vqs[index], head, out_segs, in_segs)
                    continue
                rtype, _prio, sector = _HDR.unpack(raw)
            a, length = in_segs[-1]
            if length < 1:
                self._reject(self.vqs[index], head, out_segs, in_segs)
                continue
            in_len = length
            for k in range(len(in_segs) - 1):
                in_len += in_segs[k][1]
            # (vq, head, in_len, status address, type, sector, out segs, in segs):
            # the segments are kept because migration has to carry them.
            push((index, head, in_len, a + length - 1, rtype, sector, out_segs, in_segs))

    def _submit(self, index: int, head: int, out_segs: list, in_segs: list) -> None:
        self._submit_many(index, [(head, out_segs, in_segs)])

    @staticmethod
    def _gather_from(mem, segs, limit):
        out = bytearray()
        for a, n in segs:
            out += mem[a:a + min(n, limit - len(out))]
            if len(out) >= limit:
                break
        return bytes(out)

    def _gather(self, segs, limit):
        return self._gather_from(self.mem, segs, limit)

    def _reject(self, vq: DeviceQueue, head: int, out_segs: list, in_segs: list) -> None:
        """Fail one malformed request: IOERR in its status byte if it has one."""
        self.rejected += 1
        in_len = 0
        for _, n in in_segs:
            in_len += n
        if in_segs and in_segs[-1][1] >= 1:
            a, n = in_segs[-1]
            self.mem[a + n - 1] = S_IOERR
        self._complete_one(vq.index, head, in_len)

    # -- backend -> device ---------------------------------------------------
    def _execute(self, req: tuple) -> int:
        """The null backend: validate like QEMU, move no data, return the status."""
        _, _, in_len, _, rtype, sector, out_segs, in_segs = req
        if rtype == T_IN or rtype == T_OUT:
            if rtype == T_IN:
                nbytes = in_len - 1
            else:
                nbytes = -16
                for _, n in out_segs:
                    nbytes += n
            # virtio_blk_sect_range_ok(): whole sectors, inside the disk.
            if nbytes % SECTOR or sector > self.capacity or nbytes // SECTOR > self.capacity - sector:
                return S_IOERR
            if rtype == T_IN and self.read_zeroes:
                self._scatter(in_segs, bytes(nbytes))
            return S_OK
        if rtype == T_FLUSH:
            return S_OK
        if rtype == T_GET_ID:
            # strncpy() of the serial into the data buffer: at most 20 bytes.
            room = min(in_len - 1, ID_BYTES)
            self._scatter(in_segs, self.serial[:room])
            return S_OK
        return S_UNSUPP

    def _scatter(self, segs, data: bytes) -> None:
        mem, off = self.mem, 0
        for a, n in segs:
            k = min(n, len(data) - off)
            if k <= 0:
                break
            mem[a:a + k] = data[off:off + k]
            off += k

    def complete(self, count: int | None = None, order: list[int] | None = None) -> int:
        """The backend finishes requests: the first ``count`` in flight, or the
        positions listed in ``order`` (any order: a real disk reorders).  Then
        the batch-notify bottom half runs.  Returns how many completed."""
        infl = self.inflight
        if order is not None:
            picked = [infl[j] for j in dict.fromkeys(order) if 0 <= j < len(infl)]
            chosen = {id(r) for r in picked}
            self.inflight = [r for r in infl if id(r) not in chosen]
        else:
            if count is None or count >= len(infl):
                picked, self.inflight = infl, []
            else:
                picked, self.inflight = infl[:count], infl[count:]
        mem = self.mem
        execute = self._execute
        complete_one = self._complete_one
        for req in picked:
            rtype = req[4]
            if rtype == T_IN and not self.read_zeroes and not (req[2] - 1) % SECTOR \
                    and req[5] + (req[2] - 1) // SECTOR <= self.capacity:
                # Fast path of _execute() for a well-formed read: nothing to move.
                mem[req[3]] = S_OK
            else:
                mem[req[3]] = execute(req)
            complete_one(req[0], req[1], req[2])
        self.flush_batch()
        return len(picked)

    def _complete_one(self, index: int, head: int, in_len: int) -> None:
        """virtio_blk_req_complete(): push to the request's own vq, then notify or mark."""
        vq = self.vqs[index]
        vq.push(head, in_len)
        self.completions[index] += 1
        if self.batch_notify:
            if not self.marked[index]:
                self.marked[index] = True
                self.marked_list.append(index)
        elif vq.should_notify():
            self._notify(index)

    def flush_batch(self) -> None:
        """The batch-notify BH: each vq marked since the last run is considered once."""
        if not self.marked_list:
            return
        self.batches += 1
        marked = self.marked
        for index in self.marked_list:
            marked[index] = False
            if self.vqs[index].should_notify():
                self._notify(index)
        self.marked_list = []

    def _notify(self, index: int) -> None:
        self.notifications[index] += 1
        if self.irq is not None:
            self.irq(index)

    def step(self) -> int:
        """One event-loop iteration: handle kicks, complete everything, notify."""
        self.handle_kicks()
        return self.complete()

    # -- migration -----------------------------------------------------------
    def save(self) -> dict:
        """Device state for migration: queue indices and the in-flight requests,
        each with its vq index (the seed's "live migrate s->rq with multiqueue")."""
        self.flush_batch()  # a pending BH runs before the VM stops
        return {
            "num_queues": self.num_queues,
            "queues": [vq.save() for vq in self.vqs],
            "inflight": [{"vq": r[0], "head": r[1], "out": [list(s) for s in r[6]],
                          "in": [list(s) for s in r[7]]} for r in self.inflight],
        }

    @classmethod
    def restore(cls, state: dict, mem: bytearray, rings: list[Vring], **kw) -> "VirtioBlk":
        if state["num_queues"] != len(rings):
            raise ValueError(f"migration stream has {state['num_queues']} queues, "
                             f"destination has {len(rings)}")
        dev = cls(mem, rings, **kw)
        for vq, qs in zip(dev.vqs, state["queues"]):
            vq.load(qs)
        for r in state["inflight"]:
            index = r["vq"]
            if not 0 <= index < dev.num_queues:
                raise ValueError(f"in-flight request on vq {index}, device has {dev.num_queues}")
            dev._submit(index, r["head"], [tuple(s) for s in r["out"]], [tuple(s) for s in r["in"]])
        # Kick every vq: buffers made available while the source was stopping
        # would otherwise wait for a kick the guest already sent.
        dev.kicked = [True] * dev.num_queues
        return dev
