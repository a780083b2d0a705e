# The install step of a tier session (tests/boot/machine.py: Tier.installed_layer): install the
# checked-out lockdownctl the way a user does, from a copy of the source tree with
# scripts/install.sh. The guest has no network: pip takes every package from the wheelhouse on the
# share (PyYAML, zstandard, pefile, and setuptools for the build), through pip's own environment
# variables; install.sh itself is not changed.
. "$BOOTTEST_LIB"
record copy cp -a "$BOOTTEST_SRC" /root/lockdownctl
export PIP_NO_INDEX=1 PIP_FIND_LINKS=/mnt/boottest/wheels
record install /root/lockdownctl/scripts/install.sh
record which sh -c 'command -v lockdownctl'
record version lockdownctl --version
