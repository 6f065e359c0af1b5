"""Stand-ins for the fio libraries a virtio-blk benchmark never calls (needs binutils).

Debian's fio links its rbd, glusterfs, nbd, rdma and pmem engines into the binary, which
drags in 60 shared libraries (84 MB: Ceph, gnutls, ICU, Kerberos, ...). Under TCG every fio
start then spends ~0.7 s in the dynamic loader, and fio starts once per repetition.
Each stub library defines, under the same soname and symbol versions, exactly the functions
fio imports from the real one; calling any of them prints which library is missing and
exits 127. libaio, psync, io_uring, null and the rest of fio are untouched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

# fio's direct dependencies that only its network/pmem engines use.
OPTIONAL = ("librbd.so", "librados.so", "libgfapi.so", "libnbd.so", "libibverbs.so",
            "librdmacm.so", "libpmemblk.so", "libpmem.so")


def is_optional(soname: str) -> bool:
    return any(soname.startswith(prefix) for prefix in OPTIONAL)


def parse_version_needs(readelf_v: str) -> dict[str, str]:
    """`readelf -V` of the importer -> {version name: soname that must define it} (pure)."""
    needs, current = {}, None
    for line in readelf_v.splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            needs[m.group(1)] = current
    return needs


def parse_dynsyms(objdump_t: str) -> list[tuple[str, str, bool]]:
    """`objdump -T` -> [(symbol, version or "", defined?)] for functions and objects (pure)."""
    out = []
    for line in objdump_t.splitlines():
        m = re.match(r"^[0-9a-f]+\s+\S*\s+(D[FO]|DF|DO|\w*)\s+(\S+)\s+[0-9a-f]+\s+"
                     r"(?:\((\S+)\)|(\S+))?\s*(\S+)$", line)
        if not m:
            continue
        section, version, name = m.group(2), m.group(3) or "", m.group(5)
        if version in ("Base",):
            version = ""
        out.append((name, version, section != "*UND*"))
    return out


def plan_stubs(fio_syms: list[tuple[str, str, bool]], version_needs: dict[str, str],
               lib_defs: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """{soname: {version ("" = none): [symbols]}} that each stub must define (pure).

    A versioned import belongs to the library its version says; an unversioned one to the
    optional library that defines it (lib_defs: soname -> defined symbol names).
    """
    plan: dict[str, dict[str, list[str]]] = {lib: {} for lib in lib_defs}
    for name, version, defined in fio_syms:
        if defined:
            continue
        lib = version_needs.get(version) if version else None
        if lib is None and not version:
            lib = next((lib for lib, names in lib_defs.items() if name in names), None)
        if lib in plan:
            plan[lib].setdefault(version, []).append(name)
    for lib, versions in plan.items():  # fio may need a version node with no symbols left
        for version, owner in version_needs.items():
            if owner == lib:
                versions.setdefault(version, [])
    return plan


def stub_source(soname: str, versions: dict[str, list[str]]) -> tuple[str, str]:
    """(x86-64 assembly, linker version script) for one stub library (pure).

    Every symbol is a label on the same few instructions: write a message to stderr and
    exit_group(127), by raw syscalls, so the stub needs no libc and no C compiler.
    """
    names = sorted({n for syms in versions.values() for n in syms})
    msg = (f"perfsuite guest image: {soname} is a stub; fio engines that need it do not "
           "work in the guest\\n")
    asm = ["\t.section .rodata", f'msg:\t.ascii "{msg}"', "msglen = . - msg", "\t.text"]
    for n in names:
        asm += [f"\t.globl {n}", f"\t.type {n}, @function"]
    asm += [f"{n}:" for n in names]
    asm += ["\tmov $1, %eax", "\tmov $2, %edi", "\tlea msg(%rip), %rsi", "\tmov $msglen, %edx",
            "\tsyscall", "\tmov $231, %eax", "\tmov $127, %edi", "\tsyscall", "\thlt",
            '\t.section .note.GNU-stack,"",@progbits']
    script, previous = [], None
    for version in sorted(v for v in versions if v):
        body = " ".join(f"{n};" for n in sorted(versions[version]))
        script.append(f"{version} {{ global: {body} }}{(' ' + previous) if previous else ''};")
        previous = version
    unversioned = sorted(versions.get("", []))
    if not script:
        script.append("{ global: " + " ".join(f"{n};" for n in unversioned) + " local: *; };")
    elif unversioned:  # keep them exported beside the versioned nodes
        script.insert(0, "PERFSUITE_STUB { global: "
                      + " ".join(f"{n};" for n in unversioned) + " };")
    return "\n".join(asm) + "\n", "\n".join(script) + "\n"


def _tool(name: str) -> str | None:
    return shutil.which(name)


def available() -> bool:
    return all(_tool(t) for t in ("as", "ld", "objdump", "readelf"))  # Debian: binutils


def build_stubs(fio: str, libs: list[str], outdir: Path) -> dict[str, Path]:
    """Compile stubs for fio's optional libraries into outdir; {soname: stub path}."""
    direct = re.findall(r"\(NEEDED\).*\[(\S+)\]",
                        subprocess.run(["readelf", "-dW", fio], capture_output=True, text=True,
                                       check=True).stdout)
    optional = [so for so in direct if is_optional(so)]
    by_soname = {Path(p).name: p for p in libs}
    lib_defs = {}
    for so in optional:
        if so not in by_soname:
            continue
        dump = subprocess.run(["objdump", "-T", by_soname[so]], capture_output=True, text=True,
                              check=True).stdout
        lib_defs[so] = {n for n, _, d in parse_dynsyms(dump) if d}
    fio_syms = parse_dynsyms(subprocess.run(["objdump", "-T", fio], capture_output=True,
                                            text=True, check=True).stdout)
    needs = parse_version_needs(subprocess.run(["readelf", "-VW", fio], capture_output=True,
                                               text=True, check=True).stdout)
    built = {}
    outdir.mkdir(parents=True, exist_ok=True)
    for so, versions in plan_stubs(fio_syms, needs, lib_defs).items():
        src, script = stub_source(so, versions)
        (outdir / f"{so}.s").write_text(src)
        (outdir / f"{so}.map").write_text(script)
        subprocess.run(["as", "-o", str(outdir / f"{so}.o"), str(outdir / f"{so}.s")],
                       check=True, capture_output=True)
        subprocess.run(["ld", "-shared", "-s", "--hash-style=both", "-soname", so,
                        f"--version-script={outdir / (so + '.map')}", "-o", str(outdir / so),
                        str(outdir / f"{so}.o")], check=True, capture_output=True)
        built[so] = outdir / so
    return built
