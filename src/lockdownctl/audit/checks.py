"""The audit catalogue: which settings give, imitate or undo lockdown.

Data, not code: each entry names the lockdown reason(s) it stands for (ids
of lockdownctl.reasons), the kernel function or file that gives the setting
its effect, and what users lose when they set it. "Equivalent" checks pass
when the enforced lockdown level already covers their reason (the kernel
refuses the operation anyway), or when the build leaves the interface out.

The runtime ``level`` and ``lsm`` facts are the running kernel's (securityfs)
in a live audit, and what the configuration and command line imply in an
offline one (see inputs.py), so "CONFIG_DEVMEM is not set, or lockdown at
integrity or above" reads the same in both.
"""

from __future__ import annotations

from ..kfacts import FORCE_NONE, FORCE_OPTIONS, SECURE_BOOT_OPTIONS
from ..kfacts import UPSTREAM_FORCE as FORCE
from ..levels import level_rank
from ..reasons import TABLE
from .engine import ALL_REASONS, Check, Cond, Node, all_of, any_of

_I = "integrity"
_C = "confidentiality"
__all__ = ["FORCE", "FORCE_NONE", "SECURE_BOOT_OPTIONS", "checks"]


def kconfig(name: str, expected: str) -> Cond:
    return Cond("kconfig", name, expected)


def unset(name: str) -> Cond:
    return Cond("kconfig", name, "is not set")


def gate(reason_id: str) -> Node:
    """The reason's compile-time gate (reasons.Reason.config) is compiled out: the kernel has no such
    operation, so nothing can do what lockdown would refuse."""
    options = next(r.config for r in TABLE if r.id == reason_id)
    conds: list[Node] = [unset(o) for o in options]
    if not conds:
        raise ValueError(f"reason {reason_id} has no compile-time gate")
    return conds[0] if len(conds) == 1 else all_of(*conds)


def level(at_least: str) -> Cond:
    return Cond("runtime", "level", f"at least {at_least}")


def _forced_at_least(target: str) -> Node:
    """Any option that forces ``target`` or a higher level on every boot (kfacts.FORCE_OPTIONS)."""
    conds: list[Node] = [kconfig(opt, "y") for opt, lvl in FORCE_OPTIONS if level_rank(lvl) >= level_rank(target)]
    return conds[0] if len(conds) == 1 else any_of(*conds)


def _force_fix(target: str) -> tuple[str, ...]:
    """A Kconfig choice: setting one member means unsetting the others."""
    lines = ["CONFIG_SECURITY_LOCKDOWN_LSM=y", "CONFIG_SECURITY_LOCKDOWN_LSM_EARLY=y", f"{FORCE[target]}=y",
             f"# {FORCE_NONE} is not set"]
    lines += [f"# {opt} is not set" for lvl, opt in FORCE.items() if lvl != target]
    return tuple(lines)


