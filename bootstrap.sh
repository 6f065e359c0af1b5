#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine.
#
#   ./bootstrap.sh run  [perfsuite run options]   install, build the guest image, run the default
#                                                 matrix, print the table
#   ./bootstrap.sh test [pytest options]          install, run the whole test suite
#   ./bootstrap.sh install                        only install (system packages + .venv)
#   ./bootstrap.sh build-deps                     the Debian packages a QEMU source build needs
#                                                 (perfsuite installs them itself the first time a
#                                                 git: build of a QEMU tree is asked for)
#
# System packages come from Debian (apt-get, as root or through sudo); Python packages go into
# ./.venv so the system Python stays untouched (Debian 12 marks it externally managed).
set -euo pipefail
cd "$(dirname "$0")"

RUN_PKGS=(python3 python3-venv python3-pip qemu-system-x86 fio busybox-static cpio zstd xz-utils kmod binutils procps git linux-perf)
TEST_PKGS=(chromium openssh-server openssh-client ninja-build)
# A QEMU source build (git: specs); kept equal to perfsuite/builds/source.py BUILD_PACKAGES.
BUILD_PKGS=(git gcc make ninja-build pkg-config flex bison bzip2 python3-venv libglib2.0-dev libpixman-1-dev libaio-dev liburing-dev libfdt-dev zlib1g-dev libattr1-dev libcap-ng-dev)

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

venv() {
    if [ ! -x .venv/bin/python ]; then
        echo "bootstrap: creating .venv" >&2
        python3 -m venv .venv
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp=.venv/.perfsuite-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[test]'
        touch "$stamp"
    fi
    # perfsuite is installed editable, so pip compiles none of it: compile it here (only what
    # changed), so that a shell or CI with PYTHONDONTWRITEBYTECODE set still starts the
    # analyzer from .pyc files instead of compiling every module on every run.
    .venv/bin/python -m compileall -q -j 0 perfsuite > /dev/null || true
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
case "$cmd" in
    install)
        apt_install "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"
        venv
        ;;
    build-deps)
        apt_install "${BUILD_PKGS[@]}"
        ;;
    run)
        apt_install "${RUN_PKGS[@]}"
        venv
        exec .venv/bin/perfsuite run "$@"
        ;;
    test)
        apt_install "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"
        venv
        set +e
        # the linter first (seconds): its config is in pyproject.toml
        .venv/bin/ruff check .
        lint=$?
        .venv/bin/python -m pytest "$@"
        rc=$?
        # pytest's 5 means "no tests ran": for us that is a failure, not a pass.
        [ $rc -eq 5 ] && echo "bootstrap: pytest collected no tests" >&2
        [ $lint -ne 0 ] && echo "bootstrap: ruff found problems (see above)" >&2
        [ $rc -eq 0 ] && [ $lint -ne 0 ] && rc=1
        exit $rc
        ;;
    *)
        echo "usage: ./bootstrap.sh run|test|install|build-deps [options]" >&2
        exit 2
        ;;
esac
