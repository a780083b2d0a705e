# enable -> update-grub -> reboot -> the kernel's level -> disable -> update-grub -> reboot.
# Boot 1 adds a site drop-in of its own first (other grub.d files must survive enable/disable).
# tests/boot/test_enable_reboot.py reads each boot's securityfs, /proc/cmdline and kernel log.
. "$BOOTTEST_LIB"
case $BOOTTEST_BOOT in
1)
    mkdir -p /etc/default/grub.d
    echo 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX boottest.site=1"' > /etc/default/grub.d/50-site.cfg
    record site_grub update-grub
    record status_json lockdownctl status --json
    record enable lockdownctl enable confidentiality --force --json
    record grub_cfg grep -E '^[[:space:]]*linux[[:space:]]' /boot/grub/grub.cfg
    reboot_next ;;
2)
    record status_json lockdownctl status --json
    record expect lockdownctl status --expect confidentiality --json
    record disable lockdownctl disable --json
    record grub_cfg grep -E '^[[:space:]]*linux[[:space:]]' /boot/grub/grub.cfg
    reboot_next ;;
3)
    record status_json lockdownctl status --json
    record expect_confidentiality lockdownctl status --expect confidentiality --json ;;
esac
