"""The guest: a cached kernel + initramfs that runs fio per a plan and powers off.

Public API (docs/CONTRACTS.md section 5): ensure_image, GuestImage, guest_argv, GuestPlan,
write_plan, read_guest_info, finished_repetitions, guest_done.
"""

from perfsuite.guest.build import ensure_image
from perfsuite.guest.image import GuestImage, ImageError, cache_root
from perfsuite.guest.protocol import (GuestPlan, finished_repetitions, guest_argv, guest_done,
                                      read_guest_error, read_guest_info, repetition_status,
                                      write_plan)

__all__ = ["ensure_image", "GuestImage", "ImageError", "cache_root", "guest_argv", "GuestPlan",
           "write_plan", "read_guest_info", "read_guest_error", "finished_repetitions",
           "repetition_status", "guest_done"]
