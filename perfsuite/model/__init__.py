"""Reference model of QEMU's virtio-blk device.

Functional half (the oracle for invariants): virtqueue (split rings,
EVENT_IDX), device (virtio-blk, one handler context, batch notify, migration),
driver (Linux virtio_blk + blk-mq mapping), system (the two wired together).
Performance half: perf (queueing model), fit (stage costs from measured runs),
simulate (synthetic runs with a known truth).  See docs/model.md.
"""
