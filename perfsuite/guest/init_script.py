"""The guest's /init (busybox sh), kept as a Python string so no package data is needed.

Build-time facts (module order, how to start fio) come from /etc/perfsuite.conf in the
image; per-boot facts come from W/plan.sh, written by `write_plan` beside plan.json
(busybox has no JSON parser, so the host hands the guest shell-quoted values).

Every path out of this script ends in `finish`, which powers off; if even that fails,
init exits, the kernel panics, and `panic=-1` + QEMU's `-no-reboot` end the process.
The host therefore never waits on a guest that died quietly.
"""

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /w /host /usr/bin /sbin
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
W=/w
W_MOUNTED=0

# Console lines carry the guest's uptime: where a slow boot spends its time shows in the log.
# (`read`, a shell builtin: no fork, which costs ~10 ms each under TCG)
say() {
    up=?
    [ -r /proc/uptime ] && read up _ < /proc/uptime
    echo "perfsuite-guest[$up]: $*"
}

finish() {
    sync
    if [ "${POWEROFF:-1}" = 0 ]; then
        say "poweroff disabled by the plan; sleeping"
        while true; do sleep 3600; done
    fi
    poweroff -f
    sleep 2
    exit 1
}

die() {
    say "ERROR: $*"
    if [ "$W_MOUNTED" = 1 ]; then
        echo "$*" > "$W/guest-error.txt.part" && mv "$W/guest-error.txt.part" "$W/guest-error.txt"
    fi
    POWEROFF=1
    finish
}

# wait_for PATH SECONDS: poll until PATH exists (devices appear asynchronously after insmod)
wait_for() {
    i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ "$i" -gt $(($2 * 50)) ] && return 1
        usleep 20000
    done
    return 0
}

# The guest-info helpers set variables instead of printing: $(...) would fork, and every
# fork of busybox costs ~10 ms under TCG.