def _lockdown(target: str) -> list[Check]:
    return [
        Check("lockdown_lsm_built", "the lockdown LSM is built in", kconfig("SECURITY_LOCKDOWN_LSM", "y"),
              (ALL_REASONS,), group="lockdown",
              effect="security/lockdown/lockdown.c (lockdown_lsm_init(), hook locked_down)",
              may_break="nothing by itself: the level stays none until forced, set on the command line or "
              "written to securityfs"),
        Check("lockdown_lsm_early", "the lockdown LSM starts before setup_arch()",
              kconfig("SECURITY_LOCKDOWN_LSM_EARLY", "y"), (ALL_REASONS,), group="lockdown",
              effect="security/security.c early_security_init() (DEFINE_EARLY_LSM in "
              "security/lockdown/lockdown.c): a level set on the command line or forced by Kconfig "
              "already applies to early boot (ACPI table upgrade from the initrd) and lsm= cannot drop it"),
        Check("config_lsm_lists_lockdown", "CONFIG_LSM initialises lockdown",
              any_of(kconfig("LSM", "contains lockdown"), kconfig("SECURITY_LOCKDOWN_LSM_EARLY", "y")),
              (ALL_REASONS,), group="lockdown",
              effect="security/security.c ordered_lsm_init(): LSMs start in CONFIG_LSM order unless lsm= "
              "replaces it; an LSM in neither list nor early is never initialised"),
        Check("lsm_lists_lockdown", "the lockdown LSM is active (LSM list)",
              Cond("runtime", "lsm", "contains lockdown"), (ALL_REASONS,), group="lockdown",
              effect="/sys/kernel/security/lsm (security/security.c): the level file exists even when the "
              "hook is not registered, so only the LSM list proves enforcement"),
        Check("lockdown_level", f"lockdown is enforced at {target} or above", level(target), (ALL_REASONS,),
              level=target, group="lockdown", fix=_force_fix(target),
              effect="security/lockdown/lockdown.c lock_kernel_down(): raised by "
              "CONFIG_LOCK_DOWN_KERNEL_FORCE_* (lockdown_lsm_init()), lockdown= (lockdown_param()), the "
              "distro Secure Boot patch (setup_arch()) or a write to /sys/kernel/security/lockdown",
              may_break="every operation of every reason up to the level: see lockdownctl explain"),
        Check("lockdown_forced_by_kconfig", f"Kconfig forces {target} (no boot-menu edit can lower it)",
              _forced_at_least(target),
              (ALL_REASONS,), level=target, group="lockdown", advisory=True, fix=_force_fix(target),
              effect="security/lockdown/lockdown.c lockdown_lsm_init() (choice "
              "CONFIG_LOCK_DOWN_KERNEL_FORCE_NONE/INTEGRITY/CONFIDENTIALITY)",
              may_break="the level can no longer be lowered for debugging without another kernel"),
        Check("secure_boot_locks_down", "Secure Boot implies integrity (distribution patch)",
              any_of(*(kconfig(opt, "y") for opt in SECURE_BOOT_OPTIONS), unset("EFI")), (ALL_REASONS,),
              group="lockdown", advisory=True,
              effect="distribution patch 'efi: Lock down the kernel if booted in secure boot mode': "
              "setup_arch() (arch/x86/kernel/setup.c) locks at integrity when efi_enabled(EFI_SECURE_BOOT); "
              "not in mainline",
              may_break="booting with Secure Boot on then breaks everything integrity breaks"),
        Check("no_sysrq_lift", "lockdown cannot be lifted with SysRq",
              any_of(unset("ALLOW_LOCKDOWN_LIFT_BY_SYSRQ"), Cond("sysctl", "kernel.sysrq", "== 0")),
              (ALL_REASONS,), group="lockdown",
              effect="distribution patch 'Add a SysRq option to lift kernel lockdown' (old Fedora and "
              "Ubuntu kernels): SysRq+x from a physical keyboard lifts lockdown; drivers/tty/sysrq.c "
              "sysrq_on_mask() ignores every SysRq key when kernel.sysrq is 0",
              may_break="kernel.sysrq=0 also disables the emergency SysRq keys (sync, reboot)"),
    ]


