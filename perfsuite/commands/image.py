"""`perfsuite image build|info`: the cached guest kernel + initramfs."""

from __future__ import annotations

from pathlib import Path

import click

from perfsuite.commands.base import group


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.exists() else "missing"


def _show(img) -> None:
    click.echo(f"image      {img.directory}")
    click.echo(f"key        {img.key}")
    click.echo(f"version    {img.kernel_version}  ({img.kernel_source})")
    click.echo(f"kernel     {img.kernel.name} {_size(img.kernel)}"
               f"{' (uncompressed ELF, PVH boot)' if img.pvh else ' (bzImage)'}")
    click.echo(f"initrd     {_size(img.initrd)}")
    click.echo(f"modules    {' '.join(img.modules) or '(built into the kernel)'}")
    click.echo(f"fio        {img.fio_version} ({img.fio_mode})")


@group()
def image() -> None:
    """Build or inspect the cached guest image (kernel + initramfs running fio)."""


@image.command()
@click.option("--kernel", type=click.Path(dir_okay=False), default=None,
              help="Your own kernel (bzImage) instead of Debian's current linux-image-amd64.")
@click.option("--modules", type=click.Path(file_okay=False), default=None,
              help="Modules tree for --kernel (lib/modules/VERSION); omit if virtio/9p are built in.")
@click.option("--fio-mode", type=click.Choice(["initramfs", "hostroot"]), default=None,
              help="How fio reaches the guest (default: initramfs, see docs/guest.md).")
@click.option("--no-pvh", is_flag=True,
              help="Boot the bzImage as is, not its uncompressed ELF via PVH (slower under TCG).")
@click.option("--force", is_flag=True, help="Rebuild even if a cached image matches.")
def build(kernel: str | None, modules: str | None, fio_mode: str | None, no_pvh: bool,
          force: bool) -> None:
    """Build the guest image (or find it in the cache) and show it."""
    from perfsuite.guest import ensure_image
    from perfsuite.guest.image import DEFAULT_FIO_MODE
    img = ensure_image(kernel=kernel, modules=modules, force=force,
                       fio_mode=fio_mode or DEFAULT_FIO_MODE, pvh=not no_pvh,
                       log=lambda m: click.echo(m, err=True))
    _show(img)


@image.command()
def info() -> None:
    """Show the cache directory, the image current inputs map to, and every cached image."""
    from perfsuite.guest import GuestImage, ImageError, cache_root
    from perfsuite.guest.build import current_key
    from perfsuite.guest.kernel import KernelError
    root = cache_root()
    images = root / "images"
    click.echo(f"cache      {root}")
    try:
        key = current_key(log=lambda m: click.echo(m, err=True))
    except (ImageError, KernelError, OSError) as e:
        key = None
        click.echo(f"current    cannot tell: {e}")
    found = sorted((d for d in images.glob("*") if (d / "image.json").exists()),
                   key=lambda d: d.stat().st_mtime, reverse=True) if images.exists() else []
    if key is not None:
        built = any(d.name == key for d in found)
        click.echo(f"current    {key} ({'built' if built else 'not built yet: run `perfsuite image build`'})")
    for d in found:
        click.echo("")
        _show(GuestImage.load(d))
    for deb in sorted((root / "debs").glob("*/*.deb")) if (root / "debs").exists() else []:
        click.echo(f"\ndownloaded {deb.name} ({_size(deb)})")
