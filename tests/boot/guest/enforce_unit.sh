# The boot-time unit (packaging/lockdownctl-enforce.service, installed and enabled by the Debian
# package) in a real boot: give it a policy and a multi-user service that reads /dev/mem ->
# reboot -> the policy was applied before sysinit.target and systemd-modules-load.service, and
# the service's read was refused by it.
# Run without Secure Boot (level none), so a refused /dev/mem read is the enforcer's doing, not
# the kernel's integrity mode. tests/boot/test_enforce_unit.py asserts.
. "$BOOTTEST_LIB"
UNIT=lockdownctl-enforce.service
case $BOOTTEST_BOOT in
1)
    read_devmem devmem_before
    # The Debian package installed the unit (/lib/systemd/system, ExecStart=/usr/bin/lockdownctl)
    # and enabled it (debian/rules: dh_installsystemd --no-start): without a policy it is skipped.
    record preset systemctl is-enabled $UNIT
    record execstart systemctl show -p FragmentPath,ExecStart $UNIT
    install -d -m 0755 /etc/lockdownctl
    install -m 0644 "$BOOTTEST_SRC/examples/integrity.yaml" /etc/lockdownctl/policy.yaml
    # A service of multi-user.target that reads /dev/mem and writes down what happened.
    cat > /usr/local/sbin/devmem-probe <<'PY'
#!/usr/bin/python3
import os
try:
    with open("/dev/mem", "rb", buffering=0) as f:
        f.read(1)
    outcome = "read 1 byte"
except OSError as e:
    outcome = f"{e.strerror} (errno {e.errno})"
os.makedirs("/var/lib/devmem-probe", exist_ok=True)
with open("/var/lib/devmem-probe/result.tmp", "w") as f:
    f.write(f"{outcome}\npid {os.getpid()}\n")
os.rename("/var/lib/devmem-probe/result.tmp", "/var/lib/devmem-probe/result")
PY
    chmod 0755 /usr/local/sbin/devmem-probe
    cat > /etc/systemd/system/devmem-probe.service <<'UNIT'
[Unit]
Description=lockdownctl boot test: read /dev/mem from a multi-user service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/devmem-probe

[Install]
WantedBy=multi-user.target
UNIT
    # --man=no: the image has no man-db (nothing to look Documentation= up with); the host tier's
    # tests/host/test_units.py verifies the shipped unit with its man pages.
    record man sh -c 'command -v man; man -w lockdownctl'
    record verify systemd-analyze verify --man=no /lib/systemd/system/$UNIT /etc/systemd/system/devmem-probe.service
    record enable systemctl enable $UNIT devmem-probe.service
    record probe_boot1 /usr/local/sbin/devmem-probe
    record probe_boot1_result cat /var/lib/devmem-probe/result
    rm -f /var/lib/devmem-probe/result
    sync
    reboot_next ;;
2)
    # The probe is started by multi-user.target, possibly after this step began: wait for it.
    record probe_wait timeout 180 sh -c 'until [ -e /var/lib/devmem-probe/result ]; do sleep 1; done'
    record probe_result cat /var/lib/devmem-probe/result
    record enforce_status lockdownctl enforce status --json
    record events lockdownctl enforce events --json
    record pins ls -l /sys/fs/bpf/lockdownctl
    record bpffs grep ' /sys/fs/bpf ' /proc/self/mountinfo
    if command -v bpftool > /dev/null; then record bpftool bpftool prog show; fi
    record unit systemctl show -p ActiveState,SubState,Result,ExecMainStatus,InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic $UNIT
    record sysinit systemctl show -p ActiveState,ActiveEnterTimestampMonotonic sysinit.target
    record modules_load systemctl show -p ActiveState,ConditionResult,InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic systemd-modules-load.service
    record probe_unit systemctl show -p ActiveState,SubState,Result,ExecMainStatus,InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic devmem-probe.service
    record unit_journal journalctl -b -o short-monotonic --no-pager -u $UNIT
    record order_journal sh -c "journalctl -b -o short-monotonic --no-pager _PID=1 | grep -E 'lockdownctl-enforce|Load Kernel Modules|modules-load|sysinit.target|System Initialization|devmem-probe'"
    record lockdown cat /sys/kernel/security/lockdown ;;
esac