def _equivalents() -> list[Check]:
    return [
        Check("devmem", "/dev/mem is not available", any_of(level(_I), unset("DEVMEM")), ("dev_mem",),
              effect="drivers/char/mem.c open_port() (LOCKDOWN_DEV_MEM); without CONFIG_DEVMEM there is no "
              "/dev/mem", may_break="flashrom, cbmem, dmidecode --no-sysfs, devmem2"),
        Check("strict_devmem", "/dev/mem cannot reach RAM",
              any_of(level(_I), unset("DEVMEM"), kconfig("STRICT_DEVMEM", "y")), ("dev_mem",),
              effect="drivers/char/mem.c range_is_allowed() -> devmem_is_allowed() (arch/x86/mm/init.c)",
              may_break="tools that read RAM through /dev/mem (memory dumpers)"),
        Check("io_strict_devmem", "/dev/mem cannot reach memory a driver claimed",
              any_of(level(_I), unset("DEVMEM"), kconfig("IO_STRICT_DEVMEM", "y")), ("dev_mem",),
              effect="kernel/resource.c iomem_is_exclusive() (checked by devmem_is_allowed())",
              may_break="user-space drivers that map device registers through /dev/mem"),
        Check("devkmem", "/dev/kmem is not available", any_of(level(_I), unset("DEVKMEM")), ("dev_mem",),
              effect="drivers/char/mem.c (/dev/kmem, removed from the kernel in v5.13)",
              may_break="nothing current"),
        Check("devport", "/dev/port is not available", any_of(level(_I), unset("DEVPORT")), ("dev_mem",),
              effect="drivers/char/mem.c open_port() (/dev/port)",
              may_break="sensors-detect Super-I/O probing, isadump/isaset"),
        Check("kexec", "kexec_load() is not available", any_of(level(_I), unset("KEXEC")), ("kexec",),
              effect="kernel/kexec.c kexec_load_check()",
              may_break="kexec -c and kdump set-ups that use the old kexec_load syscall"),
        Check("kexec_file", "kexec_file_load() only boots signed kernels",
              any_of(level(_I), unset("KEXEC_FILE"), kconfig("KEXEC_SIG_FORCE", "y")), ("kexec",),
              effect="kernel/kexec_file.c kimage_validate_signature()",
              may_break="kexec reboots and kdump with unsigned kernels"),
        Check("kexec_sig", "signed kexec images can still be verified",
              any_of(unset("KEXEC_FILE"), kconfig("KEXEC_SIG", "y")), ("kexec",), advisory=True,
              effect="kernel/kexec_file.c kimage_validate_signature(): without CONFIG_KEXEC_SIG a locked-down "
              "kernel refuses every kexec_file_load()",
              may_break="without it, kdump stops working under lockdown"),
        Check("hibernation", "hibernation is not available",
              any_of(level(_I), gate("hibernation"), Cond("cmdline", "nohibernate", "is set")),
              ("hibernation",), effect="kernel/power/hibernate.c hibernation_available() (also nohibernate=)",
              may_break="systemctl hibernate, hybrid-sleep, suspend-then-hibernate"),
        Check("x86_msr", "MSRs cannot be written from user space", any_of(level(_I), gate("msr")),
              ("msr",), effect="arch/x86/kernel/msr.c msr_write(), msr_ioctl()",
              may_break="undervolting and power-limit tools (MSR reads go too without the driver)"),
        Check("x86_iopl_ioperm", "ioperm()/iopl() are not available",
              any_of(level(_I), gate("ioport")), ("ioport",),
              effect="arch/x86/kernel/ioport.c ksys_ioperm(), sys_iopl()",
              may_break="root Xorg with legacy drivers, LinuxCNC parallel port, ectool"),
        Check("acpi_custom_method", "ACPI methods cannot be replaced at run time",
              any_of(level(_I), unset("ACPI_CUSTOM_METHOD")), ("acpi_tables",),
              effect="drivers/acpi/custom_method.c cm_write()", may_break="ACPI debugging"),
        Check("acpi_table_upgrade", "ACPI tables cannot be replaced from the initrd",
              any_of(level(_I), unset("ACPI_TABLE_UPGRADE")), ("acpi_tables",),
              effect="drivers/acpi/tables.c acpi_table_upgrade()",
              may_break="DSDT/SSDT overrides that fix sleep, sensors or fans"),
        Check("efi_test", "/dev/efi_test is not available", any_of(level(_I), gate("efi_test")), ("efi_test",),
              effect="drivers/firmware/efi/test/efi_test.c efi_test_open()",
              may_break="FWTS UEFI runtime-service tests"),
        Check("mmiotrace", "the MMIO trace test cannot run",
              any_of(level(_I), gate("mmiotrace"), unset("MMIOTRACE")), ("mmiotrace",),
              effect="arch/x86/mm/testmmiotrace.c init()", may_break="MMIO tracing of drivers"),
        Check("debugfs", "debugfs is not writable",
              any_of(level(_I), gate("debugfs"), kconfig("DEBUG_FS_ALLOW_NONE", "y"),
                     Cond("cmdline", "debugfs", "off")), ("debugfs",),
              effect="fs/debugfs/file.c debugfs_locked_down(); fs/debugfs/inode.c debugfs_kernel() (debugfs=off, "
              "CONFIG_DEBUG_FS_ALLOW_NONE)",
              may_break="scheduler tunables, ec_sys, dynamic debug through debugfs, GPU register dumps"),
        Check("bpf_write_user", "BPF cannot write user memory",
              any_of(level(_I), gate("bpf_write_user"), unset("BPF_EVENTS")), ("bpf_write_user",),
              effect="kernel/trace/bpf_trace.c bpf_get_probe_write_proto()",
              may_break="BPF tracing (BPF_EVENTS) or all of BPF (BPF_SYSCALL), when set by Kconfig"),
        Check("kgdb_write", "kgdb/kdb cannot write kernel memory", any_of(level(_I), gate("dbg_write_kernel")),
              ("dbg_write_kernel",), effect="kernel/debug/debug_core.c kgdb_cpu_enter()",
              may_break="kernel debugging with kgdb"),
        Check("module_sig", "module signatures are checked at all",
              any_of(gate("module_signature"), kconfig("MODULE_SIG", "y")), ("module_signature",),
              effect="kernel/module/signing.c module_sig_check(): without CONFIG_MODULE_SIG the check is "
              "compiled out and lockdown never refuses a module",
              may_break="nothing by itself (unsigned modules taint the kernel)"),
        Check("module_sig_force", "unsigned modules are refused",
              any_of(level(_I), gate("module_signature"), kconfig("MODULE_SIG_FORCE", "y"),
                     Cond("cmdline", "module.sig_enforce", "one of 1|y|Y")), ("module_signature",),
              effect="kernel/module/signing.c module_sig_check() (is_module_sig_enforced(), module.sig_enforce=)",
              may_break="DKMS and other out-of-tree modules not signed by a trusted key"),
        Check("proc_kcore", "/proc/kcore is not available", any_of(level(_C), gate("kcore")), ("kcore",),
              level=_C, effect="fs/proc/kcore.c open_kcore()", may_break="crash and drgn on the live kernel"),
        Check("kprobes", "kprobe trace events are not available",
              any_of(level(_C), unset("KPROBES"), unset("KPROBE_EVENTS")), ("kprobes",), level=_C,
              effect="kernel/trace/trace_kprobe.c __register_trace_kprobe()",
              may_break="bcc and bpftrace kprobe tools, perf probe"),
        Check("bpf_read_kernel", "BPF cannot read kernel memory", any_of(level(_C), gate("bpf_read_kernel")),
              ("bpf_read_kernel",), level=_C,
              effect="kernel/trace/bpf_trace.c bpf_tracing_func_proto(); kernel/bpf/helpers.c bpf_base_func_proto()",
              may_break="every BPF program, including systemd's and the lockdownctl enforcer, when set by Kconfig"),
        Check("tracefs", "tracefs is not available", any_of(level(_C), unset("FTRACE")), ("tracefs",), level=_C,
              effect="fs/tracefs/inode.c tracefs_create_file(); kernel/trace/trace.c tracing_check_open_get_tr()",
              may_break="trace-cmd, perf trace, bpftrace tracepoints, rasdaemon"),
        Check("kgdb_read", "kgdb/kdb cannot read kernel memory", any_of(level(_C), gate("dbg_read_kernel")),
              ("dbg_read_kernel",), level=_C, effect="kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown()",
              may_break="kernel debugging with kgdb"),
    ]


