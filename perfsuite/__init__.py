"""perfsuite: benchmark and analysis suite for QEMU's virtio-blk device."""

__version__ = "0.1.0"
