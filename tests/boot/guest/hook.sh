#!/bin/sh
# The guest driver of tests/boot, started at every boot by the image's boottest.service (through
# /usr/local/sbin/boottest-hook, which mounted this share on /mnt/boottest and the source tree on
# /mnt/src). It runs this share's test.sh once per boot and saves the boot's own record (the
# kernel log, the journal, securityfs, /proc/cmdline) in out/bootN/ on the share.
#
# Which step comes next is a marker on the guest's disk (/var/lib/boottest/<run id>): it counts
# this run's boots, so it survives the reboots test.sh asks for and a fresh overlay starts at 1.
# test.sh asks for a reboot by writing "reboot" into $BOOTTEST_OUT/next; otherwise the guest
# powers off ("stay" leaves it running, for debugging).
B=/mnt/boottest
run_id=$(cat "$B/run-id")
mkdir -p /var/lib/boottest
n=$(( $(cat "/var/lib/boottest/$run_id" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "/var/lib/boottest/$run_id"
sync
out=$B/out/boot$n
mkdir -p "$out"
echo "@@BOOTTEST BEGIN boot=$n uptime=$(cut -d' ' -f1 /proc/uptime)@@"
cut -d' ' -f1 /proc/uptime > "$out/uptime-begin"
BOOTTEST_BOOT=$n BOOTTEST_OUT=$out BOOTTEST_SRC=/mnt/src BOOTTEST_LIB=$B/lib.sh \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    sh -c 'cd /root && exec sh /mnt/boottest/test.sh' > "$out/test.log" 2>&1 </dev/null
rc=$?
echo "$rc" > "$out/rc"
cut -d' ' -f1 /proc/uptime > "$out/uptime-end"
cat "$out/test.log"
# The kernel's and systemd's own record of this boot, read after the test.
cat /sys/kernel/security/lockdown > "$out/lockdown" 2>&1
cat /proc/cmdline > "$out/cmdline"
dmesg > "$out/dmesg.txt" 2>&1
journalctl -b --no-pager -o short-monotonic > "$out/journal.txt" 2>&1
next=$(cat "$out/next" 2>/dev/null || echo poweroff)
echo "@@BOOTTEST END boot=$n rc=$rc next=$next uptime=$(cut -d' ' -f1 /proc/uptime)@@"
echo done > "$out/complete"
sync
case $next in
    reboot) systemctl --no-block reboot ;;
    stay) ;;
    *) systemctl --no-block poweroff ;;
esac
