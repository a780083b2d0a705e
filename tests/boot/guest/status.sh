# One boot, with or without Secure Boot: what the kernel, the firmware and mokutil say, and what
# lockdownctl (the Debian package) says about it. tests/boot/test_status.py compares.
# With a MOK enrolled (the share offers mok/: machine.mok_modules), four spare in-tree modules go
# to /lib/modules/$(uname -r)/updates/ as a DKMS build would put them: dummy signed with the MOK
# key, nlmon with a key nobody enrolled, veth with a key in the firmware's db, ifb unsigned; each
# is loaded, then `check` judges them.
. "$BOOTTEST_LIB"
record securityfs cat /sys/kernel/security/lockdown
record mokutil mokutil --sb-state
record status lockdownctl status
record status_json lockdownctl status --json
record expect_integrity lockdownctl status --expect integrity --json
if [ -d /mnt/boottest/mok ]; then
    M=/mnt/boottest/mok
    updates=/lib/modules/$(uname -r)/updates
    # Where Debian's Secure Boot documentation keeps the MOK certificate (update-secureboot-policy).
    install -D -m 0644 $M/MOK.der /var/lib/shim-signed/mok/MOK.der
    install -d "$updates"
    cp $M/dummy.ko $M/nlmon.ko $M/veth.ko $M/ifb.ko "$updates/"
    depmod -a
    record mok_test_key mokutil --test-key /var/lib/shim-signed/mok/MOK.der
    record mok_list mokutil --list-enrolled
    record proc_keys cat /proc/keys
    # Each system keyring's members, by the kernel's own listing (keyctl list on its id).
    record keyrings sh -c 'for k in .builtin_trusted_keys .secondary_trusted_keys .machine .platform; do
        id=$(awk -v k="$k:" "\$8 == \"keyring\" && \$9 == k {print \$1}" /proc/keys)
        echo "== $k ${id:-absent}"; [ -z "$id" ] || keyctl list $((0x$id)); done'
    record modinfo sh -c 'for m in dummy nlmon veth ifb; do echo "$m $(modinfo -n $m) signer=$(modinfo -F signer $m)"; done'
    record load_mok modprobe dummy
    record load_stranger modprobe nlmon
    record load_db modprobe veth
    record load_unsigned modprobe ifb
    record loaded sh -c 'grep -E "^(dummy|nlmon|veth|ifb) " /proc/modules; true'
    record sig_enforce cat /sys/module/module/parameters/sig_enforce
    record nfd lockdownctl status --format nfd
    record tainted cat /proc/sys/kernel/tainted
fi
record check lockdownctl check --json
record enable_dry lockdownctl enable confidentiality --dry-run --json
