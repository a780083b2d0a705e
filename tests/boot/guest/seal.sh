# enforce apply --seal -> stop the project's units and kill its processes -> still enforced ->
# reboot -> gone. Run without Secure Boot (level none), so that a refused /dev/mem read is the
# enforcer's doing, not the kernel's integrity mode. tests/boot/test_seal_reboot.py asserts.
. "$BOOTTEST_LIB"
case $BOOTTEST_BOOT in
1)
    read_devmem devmem_before
    record apply lockdownctl enforce apply /root/lockdownctl/examples/integrity.yaml --seal --json
    read_devmem devmem_sealed
    # End everything of the project that runs, as root could ([l]: pkill must not match its own shell).
    record units sh -c "systemctl list-units --all --plain --no-legend 'lockdownctl*' | awk '{print \$1}'"
    record stop sh -c "systemctl stop 'lockdownctl*'; pkill -KILL -f '[l]ockdownctl'; sleep 1; pgrep -a -f '[l]ockdownctl'; true"
    record remove lockdownctl enforce remove --json
    record status_after_kill lockdownctl enforce status --json
    read_devmem devmem_after_kill
    reboot_next ;;
2)
    record enforce_status lockdownctl enforce status --json
    read_devmem devmem_after_reboot ;;
esac
