# enforce apply --seal -> stop the project's units and kill its processes -> still enforced ->
# reboot -> gone. Run without Secure Boot (level none), so that a refused /dev/mem read is the
# enforcer's doing, not the kernel's integrity mode. tests/boot/test_seal_reboot.py asserts.
. "$BOOTTEST_LIB"
case $BOOTTEST_BOOT in
1)
    read_devmem devmem_before
    record apply lockdownctl enforce apply "$BOOTTEST_SRC/examples/integrity.yaml" --seal --json
    read_devmem devmem_sealed
    # Project processes that hold the enforcer's maps: a unit following its events and a watcher.
    record events_unit systemd-run --unit=lockdownctl-events lockdownctl enforce events --follow
    setsid lockdownctl watch --follow > /dev/null 2>&1 < /dev/null &
    sleep 5
    record running project_processes
    record units systemctl list-units --plain --no-legend 'lockdownctl*'
    record stop stop_project
    record left project_processes
    record remove lockdownctl enforce remove --json
    read_devmem devmem_after_kill
    record status_after_kill lockdownctl enforce status --json
    reboot_next ;;
2)
    record enforce_status lockdownctl enforce status --json
    read_devmem devmem_after_reboot ;;
esac
