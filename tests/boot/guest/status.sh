# One boot, with or without Secure Boot: what the kernel, the firmware and mokutil say, and what
# lockdownctl (installed by scripts/install.sh) says about it. tests/boot/test_status.py compares.
. "$BOOTTEST_LIB"
record securityfs cat /sys/kernel/security/lockdown
record mokutil mokutil --sb-state
record status lockdownctl status
record status_json lockdownctl status --json
record expect_integrity lockdownctl status --expect integrity --json
record check lockdownctl check --json
record enable_dry lockdownctl enable confidentiality --dry-run --json
