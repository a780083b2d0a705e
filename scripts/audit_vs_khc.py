#!/usr/bin/env python3
"""Print docs/audit-vs-khc.md's tables: kernel-hardening-checker's lockdown
verdicts next to lockdownctl audit's, on the same configs and command lines.

Usage: python3 scripts/audit_vs_khc.py KHC_CHECKOUT > /tmp/table.md
(KHC_CHECKOUT: a checkout of a13xp0p0v/kernel-hardening-checker; its
bin/kernel-hardening-checker is run with -m json.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BOOT = "BOOT_IMAGE=/boot/vmlinuz-{rel} root=UUID=3b3e0f7e-5f0c-4c1e-9d55-0d2b2f4f6a11 ro quiet"
CASES = {
    "Debian 6.1": ("kconfig/config-6.1.0-56-amd64", BOOT.format(rel="6.1.0-56-amd64"), None),
    "Debian 6.12": ("kconfig/config-6.12.117+deb12-amd64", BOOT.format(rel="6.12.117+deb12-amd64"), None),
    "host 6.18": ("kconfig/config-6.18.44-fc-v657", (DATA / "audit/cmdline-host-6.18.txt").read_text(),
                  "audit/sysctl-host-6.18.txt"),
}
# KHC's lockdown-related checks (decision 'lockdown', lines commented "refers to
# LOCKDOWN", the direct lockdown options and the lockdown sysctls) -> our check.
MAP = {
    "CONFIG_SECURITY_LOCKDOWN_LSM": "lockdown_lsm_built", "CONFIG_LSM": "config_lsm_lists_lockdown",
    "CONFIG_SECURITY_LOCKDOWN_LSM_EARLY": "lockdown_lsm_early",
    "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY": "lockdown_forced_by_kconfig",
    "lockdown": "lockdown_level", "CONFIG_MODULE_SIG": "module_sig", "CONFIG_MODULE_SIG_FORCE": "module_sig_force",
    "module.sig_enforce": "module_sig_force", "CONFIG_DEVMEM": "devmem", "CONFIG_STRICT_DEVMEM": "strict_devmem",
    "CONFIG_IO_STRICT_DEVMEM": "io_strict_devmem", "CONFIG_DEVKMEM": "devkmem", "CONFIG_DEVPORT": "devport",
    "CONFIG_KEXEC": "kexec", "CONFIG_KEXEC_FILE": "kexec_file", "CONFIG_HIBERNATION": "hibernation",
    "CONFIG_PROC_KCORE": "proc_kcore", "CONFIG_X86_MSR": "x86_msr", "CONFIG_X86_IOPL_IOPERM": "x86_iopl_ioperm",
    "CONFIG_ACPI_CUSTOM_METHOD": "acpi_custom_method", "CONFIG_ACPI_TABLE_UPGRADE": "acpi_table_upgrade",
    "CONFIG_EFI_TEST": "efi_test", "CONFIG_MMIOTRACE_TEST": "mmiotrace", "CONFIG_MMIOTRACE": "mmiotrace",
    "CONFIG_DEBUG_FS": "debugfs", "debugfs": "debugfs", "CONFIG_KPROBES": "kprobes",
    "CONFIG_BPF_SYSCALL": "bpf_read_kernel", "CONFIG_FTRACE": "tracefs", "CONFIG_GENERIC_TRACER": "tracefs",
    "kernel.kexec_load_disabled": "sysctl_kexec_load_disabled", "kernel.modules_disabled": "sysctl_modules_disabled",
    "kernel.unprivileged_bpf_disabled": "sysctl_unprivileged_bpf_disabled",
    "kernel.perf_event_paranoid": "sysctl_perf_event_paranoid", "kernel.kptr_restrict": "sysctl_kptr_restrict",
    "kernel.dmesg_restrict": "sysctl_dmesg_restrict", "kernel.sysrq": "no_sysrq_lift",
}


def khc(checkout: Path, config: Path, cmdline: Path, sysctl: Path | None) -> dict[str, str]:
    cmd = [sys.executable, str(checkout / "bin" / "kernel-hardening-checker"), "-c", str(config), "-l", str(cmdline),
           "-m", "json"]
    if sysctl:
        cmd += ["-s", str(sysctl)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {r["option_name"]: r["check_result"] for r in json.loads(out) if r["option_name"] in MAP}


def ours(config: Path, cmdline: Path, sysctl: Path | None, target: str) -> dict[str, str]:
    cmd = [sys.executable, "-m", "lockdownctl", "audit", "--json", "--target", target, "--config", str(config),
           "--cmdline", str(cmdline)] + (["--sysctl", str(sysctl)] if sysctl else [])
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False).stdout
    return {c["id"]: c["verdict"] for c in json.loads(out)["data"]["checks"]}


def main() -> None:
    checkout = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, cmdline, sysctl) in CASES.items():
            line = Path(tmp) / "cmdline"
            line.write_text(cmdline)
            cfg, sys_path = DATA / config, DATA / sysctl if sysctl else None
            theirs = khc(checkout, cfg, line, sys_path)
            conf, integ = ours(cfg, line, sys_path, "confidentiality"), ours(cfg, line, sys_path, "integrity")
            print(f"\n### {name}\n")
            print("| KHC option | KHC verdict | lockdownctl check | --target confidentiality | --target integrity |")
            print("|---|---|---|---|---|")
            for option, verdict in theirs.items():
                check = MAP[option]
                print(f"| `{option}` | {verdict} | `{check}` | {conf.get(check, '—')} | {integ.get(check, '—')} |")


if __name__ == "__main__":
    main()