def _sysctls() -> list[Check]:
    return [
        Check("sysctl_kexec_load_disabled", "kexec is disabled until reboot",
              any_of(level(_I), Cond("sysctl", "kernel.kexec_load_disabled", "== 1"), unset("KEXEC_CORE")),
              ("kexec",), group="sysctl", effect="kernel/kexec_core.c kexec_load_disabled (one way until reboot)",
              may_break="kexec reboots and kdump loaded after the sysctl is set"),
        Check("sysctl_modules_disabled", "module loading is disabled until reboot",
              any_of(Cond("sysctl", "kernel.modules_disabled", "== 1"), gate("module_signature")),
              ("module_signature",), group="sysctl", advisory=True,
              effect="kernel/module/main.c may_init_module() (modules_disabled, one way until reboot)",
              may_break="every later module load, signed or not: hotplugged devices stay without a driver"),
        Check("sysctl_unprivileged_bpf_disabled", "unprivileged BPF is off",
              any_of(Cond("sysctl", "kernel.unprivileged_bpf_disabled", "1..2"), unset("BPF_SYSCALL")),
              ("bpf_read_kernel", "bpf_write_user"), group="sysctl", advisory=True,
              effect="kernel/bpf/syscall.c __sys_bpf() (sysctl_unprivileged_bpf_disabled)",
              may_break="unprivileged socket filters and BPF programs"),
        Check("sysctl_perf_event_paranoid", "perf needs privilege for kernel profiling",
              Cond("sysctl", "kernel.perf_event_paranoid", ">= 2"), ("perf",), level=_C, group="sysctl",
              advisory=True, effect="kernel/events/core.c perf_event_open() (perf_allow_kernel())",
              may_break="unprivileged perf record of the kernel"),
        Check("sysctl_kptr_restrict", "kernel pointers are hidden",
              Cond("sysctl", "kernel.kptr_restrict", "1..2"), ("kcore", "bpf_read_kernel"), level=_C,
              group="sysctl", advisory=True, effect="lib/vsprintf.c restricted_pointer() (%pK)",
              may_break="symbol addresses in /proc/kallsyms and /proc/modules for unprivileged tools"),
        Check("sysctl_dmesg_restrict", "the kernel log needs privilege",
              Cond("sysctl", "kernel.dmesg_restrict", "== 1"), ("kcore",), level=_C, group="sysctl",
              advisory=True, effect="kernel/printk/printk.c check_syslog_permissions()",
              may_break="dmesg for unprivileged users"),
    ]


