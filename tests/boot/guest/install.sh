# The install step of a tier session (tests/boot/machine.py: ensure_installed): install the
# checked-out lockdownctl the way a Debian user does, `apt-get install ./lockdownctl_*.deb`, from
# the package the host built from the checkout (machine.ensure_deb: dpkg-buildpackage). The guest
# has no network: the package's dependencies (debian/control Depends) are in the image already
# (image/packages), so apt resolves them from what is installed and dpkg runs the maintainer
# scripts (systemd units enabled, man pages, completions) as on a user's machine.
. "$BOOTTEST_LIB"
deb=$(ls /mnt/boottest/lockdownctl_*.deb)
# apt reads a local package as its _apt user; 9p (security_model=none) hides it from that user.
cp "$deb" /tmp/
record install env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "/tmp/${deb##*/}"
record dpkg dpkg-query -W -f '${Status} ${Version}\n' lockdownctl
record which sh -c 'command -v lockdownctl'
record version lockdownctl --version
record enabled systemctl is-enabled lockdownctl-enforce.service lockdownctl-metrics.timer
record status_nobody runuser -u nobody -- lockdownctl status --json
