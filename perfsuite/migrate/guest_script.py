"""The guest's side of a migration repetition: a busybox-sh fragment the init script's mode
branch sources (plan `mode_script`), written into the work dir by the host.

Why the share is left: QEMU refuses to migrate while a virtio-9p export is mounted in the
guest ("Migration is disabled when VirtFS export path ... is mounted in the guest"), so the
guest copies what it needs into its own RAM (/tmp), unmounts W, runs the three fio phases
with every output in /tmp (RAM migrates with the guest), mounts W again on whichever QEMU
it runs on by then, and copies the results out: W/rep-N/{fill,write,verify}.{json,status,err}
and the write phase's IOPS logs. The console lines `perfsuite-guest[..]: migrate: ...` are
the only signals the host gets while W is unmounted.

Uses the init script's helpers: say, die, mark, run_fio, $W, $REPETITIONS.
"""

# the console line the host waits for before it opens the migration window
MARK_WRITE = "migrate: {rep} write start"
SCRIPT_NAME = "migrate.sh"
PHASES = ("fill", "write", "verify")

GUEST_SCRIPT = r"""# perfsuite migrate: sourced by /init's mode branch (perfsuite/migrate/guest_script.py)
L=/tmp/migrate
mkdir -p "$L"
for p in fill write verify; do
    cp "$W/$p.fio" "$L/$p.fio" || die "no $p.fio in the work dir"
done
cd /
umount "$W" || die "cannot unmount the work dir before the migration window"
W_MOUNTED=0
say "migrate: work dir unmounted"
for N in $REPETITIONS; do
    mkdir -p "$L/$N"
    cd "$L/$N"
    for p in fill write verify; do
        say "migrate: $N $p start"
        run_fio --output-format=json --eta=never --output="$L/$N/$p.json" "$L/$p.fio" \
            > "$L/$N/$p.err" 2>&1
        rc=$?
        echo "$rc" > "$L/$N/$p.status"
        say "migrate: $N $p end status $rc"
    done
done
cd /
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 perfsuite "$W" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -gt 250 ] && die "cannot mount the 9p work dir again after the migrations"
    usleep 20000
done
W_MOUNTED=1
say "migrate: work dir mounted again"
for N in $REPETITIONS; do
    mkdir -p "$W/rep-$N"
    cp "$L/$N"/* "$W/rep-$N/" || die "cannot copy the results of repetition $N"
done
mark done "ok"
say "done"
"""