def _enforcer() -> list[Check]:
    return [
        Check("enforcer_bpf_lsm", "the BPF LSM is built (lockdownctl enforcer)", kconfig("BPF_LSM", "y"),
              (ALL_REASONS,), group="enforcer", advisory=True,
              effect="kernel/bpf/bpf_lsm.c (lsm/locked_down programs)", may_break="nothing by itself"),
        Check("enforcer_bpf_in_lsm", "the BPF LSM is active (lockdownctl enforcer)",
              Cond("runtime", "lsm", "contains bpf"), (ALL_REASONS,), group="enforcer", advisory=True,
              effect="security/bpf/hooks.c (bpf in CONFIG_LSM or lsm=)",
              may_break="a small cost on every LSM hook with a program attached"),
        Check("enforcer_bpf_lsm_loads", "the kernel accepts BPF LSM programs (lockdownctl enforcer)",
              Cond("runtime", "bpf_lsm", "usable"), (ALL_REASONS,), group="enforcer", advisory=True,
              effect="kernel/bpf/syscall.c bpf_prog_load() of BPF_PROG_TYPE_LSM: the trial load that "
              "lockdownctl status, enforce apply and check --measure decide by (state/bpf_lsm.py); only "
              "the running system can be asked",
              may_break="nothing by itself"),
        Check("enforcer_btf", "kernel BTF is available (lockdownctl enforcer)",
              all_of(kconfig("DEBUG_INFO_BTF", "y"), kconfig("BPF_SYSCALL", "y")), (ALL_REASONS,),
              group="enforcer", advisory=True,
              effect="kernel/bpf/sysfs_btf.c (/sys/kernel/btf/vmlinux): reason values and the hook's BTF id",
              may_break="a larger kernel image"),
    ]


def checks(target: str) -> list[Check]:
    """Every check for ``target`` (integrity or confidentiality), in report order."""
    return _lockdown(target) + _equivalents() + _sysctls() + _enforcer()
