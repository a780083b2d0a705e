# Signed policies in a real Secure Boot boot (#19; docs/signed-policy.md): the firmware-anchored
# trust anchors and the signed policy re-applied at boot. tests/boot/test_signed_boot.py asserts.
# The share offers mok/ (machine.mok_modules): the tier's MOK (enrolled in MokList: the kernel's
# .machine keyring, linked into .secondary_trusted_keys), a key enrolled in the firmware's db (the
# kernel's .platform keyring) and a key nobody enrolled, each as KEY.key/KEY.crt (PEM).
# Secure Boot puts the kernel at integrity, which leaves the confidentiality reasons to the BPF LSM:
# opening /proc/kcore (LOCKDOWN_KCORE) is allowed by examples/integrity.yaml and denied by
# examples/confidentiality.yaml, so whether it opens says which policy the enforcer holds.
#  boot 1: seal integrity.yaml pinned to the MOK (--trust secondary) with --bundle; a bundle by
#          the stranger is refused; v2 (confidentiality, MOK) is accepted and saved as the bundle;
#          the boot unit is set up with a drop-in (the same command) -> reboot
#  boot 2: the unit applied v2 before sysinit.target; v1 and v2 refused (ESTALE), v3 accepted;
#          the unit is pointed at the db key (--trust platform) and a tampered db bundle -> reboot
#  boot 3: the unit failed, the tampered bundle was not applied, the base policy is sealed; the
#          MOK cannot be pinned against .platform; a db-signed bundle is accepted.
. "$BOOTTEST_LIB"
M=/mnt/boottest/mok
E=/etc/lockdownctl
UNIT=lockdownctl-enforce.service
DROPIN=/etc/systemd/system/$UNIT.d/signed.conf

open_kcore() {
    record "$1" python3 -c '
import os, sys
try:
    os.close(os.open("/proc/kcore", os.O_RDONLY))
except OSError as e:
    sys.exit(f"{e.strerror} (errno {e.errno})")
print("opened")'
}
keyrings() {
    record "$1" sh -c 'for k in .secondary_trusted_keys .machine .platform; do
        id=$(awk -v k="$k:" "\$8 == \"keyring\" && \$9 == k {print \$1}" /proc/keys)
        echo "== $k ${id:-absent}"; [ -z "$id" ] || keyctl list $((0x$id)); done'
}
# sign NAME PROFILE SIGNER VERSION: examples/PROFILE.yaml signed by mok/SIGNER.key as /root/NAME.bundle
sign() {
    record "sign_$1" lockdownctl policy sign "$BOOTTEST_SRC/examples/$2.yaml" --key "$M/$3.key" \
        --cert "$M/$3.crt" --version "$4" -o "/root/$1.bundle" --json
}
# boot_unit CERT TRUST: the boot unit runs the signed apply (docs/signed-policy.md, "At boot")
boot_unit() {
    mkdir -p "${DROPIN%/*}"
    cat > "$DROPIN" <<UNIT
[Service]
ExecStart=
ExecStart=/usr/bin/lockdownctl enforce apply $E/policy.yaml --seal --signed-by $1 --trust $2 --bundle $E/policy.bundle
UNIT
}
unit_state() {
    record "$1" systemctl show -p ActiveState,SubState,Result,ExecMainStatus,ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic $UNIT
    record "$1_journal" journalctl -b -o short-monotonic --no-pager -u $UNIT
}
case $BOOTTEST_BOOT in
1)
    keyrings keyrings
    record proc_keys cat /proc/keys
    install -d -m 0755 $E
    install -m 0644 $M/MOK.crt $E/owner.crt
    install -m 0644 $M/DB.crt $E/db.crt
    install -m 0644 "$BOOTTEST_SRC/examples/integrity.yaml" $E/policy.yaml
    sign v1 integrity MOK 1
    sign v2 confidentiality MOK 2
    sign v3 integrity MOK 3
    sign stranger confidentiality STRANGER 2
    sign db4 confidentiality DB 4
    sign db5 confidentiality DB 5
    open_kcore kcore_before
    record apply lockdownctl enforce apply $E/policy.yaml --seal --signed-by $E/owner.crt --trust secondary \
        --bundle $E/policy.bundle --json
    record status_sealed lockdownctl enforce status --json
    open_kcore kcore_sealed
    record update_stranger lockdownctl enforce update /root/stranger.bundle --json
    open_kcore kcore_after_stranger
    record update_v2 lockdownctl enforce update /root/v2.bundle --json
    open_kcore kcore_v2
    record saved_v2 cmp /root/v2.bundle $E/policy.bundle
    record events lockdownctl enforce events --json
    record status_v2 lockdownctl enforce status --json
    boot_unit $E/owner.crt secondary
    systemctl daemon-reload
    record verify systemd-analyze verify --man=no /lib/systemd/system/$UNIT
    record execstart systemctl show -p ExecStart,DropInPaths $UNIT
    record enabled systemctl is-enabled $UNIT
    sync
    reboot_next ;;
2)
    unit_state unit
    record sysinit systemctl show -p ActiveEnterTimestampMonotonic sysinit.target
    record status_boot lockdownctl enforce status --json
    record events_boot lockdownctl enforce events --json
    open_kcore kcore_boot
    record update_v1 lockdownctl enforce update /root/v1.bundle --json
    record update_v2 lockdownctl enforce update /root/v2.bundle --json
    open_kcore kcore_after_rollback
    record update_v3 lockdownctl enforce update /root/v3.bundle --json
    open_kcore kcore_v3
    record saved_v3 cmp /root/v3.bundle $E/policy.bundle
    record events lockdownctl enforce events --json
    # Root, while sealed, puts a bundle changed after signing where the next boot reads it.
    python3 -c '
import sys
raw = bytearray(open("/root/db4.bundle", "rb").read())
raw[200] ^= 1  # inside the signed payload
open("/etc/lockdownctl/policy.bundle", "wb").write(raw)'
    record verify_tampered lockdownctl policy verify $E/policy.bundle --cert $E/db.crt --json
    boot_unit $E/db.crt platform
    sync
    reboot_next ;;
3)
    unit_state unit
    record status_boot lockdownctl enforce status --json
    record events_boot lockdownctl enforce events --json
    open_kcore kcore_boot
    keyrings keyrings
    # The MOK is in .machine, not .platform: pinning it there could never verify (nothing loads).
    record pin_mok_platform lockdownctl enforce apply $E/policy.yaml --seal --signed-by $E/owner.crt \
        --trust platform --json
    record update_db5 lockdownctl enforce update /root/db5.bundle --json
    open_kcore kcore_db5
    record update_mok lockdownctl enforce update /root/v3.bundle --json
    record events lockdownctl enforce events --json
    record status_db5 lockdownctl enforce status --json ;;
esac
