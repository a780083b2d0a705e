# The install step of a tier session (tests/boot/machine.py: ensure_installed): install the
# checked-out lockdownctl the way a user does, from an unpacked copy of the source tree (src.tar on
# the share, made from the checkout's files) with scripts/install.sh. The guest has no network:
# pip takes every package from the wheelhouse on the share (PyYAML, zstandard, pefile, and
# setuptools for the build), through pip's own environment variables; install.sh is unchanged.
. "$BOOTTEST_LIB"
mkdir -p /root/lockdownctl
record unpack tar -xf /mnt/boottest/src.tar -C /root/lockdownctl
export PIP_NO_INDEX=1 PIP_FIND_LINKS=/mnt/boottest/wheels
record install /root/lockdownctl/scripts/install.sh
record which sh -c 'command -v lockdownctl'
record version lockdownctl --version
