"""QEMU side of the runner: argv building (pure), binary probing, process + QMP lifecycle,
KVM probe with TCG fallback."""

from perfsuite.qemu.argv import build_argv, qemu_opt
from perfsuite.qemu.features import QemuInfo, default_label, probe

__all__ = ["build_argv", "qemu_opt", "QemuInfo", "default_label", "probe"]
