# Helpers for guest test scripts (tests/boot/guest/*.sh): `. "$BOOTTEST_LIB"` first.
# $BOOTTEST_BOOT is this run's boot number (1, 2, ...), $BOOTTEST_OUT this boot's result
# directory on the share (the host reads it: tests/boot/machine.py), $BOOTTEST_SRC the source tree.

# record NAME CMD...: run CMD; keep its stdout, stderr and exit status as NAME.out, NAME.err,
# NAME.rc in $BOOTTEST_OUT for the host's assertions. Never stops the script.
record() {
    _name=$1; shift
    _t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" > "$BOOTTEST_OUT/$_name.out" 2> "$BOOTTEST_OUT/$_name.err" </dev/null
    _rc=$?
    echo "$_rc" > "$BOOTTEST_OUT/$_name.rc"
    echo "$_t0 $(cut -d' ' -f1 /proc/uptime)" > "$BOOTTEST_OUT/$_name.uptime"
    echo "## $_name (rc=$_rc, uptime $(cat "$BOOTTEST_OUT/$_name.uptime")): $*"
    cat "$BOOTTEST_OUT/$_name.out" "$BOOTTEST_OUT/$_name.err"
    return 0
}

# reboot_next: reboot when this step ends; hook.sh then runs the script again as boot N+1.
reboot_next() { echo reboot > "$BOOTTEST_OUT/next"; }

# read_devmem NAME: try to read one byte of /dev/mem (physical address 0, allowed by
# CONFIG_STRICT_DEVMEM when nothing else refuses); NAME.rc 0 = read, 1 = refused (NAME.err: why).
read_devmem() {
    record "$1" python3 -c '
import sys
try:
    with open("/dev/mem", "rb", buffering=0) as f:
        f.read(1)
except OSError as e:
    sys.exit(f"{e.strerror} (errno {e.errno})")
print("read 1 byte")'
}

# project_processes: every running process of the project (pgrep leaves itself out; call it as a
# function, never inside `sh -c '...lockdownctl...'`, whose own command line would match).
project_processes() { pgrep -a -f lockdownctl; return 0; }

# stop_project: what root can do to end the project: stop its units, kill its processes.
stop_project() {
    systemctl stop 'lockdownctl*'
    pkill -KILL -f lockdownctl
    sleep 1
    return 0
}