# count_cpus LIST: n = number of CPUs in a list like 0-3,5
count_cpus() {
    n=0
    old_ifs=$IFS
    IFS=,
    for r in $1; do
        case "$r" in
            *-*) n=$((n + ${r#*-} - ${r%-*} + 1)) ;;
            ?*) n=$((n + 1)) ;;
        esac
    done
    IFS=$old_ifs
}

# count_entries DIR: n = number of entries in DIR (0 if it does not exist)
count_entries() {
    n=0
    for e in "$1"/*; do
        [ -e "$e" ] && n=$((n + 1))
    done
}

# put FILE CONTENT: write atomically into the shared work dir (for JSON the host parses)
put() {
    printf '%s\n' "$2" > "$W/$1.part" && mv "$W/$1.part" "$W/$1"
}

# mark FILE CONTENT: one short write, no rename: for markers and exit statuses, which the
# host reads as "absent or complete" (saves a fork and 9p round trips per repetition)
mark() {
    printf '%s\n' "$2" > "$W/$1"
}

# window_start N PID: the measured window of repetition N opens once the disk has done
# I/O (fio's jobs run: its start-up is over) and the ramp has passed; the host samples its
# threads from N.window-start to N.window-end (docs/CONTRACTS.md section 5). If fio exits
# first, no window opens: the host then closes on N.status.
window_start() {
    read r0 _ _ _ w0 _ < "/sys/block/$DEV/stat"
    while kill -0 "$2" 2>/dev/null; do
        read r _ _ _ w _ < "/sys/block/$DEV/stat"
        if [ "$r" != "$r0" ] || [ "$w" != "$w0" ]; then
            [ "${RAMP:-0}" != 0 ] && sleep "$RAMP"
            kill -0 "$2" 2>/dev/null && mark "$1.window-start" "$RAMP"
            return 0
        fi
        usleep 20000
    done
    return 1
}

mount -t proc proc /proc || die "cannot mount /proc"
mount -t sysfs sysfs /sys || die "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || die "cannot mount /dev"
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm

say "init started"
. /etc/perfsuite.conf || die "cannot read /etc/perfsuite.conf"
for m in $MODULES; do
    insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done

say "modules loaded"
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 perfsuite "$W" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -gt 250 ] && die "cannot mount the 9p work dir (mount tag perfsuite)"
    usleep 20000
done
W_MOUNTED=1
# a work dir used before must not announce this boot as finished or failed
for f in "$W/done" "$W/guest-error.txt" "$W/guest-info.json"; do
    [ -e "$f" ] && rm -f "$f"
done
say "work dir mounted"

if [ "$FIO_MODE" = hostroot ]; then
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose perfsuite-host /host \
        || die "cannot mount the host root (mount tag perfsuite-host)"
fi

[ -f "$W/plan.sh" ] || die "no plan.sh in the work dir (write it with perfsuite.guest.write_plan)"
. "$W/plan.sh" || die "cannot read plan.sh"

DEV=${DEVICE#/dev/}
wait_for "/sys/block/$DEV" 10 || die "no block device $DEVICE (is the virtio-blk disk attached?)"
say "$DEVICE present"
if [ -n "$SCHEDULER" ]; then
    echo "$SCHEDULER" > "/sys/block/$DEV/queue/scheduler" || say "cannot set scheduler $SCHEDULER"
fi
read line < "/sys/block/$DEV/queue/scheduler"
case "$line" in
    *\[*\]*) sched=${line#*\[}; sched=${sched%%\]*} ;;   # "[none] mq-deadline" -> none
    *) sched=$line ;;
esac
count_entries "/sys/block/$DEV/mq"; queues=$n
read online < /sys/devices/system/cpu/online
count_cpus "$online"; cpus=$n
read kernel < /proc/sys/kernel/osrelease
# The image records the version of the fio it carries (or points at): starting fio just to
# ask costs ~1 s under TCG (it links 60 libraries), so only ask when the image does not know.
fio_version=$FIO_VERSION
if [ -z "$fio_version" ]; then
    fio_version=$(run_fio --version 2>&1) || die "fio does not run in the guest: $fio_version"
fi
put guest-info.json "{\"cpus_online\": $cpus, \"cpus_online_list\": \"$online\", \"queues\": $queues, \"kernel\": \"$kernel\", \"fio_version\": \"$fio_version\", \"scheduler\": \"$sched\", \"device\": \"$DEVICE\", \"fio_mode\": \"$FIO_MODE\"}"

say "guest-info written: cpus $cpus, queues $queues, scheduler $sched"
export PERFSUITE_DEVICE="$DEVICE"
# ---- BEGIN mode branch: only when the plan names a MODE_SCRIPT (perfsuite migrate) ----
# The mode script (host-written, in W) replaces the repetition loop below; it may use every
# helper above. It is copied off the share first: a migrating guest unmounts W while it runs.
if [ -n "${MODE_SCRIPT:-}" ]; then
    cp "$W/$MODE_SCRIPT" /tmp/mode.sh || die "cannot copy the mode script $MODE_SCRIPT"
    . /tmp/mode.sh
    finish
fi
# ---- END mode branch ----
cd /tmp
for N in $REPETITIONS; do
    for f in "$W/$N.json" "$W/$N.json.part" "$W/$N.status" "$W/$N.window-start" "$W/$N.window-end"; do
        [ -e "$f" ] && rm -f "$f"   # (a test is a builtin, rm is a fork)
    done
    say "repetition $N"
    # "$@" holds the plan's fio_args (plan.sh ends with `set -- ...`)
    run_fio --output-format=json --eta=never --output="$W/$N.json.part" "$@" "$W/$FIO_JOB" &
    fio_pid=$!
    window_start "$N" "$fio_pid"
    wait "$fio_pid"
    rc=$?
    # before N.json appears: the host closes the window before it records the repetition;
    # with WINDOW_ACK the host removes the marker once it has sampled, and the guest waits
    # for that (at most 2 s): otherwise the last repetition's power-off can beat the host's
    # snapshot and take the vCPU threads with it
    mark "$N.window-end" "$rc"
    if [ "${WINDOW_ACK:-0}" = 1 ]; then
        i=0
        while [ -e "$W/$N.window-end" ] && [ "$i" -lt 100 ]; do
            i=$((i + 1))
            usleep 20000
        done
    fi
    say "repetition $N: fio exited with status $rc"
    [ "$rc" = 0 ] && mv "$W/$N.json.part" "$W/$N.json"
    mark "$N.status" "$rc"
done
mark done "ok"
say "done"
finish
"""
