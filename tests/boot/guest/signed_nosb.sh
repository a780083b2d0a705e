# --trust platform without Secure Boot (#19): the same variable store (the tier's MOK in MokList,
# a key in db), OVMF without Secure Boot (Setup Mode: no PK). What the kernel's keyrings hold,
# and what `enforce apply --seal --signed-by DB.crt --trust platform` makes of it.
# tests/boot/test_signed_boot.py::test_trust_platform_without_secure_boot asserts.
. "$BOOTTEST_LIB"
M=/mnt/boottest/mok
record mokutil mokutil --sb-state
record sb_state lockdownctl status --json
record keyrings sh -c 'for k in .secondary_trusted_keys .machine .platform; do
    id=$(awk -v k="$k:" "\$8 == \"keyring\" && \$9 == k {print \$1}" /proc/keys)
    echo "== $k ${id:-absent}"; [ -z "$id" ] || keyctl list $((0x$id)); done'
record proc_keys cat /proc/keys
record dmesg_certs sh -c 'dmesg | grep -E "X.509|integrity:|platform|MODSIGN|machine" ; true'
record sign_db1 lockdownctl policy sign "$BOOTTEST_SRC/examples/confidentiality.yaml" --key $M/DB.key \
    --cert $M/DB.crt --version 1 -o /root/db1.bundle --json
record kcore_before python3 -c 'import os; os.close(os.open("/proc/kcore", os.O_RDONLY)); print("opened")'
# The MOK is not in the kernel's keyrings without Secure Boot: pinning it is refused, nothing loads.
record pin_mok_secondary lockdownctl enforce apply "$BOOTTEST_SRC/examples/integrity.yaml" --seal \
    --signed-by $M/MOK.crt --trust secondary --json
record apply lockdownctl enforce apply "$BOOTTEST_SRC/examples/integrity.yaml" --seal --signed-by $M/DB.crt \
    --trust platform --json
record status lockdownctl enforce status --json
record update_db1 lockdownctl enforce update /root/db1.bundle --json
record kcore_after python3 -c 'import os; os.close(os.open("/proc/kcore", os.O_RDONLY)); print("opened")'
record events lockdownctl enforce events --json
