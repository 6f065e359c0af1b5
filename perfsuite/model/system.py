"""A guest driver and a virtio-blk device wired together over shared rings.

This is the harness the invariant tests and the speed benchmark drive: it
owns guest memory, the rings, the device (replaced by a fresh one on every
migration) and the driver, and it delivers interrupts when the caller says
so, because real interrupts arrive asynchronously.
"""

from __future__ import annotations

import orjson

from .device import VirtioBlk
from .driver import SLOT_OVERHEAD, Driver
from .virtqueue import Vring


class System:
    def __init__(self, nr_cpus: int, num_queues: int, *, queue_size: int = 128,
                 event_idx: bool = True, batch_notify: bool = True, start_idx: int = 0,
                 slot_data: int = 4096, mapping: str = "spread", capacity_sectors: int = 1 << 21):
        self.mem = bytearray(num_queues * queue_size * (SLOT_OVERHEAD + slot_data))
        self.rings = [Vring(queue_size, start_idx) for _ in range(num_queues)]
        self.dev_kw = dict(event_idx=event_idx, batch_notify=batch_notify,
                           capacity_sectors=capacity_sectors, irq=self._irq)
        self.device = VirtioBlk(self.mem, self.rings, **self.dev_kw)
        self.driver = Driver(self.mem, self.rings, nr_cpus, self._kick, event_idx=event_idx,
                             mapping=mapping, slot_data=slot_data)
        self.irq_pending = [False] * num_queues
        self.notifications = 0      # over all devices, across migrations
        self.completions = 0
        self.migrations = 0

    def _kick(self, vq: int) -> None:
        self.device.kick(vq)

    def _irq(self, vq: int) -> None:
        self.irq_pending[vq] = True

    def deliver_interrupts(self) -> int:
        n = 0
        for vq, pending in enumerate(self.irq_pending):
            if pending:
                self.irq_pending[vq] = False
                n += self.driver.interrupt(vq)
        return n

    def _retire(self, dev: VirtioBlk) -> None:
        self.notifications += sum(dev.notifications)
        self.completions += sum(dev.completions)

    def totals(self) -> tuple[int, int]:
        """(notifications, completions) so far, over every device incarnation."""
        d = self.device
        return self.notifications + sum(d.notifications), self.completions + sum(d.completions)

    def migrate(self) -> None:
        """Save the device, send the state through JSON (it must be plain data),
        and continue on a fresh device, as a migration to another host would."""
        state = orjson.loads(orjson.dumps(self.device.save()))
        self._retire(self.device)
        self.device = VirtioBlk.restore(state, self.mem, self.rings, **self.dev_kw)
        self.migrations += 1

    def drain(self, max_rounds: int = 10_000) -> bool:
        """Run until the driver has nothing in flight; False if it stops making
        progress (a lost kick or a lost interrupt would show up here)."""
        for _ in range(max_rounds):
            if not self.driver.outstanding():
                return True
            self.device.step()
            self.deliver_interrupts()
        return not self.driver.outstanding()
