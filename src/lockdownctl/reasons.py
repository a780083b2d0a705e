"""The reason catalogue: the only place in lockdownctl that knows reason strings.

One record per member of the kernel's ``enum lockdown_reason``
(include/linux/security.h) from v5.4 to mainline, with the string the kernel
prints for it (``lockdown_reasons[]`` in security/security.c), the level at
which mainline denies it, what it guards, what typically breaks and what to
do. ``explain``, ``check``, ``audit``, ``watch`` and the enforcer all read
reasons from here.

Values and levels differ between kernels: new reasons were inserted in the
middle of the enum. :func:`catalogue` merges this table with the running
kernel's BTF (``btf.py``): values and levels come from BTF when present, the
table is the fallback, and a BTF member the table does not know is reported
in ``Catalogue.unknown`` instead of being dropped.

This module knows the phrases (phrase -> reason) and the kernel's printk
format of a denial, to build example lines (:func:`denial_line`); reading
log lines (the grammar of every dialect) is ``klog``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from .btf import VMLINUX_BTF, LockdownEnum, parse_lockdown_enum
from .errors import InputError
from .levels import LEVELS, level_rank

__all__ = ["CHECKED_IN", "DENIAL_FORMAT", "LEVELS", "TABLE", "Catalogue", "Reason", "catalogue", "denial_line", "level_rank",
           "merge", "reason_from_phrase", "suggest"]

ENUM_PREFIX = "LOCKDOWN_"


@dataclass(frozen=True)
class Reason:
    id: str  # lowercase enum suffix: "dev_mem"
    log: str  # exact lockdown_reasons[] string: "/dev/mem,kmem,port"
    level: str  # "integrity" or "confidentiality" (mainline)
    since: str  # first kernel release with this enum member
    guards: str  # operations the kernel refuses for this reason
    breaks: str  # what users typically lose
    remedy: str  # what to do instead
    call_sites: str = ""  # kernel functions that ask security_locked_down() for it
    added_by: str = ""  # kernel commit citation
    arch: str = ""  # non-empty when the reason only occurs on one platform
    aliases: tuple[str, ...] = ()  # older enum names of the same reason
    # Phrases the pre-5.4 distro lockdown patches (David Howells' series as
    # carried by Fedora, Ubuntu, RHEL 8) printed for this reason in
    # "Lockdown: [<comm>: ]<phrase> is restricted", where they differ from
    # ``log`` other than by case (``watch`` maps old log lines through them).
    old_logs: tuple[str, ...] = ()
    # Compile-time gate: kconfig options (any of) without which the kernel has no operation
    # of this reason, so lockdown cannot break it. Empty only with ``config_none`` saying why.
    config: tuple[str, ...] = ()
    config_none: str = ""  # why no option removes it (cited), when ``config`` is empty
    # Bypass analysis (the lockdown maintainers' objection to per-reason lockdown: "most
    # lockdown-reasons can be bypassed if used independently", Nicolas Bouchinet, LSM list,
    # August 2025). ``defeats``: the protections root can defeat when this reason is allowed
    # (a kernel write defeats both; a kernel read, confidentiality); () with ``route``
    # saying why not. ``route``: how, cited.
    defeats: tuple[str, ...] = ()
    route: str = ""
    # Whose ``current`` the kernel sees when it asks: "requester" (the program doing it),
    # "partly" (some call sites run elsewhere) or "elsewhere" (none in the requester);
    # ``context`` names those sites: an exception by program cannot target them soundly.
    checked_in: str = ""
    context: str = ""
    value: int | None = None  # enum value on the kernel read (None: not on it)
    on_kernel: bool = False  # the kernel read defines this reason

    @property
    def enum(self) -> str:
        return ENUM_PREFIX + self.id.upper()


_C = "confidentiality"
_I = "integrity"
# What allowing a reason lets root defeat: a kernel write undoes every denial (and so
# reads too); a kernel read undoes confidentiality. The kernel's own definition:
# security/lockdown/Kconfig LOCK_DOWN_KERNEL_FORCE_INTEGRITY ("features that allow the
# kernel to be modified at runtime") and ..._CONFIDENTIALITY ("or for userland to extract
# confidential information from the kernel").
_KW = (_I, _C)
_KR = (_C,)
CHECKED_IN = ("requester", "partly", "elsewhere")

# Order = mainline enum order, so that the fallback values (no BTF) are
# those of current mainline.
TABLE: tuple[Reason, ...] = (
    Reason(
        "module_signature", "unsigned module loading", _I, "5.4",
        defeats=_KW,
        route='an unsigned module is code run in ring 0: it can rewrite any kernel memory, detach any BPF '
        'program and read every secret (kernel/module/signing.c module_sig_check() is the only gate '
        "before load_module() runs the module's init)",
        checked_in='partly',
        context='explicit loads are checked in the loader (insmod, modprobe); an autoload triggered by any '
        'program runs modprobe as a kernel-spawned usermode helper (kernel/module/kmod.c '
        'call_modprobe()), so the check sees modprobe, not the program that needed the module',
        config=("CONFIG_MODULES",),
        guards="loading a kernel module without a signature the kernel trusts "
        "(init_module/finit_module; only with CONFIG_MODULE_SIG), and forced loads "
        "(modprobe --force) whose version info the signature covered",
        breaks="DKMS/akmods and other out-of-tree modules: NVIDIA, VirtualBox, ZFS, "
        "v4l2loopback, acpi_call, LiME, SystemTap; a boot-critical unsigned module makes "
        "the machine unbootable",
        remedy="sign the modules with a key the kernel trusts (MOK with shim and Secure "
        "Boot, or a key built into the kernel); loaded modules tainted E will be refused",
        call_sites="kernel/module/signing.c module_sig_check()",
        # pre-5.4 module_sig_check() (ParrotSec/linux-parrot debian/patches/features/all/lockdown/
        # 0004-Enforce-module-signatures-if-the-kernel-is-locked-do.patch @453481b37fb8); RHEL 8 logs
        # "Loading of untrusted modules" (public dmesg of a CentOS/RHEL 8 VirtualBox install)
        old_logs=("Loading of unsigned module", "Loading of module with unsupported crypto",
                  "Loading of module with unavailable key", "Loading of untrusted modules"),
    ),
    Reason(
        "dev_mem", "/dev/mem,kmem,port", _I, "5.4",
        defeats=_KW,
        route="/dev/mem writes physical memory, the kernel's included, and /dev/port reaches the PCI "
        'configuration ports and so device DMA (drivers/char/mem.c write_mem(), write_port(); Linux '
        'kernel commit 9b9d8dda1ed7 ("lockdown: Restrict /dev/{mem,kmem,port} when the kernel is '
        'locked down") (in v5.4))',
        checked_in='requester',
        config=("CONFIG_DEVMEM", "CONFIG_DEVPORT"),
        guards="open of /dev/mem, /dev/kmem and /dev/port",
        breaks="flashrom (internal programmer), coreboot cbmem, dmidecode --no-sysfs, "
        "libsmbios, sensors-detect Super-I/O probing, devmem2, memory dumpers",
        remedy="use the sysfs interfaces (/sys/firmware/dmi/tables, /sys/firmware/memmap) "
        "or a kernel driver; flash firmware with fwupd or an external programmer",
        call_sites="drivers/char/mem.c open_port()",
        added_by='Linux kernel commit 9b9d8dda1ed7 ("lockdown: Restrict /dev/{mem,kmem,port} when the kernel is locked down") (in v5.4)',
    ),
    Reason(
        "efi_test", "/dev/efi_test access", _I, "5.4",
        defeats=_KW,
        route='/dev/efi_test hands caller-chosen arguments to UEFI runtime services, which run in ring 0 '
        "with the kernel's mappings (drivers/firmware/efi/test/efi_test.c efi_test_ioctl(); Linux "
        'kernel commit 359efcc2c910 ("efi/efi_test: Lock down /dev/efi_test and require '
        'CAP_SYS_ADMIN") (in v5.4))',
        checked_in='requester',
        config=("CONFIG_EFI_TEST",),
        guards="the efi_test driver (/dev/efi_test) that calls UEFI runtime services",
        breaks="FWTS UEFI runtime-service tests",
        remedy="run firmware tests on a machine booted without lockdown",
        call_sites="drivers/firmware/efi/test/efi_test.c efi_test_open()",
        added_by='Linux kernel commit 359efcc2c910 ("efi/efi_test: Lock down /dev/efi_test and require CAP_SYS_ADMIN") (in v5.4)',
    ),
    Reason(
        "kexec", "kexec of unsigned images", _I, "5.4",
        defeats=_KW,
        route='kexec replaces the running kernel with an image root chose: the new kernel has no lockdown, '
        "no lockdownctl and the old kernel's devices (kernel/kexec.c kexec_load_check(), "
        'kernel/kexec_file.c kimage_validate_signature())',
        checked_in='requester',
        config=("CONFIG_KEXEC", "CONFIG_KEXEC_FILE"),
        guards="kexec_load() always; kexec_file_load() when the image signature does not "
        "verify and IMA does not vouch for it",
        breaks="kexec reboots and kdump with unsigned kernels or the old kexec_load syscall",
        remedy="use kexec_file_load (kexec -s) with a kernel signed by a trusted key",
        call_sites="kernel/kexec.c kexec_load_check(); kernel/kexec_file.c kimage_validate_signature()",
    ),
    Reason(
        "hibernation", "hibernation", _I, "5.4",
        defeats=_KW,
        route="resuming replaces all of memory, the kernel's included, with an image read from swap that "
        'nothing verifies; root can write that image and resume from it at run time through '
        '/sys/power/resume (kernel/power/hibernate.c hibernation_available(), resume_store() -> '
        'software_resume())',
        checked_in='elsewhere',
        context='hibernation_available() runs for every reader of /sys/power/state and /sys/power/disk '
        "(systemd-logind probing CanHibernate), and at boot in the kernel's own context for resume "
        '(kernel/power/hibernate.c software_resume_initcall()): an exception for the hibernating '
        'program neither makes logind offer hibernation nor lets the kernel resume, and the image is '
        'lost',
        config=("CONFIG_HIBERNATION",),
        guards="hibernation (suspend to disk) and resume from a hibernation image "
        "(hibernation_available())",
        breaks="systemctl hibernate, hybrid-sleep, suspend-then-hibernate; a pending "
        "hibernation image is discarded at the next boot",
        remedy="use suspend to RAM; resume any pending image before enabling lockdown",
        call_sites="kernel/power/hibernate.c hibernation_available()",
    ),
    Reason(
        "pci_access", "direct PCI access", _I, "5.4",
        defeats=_KW,
        route='PCI configuration writes and BAR mmaps let root program a device to DMA into kernel memory '
        '(drivers/pci/pci-sysfs.c pci_write_config(), pci_mmap_resource(); Linux kernel commit '
        'eb627e17727e ("PCI: Lock down BAR access when the kernel is locked down") (in v5.4))',
        checked_in='partly',
        context="config writes and mmaps are checked in the requester, but the legacy_io/legacy_mem files' "
        'visibility is decided when the bus is registered, with no requester (drivers/pci/pci-sysfs.c'
        ' __pci_legacy_is_visible(), new in v7.x)',
        config=("CONFIG_PCI",),
        guards="writes to PCI config space through sysfs and /proc/bus/pci, mmap of sysfs "
        "resourceN files, pciconfig_write, CXL raw mailbox commands",
        breaks="setpci writes, RyzenAdj, DPDK/SPDK on uio_pci_generic or igb_uio, tools "
        "that mmap BARs (intel_reg, radeontool)",
        remedy="use VFIO (vfio-pci) for user-space drivers; drop setpci tweaks",
        call_sites="drivers/pci/pci-sysfs.c pci_write_config(), pci_mmap_resource(); drivers/pci/proc.c; drivers/pci/syscall.c",
        added_by='Linux kernel commit eb627e17727e ("PCI: Lock down BAR access when the kernel is locked down") (in v5.4)',
    ),
    Reason(
        "ioport", "raw io port access", _I, "5.4",
        defeats=_KW,
        route='raw port I/O reaches the PCI configuration mechanism (ports 0xcf8/0xcfc) and so device DMA '
        'into kernel memory (arch/x86/kernel/ioport.c ksys_ioperm(), SYSCALL_DEFINE1(iopl))',
        checked_in='requester',
        config=("CONFIG_X86_IOPL_IOPERM",),
        guards="ioperm() and iopl()",
        breaks="root Xorg with legacy drivers, LinuxCNC parallel port, ectool, "
        "hwclock --directisa, pciutils' direct I/O backend",
        remedy="use the kernel driver for the device (parport, rtc, ec interfaces)",
        call_sites="arch/x86/kernel/ioport.c ksys_ioperm(), sys_iopl()",
        old_logs=("ioperm", "iopl"),
    ),
    Reason(
        "msr", "raw MSR access", _I, "5.4",
        defeats=_KW,
        route="writing an MSR such as IA32_LSTAR (the syscall entry address) runs root's code in ring 0 "
        '(arch/x86/kernel/msr.c msr_write(), msr_ioctl())',
        checked_in='requester',
        config=("CONFIG_X86_MSR",),
        guards="writes and the WRMSR ioctl on /dev/cpu/*/msr (reads stay allowed)",
        breaks="undervolting and power-limit tools: intel-undervolt, undervolt, throttled, "
        "amdctl, zenstates, wrmsr, Intel PCM",
        remedy="use the kernel's interfaces (intel_rapl powercap, cpufreq) or an "
        "enforcer exception for that one executable",
        call_sites="arch/x86/kernel/msr.c msr_write(), msr_ioctl()",
        old_logs=("Direct MSR access",),  # intel/pcm#102 (patch), mchehab/rasdaemon#65 (RHEL 8 log)
    ),
    Reason(
        "acpi_tables", "modifying ACPI tables", _I, "5.4",
        defeats=_KW,
        route='ACPI tables hold AML that the kernel interprets in ring 0 with SystemMemory operation '
        'regions, i.e. arbitrary physical memory writes (drivers/acpi/tables.c acpi_table_upgrade(), '
        'drivers/acpi/custom_method.c cm_write(), drivers/acpi/acpi_configfs.c '
        'acpi_table_aml_write())',
        checked_in='partly',
        context='table upgrades from the initrd, acpi_rsdp= and efivar_ssdt= are checked at boot in the '
        "kernel's own context (drivers/acpi/tables.c acpi_table_upgrade(), drivers/acpi/osl.c "
        'acpi_os_get_root_pointer()); only custom_method and configfs loads are checked in the '
        'requester',
        config=("CONFIG_ACPI",),
        guards="ACPI table upgrade from the initrd, configfs table loading, custom_method, "
        "acpi_rsdp= and efivar_ssdt=",
        breaks="DSDT/SSDT overrides used to fix sleep, sensors or fans",
        remedy="ask the vendor for a firmware fix, or carry the fix as a kernel patch or quirk",
        call_sites="drivers/acpi/tables.c acpi_table_upgrade(); drivers/acpi/osl.c acpi_os_get_root_pointer(); drivers/acpi/custom_method.c cm_write(); drivers/acpi/acpi_configfs.c",
        # fiji-flo/x1carbon2018s3#8 (Ubuntu log); the pre-5.4 series (ParrotSec/linux-parrot
        # debian/patches/features/all/lockdown/0015-ACPI-Limit-access-to-custom_method-when-the-kernel-i.patch
        # @e20cba76c6c2, 0018 APEI error injection)
        old_logs=("ACPI table override", "ACPI custom methods", "ACPI error injection"),
    ),
    Reason(
        "device_tree", "modifying device tree contents", _I, "6.1",
        defeats=_KW,
        route='a live device tree change makes drivers bind to nodes that describe memory and devices root '
        "chose, and so write physical addresses of root's choosing "
        '(arch/powerpc/platforms/pseries/reconfig.c ofdt_write(); Linux kernel commit 99df7a2810b6 '
        '("powerpc/pseries: block untrusted device tree changes when locked down") (in v6.1))',
        checked_in='requester',
        config=("CONFIG_PPC_PSERIES",),  # arch/powerpc/platforms/pseries/Makefile builds reconfig.o
        guards="changes to the live device tree (overlays through configfs/OF)",
        breaks="runtime device tree overlays on embedded boards",
        remedy="apply overlays in the boot loader",
        arch="device tree platforms",
        call_sites="arch/powerpc/platforms/pseries/reconfig.c ofdt_write()",
        added_by='Linux kernel commit 99df7a2810b6 ("powerpc/pseries: block untrusted device tree changes when locked down") (in v6.1)',
    ),
    Reason(
        "pcmcia_cis", "direct PCMCIA CIS storage", _I, "5.4",
        defeats=_KW,
        route='a replaced Card Information Structure tells the PCMCIA core which I/O and memory windows the'
        ' card decodes, so drivers access addresses root chose (drivers/pcmcia/cistpl.c '
        "pccard_store_cis(); integrity class in security/lockdown/lockdown.c: 'features that allow "
        "the kernel to be modified')",
        checked_in='requester',
        config=("CONFIG_PCCARD",),  # drivers/pcmcia/Makefile: pcmcia_core-y += cistpl.o
        guards="overriding a PCMCIA card's CIS through sysfs",
        breaks="CIS override files for broken PCMCIA cards",
        remedy="load the CIS fix as firmware through the driver",
        call_sites="drivers/pcmcia/cistpl.c pccard_store_cis()",
    ),
    Reason(
        "tiocsserial", "reconfiguration of serial port IO", _I, "5.4",
        defeats=_KW,
        route='TIOCSSERIAL moves a serial port to I/O ports and an IRQ root chose, so the driver pokes '
        'hardware at those addresses, the same reach as raw port I/O '
        '(drivers/tty/serial/serial_core.c uart_set_info())',
        checked_in='requester',
        config=("CONFIG_SERIAL_CORE",),
        guards="TIOCSSERIAL (uart_set_info()) when it changes the I/O port or IRQ",
        breaks="setserial for ISA and multi-port serial cards",
        remedy="set port and IRQ with kernel parameters or the driver's configuration",
        call_sites="drivers/tty/serial/serial_core.c uart_set_info()",
        # pre-5.4 series: ParrotSec/linux-parrot debian/patches/features/all/lockdown/0020-Lock-down-TIOCSSERIAL.patch
        old_logs=("Using TIOCSSERIAL to change device addresses, irqs and dma channels",),
    ),
    Reason(
        "module_parameters", "unsafe module parameters", _I, "5.4",
        defeats=_KW,
        route='io=, iomem=, irq= and dma= parameters make a driver access hardware addresses root chose, '
        'the same reach as raw port I/O and /dev/mem (kernel/params.c param_check_unsafe() for '
        'module_param_hw*())',
        checked_in='elsewhere',
        context="param_check_unsafe() runs while parameters are parsed: at boot in the kernel's own context "
        'for built-in drivers, at load in modprobe (often a kernel-spawned autoload helper), never in'
        ' a program that asked for the hardware (kernel/params.c parse_args())',
        config_none="kernel/params.c is always built (obj-y in kernel/Makefile) and checks the "
        "module_param_hw*() parameters of built-in drivers on the command line too",
        guards="module parameters declared with module_param_hw* (io, irq, dma, iomem)",
        breaks="drivers configured with hardware addresses: ipmi_si ports=, parport_pc io=, "
        "ISA sound and network cards",
        remedy="let the driver probe the hardware (ACPI, PnP) instead of passing addresses",
        call_sites="kernel/params.c param_check_unsafe()",
        # pre-5.4 series: ParrotSec/linux-parrot debian/patches/features/all/lockdown/
        # 0021-Lock-down-module-params-that-specify-hardware-parame.patch @453481b37fb8
        old_logs=("Command line-specified device addresses, irqs and dma channels",),
    ),
    Reason(
        "mmiotrace", "unsafe mmio", _I, "5.4",
        defeats=_KW,
        route='testmmiotrace maps and writes the MMIO address given as its mmio_address parameter '
        '(arch/x86/mm/testmmiotrace.c: the module init function, do_write_test())',
        checked_in='elsewhere',
        context="checked in the module's init function, i.e. in the loading modprobe or at boot, not in a program "
        'that wants the access (arch/x86/mm/testmmiotrace.c, module init)',
        config=("CONFIG_MMIOTRACE_TEST",),  # arch/x86/mm/Makefile: obj-$(CONFIG_MMIOTRACE_TEST) += testmmiotrace.o
        guards="the testmmiotrace module",
        breaks="MMIO tracing tests",
        remedy="trace MMIO on a machine booted without lockdown",
        call_sites="arch/x86/mm/testmmiotrace.c init()",
        old_logs=("MMIO trace testing",),
    ),
    Reason(
        "debugfs", "debugfs access", _I, "5.4",
        defeats=_KW,
        route='drivers give raw hardware access through writable debugfs files, and hardware access reaches'
        ' kernel memory through DMA (fs/debugfs/file.c debugfs_locked_down(); Linux kernel commit '
        '5496197f9b08 ("debugfs: Restrict debugfs when the kernel is locked down") (in v5.4))',
        checked_in='requester',
        config=("CONFIG_DEBUG_FS",),
        guards="open of any debugfs file that is writable, has a write bit in its mode or "
        "offers ioctl/mmap; chmod and chown of debugfs files",
        breaks="scheduler tunables under /sys/kernel/debug/sched, ec_sys EC access (isw, "
        "nbfc), dynamic debug through debugfs, blktrace, GPU register dumps",
        remedy="for dynamic debug use /proc/dynamic_debug/control (the same control file in procfs, with no "
        "lockdown check: it works at every level) or dyndbg= parameters; otherwise, with the kernel at none and "
        "the enforcer as the whole policy, a path exception for the one debugfs file a tool needs "
        "(lockdownctl-policy(5)) or an exe exception for the tool",
        call_sites="fs/debugfs/file.c debugfs_locked_down(); fs/debugfs/inode.c debugfs_setattr()",
        # mchehab/rasdaemon#65 (RHEL 8 log); debugfs_setattr() in the pre-5.4 series (ParrotSec/linux-parrot
        # debian/patches/features/all/lockdown/0029-efi-Lock-down-the-kernel-if-booted-in-secure-boot-mo.patch)
        old_logs=("debugfs", "changing perms in debugfs"),
        added_by='Linux kernel commit 5496197f9b08 ("debugfs: Restrict debugfs when the kernel is locked down") (in v5.4)',
    ),
    Reason(
        "xmon_wr", "xmon write access", _I, "5.7",
        defeats=_KW,
        route="xmon's memory-write commands change kernel memory directly (arch/powerpc/xmon/xmon.c "
        'xmon_is_locked_down())',
        checked_in='elsewhere',
        context='xmon runs on the console in the context of whatever task was interrupted, not a requesting '
        'program (arch/powerpc/xmon/xmon.c xmon_core())',
        config=("CONFIG_XMON",),  # arch/powerpc/Makefile: drivers-$(CONFIG_XMON) += arch/powerpc/xmon/
        guards="writes to memory from the powerpc xmon debugger",
        breaks="xmon memory-write commands",
        remedy="debug on a machine booted without lockdown",
        arch="powerpc",
        call_sites="arch/powerpc/xmon/xmon.c xmon_is_locked_down()",
        added_by='Linux kernel commit 69393cb03ccd ("powerpc/xmon: Restrict when kernel is locked down") (in v5.7)',
    ),
    Reason(
        "bpf_write_user", "use of bpf to write user RAM", _I, "5.14",
        defeats=(),
        route='none: the helper writes user addresses only (kernel/trace/bpf_trace.c bpf_probe_write_user()'
        ' refuses kernel addresses); it is integrity class for user-space integrity (Linux kernel '
        'commit 51e1bb9eeaf7 ("bpf: Add lockdown check for probe_write_user helper") (in v5.14)). It '
        'lets root rewrite any process, i.e. borrow an exception, which ptrace already allows',
        checked_in='requester',
        config=("CONFIG_BPF_SYSCALL",),
        guards="the BPF helper bpf_probe_write_user",
        breaks="OpenTelemetry Go auto-instrumentation context propagation, BPF tools "
        "that patch user memory",
        remedy="use a mechanism that does not write another process's memory from BPF",
        call_sites="kernel/trace/bpf_trace.c bpf_get_probe_write_proto()",
        added_by='Linux kernel commit 51e1bb9eeaf7 ("bpf: Add lockdown check for probe_write_user helper") (in v5.14)',
    ),
    Reason(
        "dbg_write_kernel", "use of kgdb/kdb to write kernel RAM", _I, "5.19",
        defeats=_KW,
        route='kgdb/kdb write kernel memory and registers (kernel/debug/debug_core.c kgdb_cpu_enter(); '
        'Linux kernel commit eadb2f47a3ce ("lockdown: also lock down previous kgdb use") (in v5.19))',
        checked_in='elsewhere',
        context='the debugger runs in the context of the task that was interrupted when it was entered '
        '(kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown()), not a requesting program',
        config=("CONFIG_KGDB",),
        guards="kgdb/kdb commands that write kernel memory or registers",
        breaks="kernel debugging with kgdb/kdb memory writes",
        remedy="debug on a machine booted without lockdown",
        call_sites="kernel/debug/debug_core.c kgdb_cpu_enter(); kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown()",
        added_by='Linux kernel commit eadb2f47a3ce ("lockdown: also lock down previous kgdb use") (in v5.19)',
        # Ubuntu 20.04's LOCKDOWN_KGDB, an integrity reason before v5.19 (proxmox/mirror_ubuntu-focal-kernel
        # security/lockdown/lockdown.c @8d210c66485c)
        old_logs=("KDB or KGDB access",),
    ),
    Reason(
        "rtas_error_injection", "RTAS error injection", _I, "6.1",
        defeats=_KW,
        route="RTAS error injection corrupts arbitrary guest memory, the kernel's included "
        '(arch/powerpc/kernel/rtas.c; Linux kernel commit b8f3e48834fe ("powerpc/rtas: block error '
        'injection when locked down") (in v6.1))',
        checked_in='requester',
        config=("CONFIG_PPC_RTAS",),  # arch/powerpc/kernel/Makefile: obj-$(CONFIG_PPC_RTAS) += rtas.o
        guards="RTAS error injection calls through sys_rtas",
        breaks="powerpc error-injection testing",
        remedy="test error injection on a machine booted without lockdown",
        arch="powerpc",
        call_sites="arch/powerpc/kernel/rtas.c (sys_rtas error-injection tokens)",
        added_by='Linux kernel commit b8f3e48834fe ("powerpc/rtas: block error injection when locked down") (in v6.1)',
    ),
    Reason(
        "xen_user_actions", "Xen guest user action", _I, "7.0",
        defeats=_KW,
        route="an unrestricted /dev/xen/privcmd issues arbitrary hypercalls, which can change this guest's "
        'kernel memory (drivers/xen/privcmd.c restrict_driver(); Linux kernel commit 1613462be621 '
        '("xen/privcmd: add boot control for restricted usage in domU") (in v7.0))',
        checked_in='elsewhere',
        context='checked once when the privcmd driver initialises, at boot or module load, not when a program'
        ' opens /dev/xen/privcmd (drivers/xen/privcmd.c restrict_driver())',
        config=("CONFIG_XEN_PRIVCMD",),  # drivers/xen/Makefile: obj-$(CONFIG_XEN_PRIVCMD) += xen-privcmd.o
        guards="the privcmd.unrestricted boot parameter, which would let user space in an "
        "unprivileged Xen domU use /dev/xen/privcmd beyond the device model's target domain",
        breaks="privcmd.unrestricted is ignored (the kernel logs 'Kernel is locked down, parameter "
        "\"unrestricted\" ignored'): Xen device models in a domU stay restricted",
        remedy="run the device model in a domain allowed to act on the target, or below integrity",
        arch="xen",
        call_sites="drivers/xen/privcmd.c restrict_driver()",
        added_by='Linux kernel commit 1613462be621 ("xen/privcmd: add boot control for restricted usage in domU") (in v7.0, backported to the stable series)',
    ),
    Reason(
        "kcore", "/proc/kcore access", _C, "5.4",
        defeats=_KR,
        route='/proc/kcore is an ELF view of all kernel memory: every key and secret (fs/proc/kcore.c '
        'open_kcore(), read_kcore_iter())',
        checked_in='requester',
        config=("CONFIG_PROC_KCORE",),
        guards="open of /proc/kcore",
        breaks="crash and drgn on the live kernel, gdb on /proc/kcore, AVML, perf --kcore",
        remedy="debug live kernels on a machine below confidentiality, or take a kdump",
        call_sites="fs/proc/kcore.c open_kcore()",
        old_logs=("/proc/kcore",),
    ),
    Reason(
        "kprobes", "use of kprobes", _C, "5.4",
        defeats=_KR,
        route='kprobe event arguments fetch any kernel address (+0(%di):u64) into the trace buffer '
        '(kernel/trace/trace_kprobe.c __register_trace_kprobe(), kernel/trace/trace_probe.c)',
        checked_in='requester',
        config=("CONFIG_KPROBE_EVENTS", "CONFIG_KPROBES"),
        guards="registering trace kprobes, kretprobes and fprobes (tracefs kprobe_events, "
        "perf kprobe PMU, BPF kprobe attach through perf)",
        breaks="bcc and bpftrace kprobe tools, perf probe, perf-tools kprobe",
        remedy="use tracepoints or BPF fentry/fexit programs, or an enforcer exception",
        call_sites="kernel/trace/trace_kprobe.c __register_trace_kprobe()",
    ),
    Reason(
        "bpf_read_kernel", "use of bpf to read kernel RAM", _C, "5.4",
        defeats=_KR,
        route='bpf_probe_read_kernel() copies any kernel address into a BPF map or ring buffer '
        '(kernel/trace/bpf_trace.c bpf_tracing_func_proto(); Linux kernel commit 9d1f8be5cf42 ("bpf: '
        'Restrict bpf when kernel lockdown is in confidentiality mode") (in v5.4))',
        checked_in='requester',
        config=("CONFIG_BPF_SYSCALL",),
        guards="BPF helpers bpf_probe_read_kernel(_str) and the legacy bpf_probe_read(_str)",
        breaks="most BPF tracing and security agents: bcc, bpftrace, Falco, Tetragon, Tracee",
        remedy="use BTF-typed direct loads (fentry, tp_btf) or keep such hosts at integrity",
        aliases=("LOCKDOWN_BPF_READ",),
        # pre-5.4 Fedora/Ubuntu refused much of bpf() under this one word
        old_logs=("BPF",),
        call_sites="kernel/trace/bpf_trace.c bpf_tracing_func_proto(); kernel/bpf/helpers.c bpf_base_func_proto()",
        added_by='Linux kernel commit 9d1f8be5cf42 ("bpf: Restrict bpf when kernel lockdown is in confidentiality mode") (in v5.4); renamed from LOCKDOWN_BPF_READ by 71330842ff93 ("bpf: Add _kernel suffix to internal lockdown_bpf_read") (in v5.14)',
    ),
    Reason(
        "dbg_read_kernel", "use of kgdb/kdb to read kernel RAM", _C, "5.19",
        defeats=_KR,
        route='kgdb/kdb read any kernel memory (kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown())',
        checked_in='elsewhere',
        context='the debugger runs in the context of the interrupted task, not a requesting program '
        '(kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown())',
        config=("CONFIG_KGDB",),
        guards="kgdb/kdb commands that read kernel memory",
        breaks="kernel debugging with kgdb/kdb",
        remedy="debug on a machine below confidentiality",
        call_sites="kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown()",
        added_by='Linux kernel commit eadb2f47a3ce ("lockdown: also lock down previous kgdb use") (in v5.19)',
    ),
    Reason(
        "perf", "unsafe use of perf", _C, "5.4",
        defeats=_KR,
        route="PERF_SAMPLE_REGS_INTR samples the kernel's registers at each interrupt, which carry kernel "
        'pointers and data (kernel/events/core.c perf_event_open(); Linux kernel commit b0c8fdc7fdb7 '
        '("lockdown: Lock down perf when in confidentiality mode") (in v5.4))',
        checked_in='requester',
        config=("CONFIG_PERF_EVENTS",),  # kernel/Makefile: obj-$(CONFIG_PERF_EVENTS) += events/
        guards="perf_event_open with PERF_SAMPLE_REGS_INTR",
        breaks="perf record --intr-regs",
        remedy="sample without interrupt registers",
        call_sites="kernel/events/core.c perf_event_open() (PERF_SAMPLE_REGS_INTR)",
        old_logs=("perf",),
        added_by='Linux kernel commit b0c8fdc7fdb7 ("lockdown: Lock down perf when in confidentiality mode") (in v5.4)',
    ),
    Reason(
        "tracefs", "use of tracefs", _C, "5.4",
        defeats=_KR,
        route='trace output carries kernel addresses and data, and tracefs is where kprobe events and '
        'function arguments are read (fs/tracefs/inode.c; Linux kernel commit ccbd54ff54e8 ("tracefs:'
        ' Restrict tracefs when the kernel is locked down") (in v5.4))',
        checked_in='partly',
        context='opens are checked in the requester, but tracefs_create_file() runs wherever the kernel '
        'creates a tracing file (boot, module load by modprobe), so those files are missing whoever '
        'asks later (fs/tracefs/inode.c tracefs_create_file())',
        config=("CONFIG_TRACING",),
        guards="tracefs file creation and opens",
        breaks="trace-cmd, perf trace, bpftrace/bcc tracepoint formats, powertop, rtla, "
        "rasdaemon",
        remedy="keep tracing hosts at integrity, or an enforcer exception for the agent",
        call_sites="fs/tracefs/inode.c tracefs_create_file(); kernel/trace/trace.c tracing_check_open_get_tr()",
        # Debian 10's backport: ParrotSec/linux-parrot debian/patches/features/all/lockdown/
        # 0031-tracefs-Restrict-tracefs-when-the-kernel-is-locked-d.patch @e20cba76c6c2
        old_logs=("tracefs",),
        added_by='Linux kernel commit ccbd54ff54e8 ("tracefs: Restrict tracefs when the kernel is locked down") (in v5.4)',
    ),
    Reason(
        "xmon_rw", "xmon read and write access", _C, "5.7",
        defeats=_KR,
        route='xmon reads any kernel memory (arch/powerpc/xmon/xmon.c xmon_is_locked_down())',
        checked_in='elsewhere',
        context='xmon runs on the console in the context of the interrupted task (arch/powerpc/xmon/xmon.c '
        'xmon_core())',
        config=("CONFIG_XMON",),  # arch/powerpc/Makefile: drivers-$(CONFIG_XMON) += arch/powerpc/xmon/
        guards="the powerpc xmon debugger",
        breaks="xmon",
        remedy="debug on a machine below confidentiality",
        arch="powerpc",
        call_sites="arch/powerpc/xmon/xmon.c xmon_is_locked_down()",
        added_by='Linux kernel commit 69393cb03ccd ("powerpc/xmon: Restrict when kernel is locked down") (in v5.7)',
    ),
    Reason(
        "xfrm_secret", "xfrm SA secret", _C, "5.11",
        defeats=(),
        route='none beyond the IPsec SA keys themselves: the check only redacts key material in xfrm '
        'netlink messages, no other kernel memory becomes readable (net/xfrm/xfrm_user.c '
        'xfrm_redact(); Linux kernel commit c7a5899eb26e ("xfrm: redact SA secret with lockdown '
        'confidentiality") (in v5.11))',
        checked_in='partly',
        context='dumps are redacted in the dumping program, but SA notifications to multicast listeners are '
        'built in the context of the program that changed the SA (net/xfrm/xfrm_user.c '
        'xfrm_notify_sa() -> copy_to_user_state_extra())',
        config=("CONFIG_XFRM_USER",),
        guards="IPsec SA keys in xfrm netlink dumps (redacted, no error)",
        breaks="scripts that read ESP keys from ip xfrm state, e.g. for Wireshark decryption",
        remedy="export keys from the IKE daemon instead",
        call_sites="net/xfrm/xfrm_user.c xfrm_redact()",
        added_by='Linux kernel commit c7a5899eb26e ("xfrm: redact SA secret with lockdown confidentiality") (in v5.11)',
    ),
)


@dataclass(frozen=True)
class Catalogue:
    """The table merged with one kernel's view of the enum."""

    reasons: tuple[Reason, ...]
    kernel: LockdownEnum | None  # None: no BTF, values are mainline's
    unknown: tuple[tuple[str, int, str], ...] = ()  # (enum name, value, level) BTF has, table lacks

    @property
    def from_btf(self) -> bool:
        return self.kernel is not None

    def get(self, key: str) -> Reason:
        """A reason by id, enum name or value-free spelling; InputError otherwise."""
        reason = self.find(key)
        if reason is None:
            ids = [r.id for r in self.reasons]
            raise InputError(f"unknown lockdown reason {key[:80]!r}{suggest(key, ids)} (valid: {', '.join(ids)})")
        return reason

    def find(self, key: str) -> Reason | None:
        norm = key.strip().lower()
        norm = norm.removeprefix(ENUM_PREFIX.lower())
        for reason in self.reasons:
            if reason.id == norm or ENUM_PREFIX + norm.upper() in reason.aliases:
                return reason
        return None

    def by_log(self, text: str) -> Reason | None:
        """The reason whose kernel string is ``text`` (case-insensitive)."""
        return _by_log().get(text.strip().lower())

    def by_value(self, value: int) -> Reason | None:
        for reason in self.reasons:
            if reason.value == value:
                return reason
        return None

    def at_level(self, level: str) -> tuple[Reason, ...]:
        """Reasons the kernel denies at ``level`` (on this kernel)."""
        rank = level_rank(level)
        return tuple(r for r in self.reasons if r.on_kernel and level_rank(r.level) <= rank)


# The kernel's printk of a denial (security/lockdown/lockdown.c lockdown_is_locked_down()),
# to build example lines from the catalogue; klog/parser.py reads every dialect of it.
DENIAL_FORMAT = "Lockdown: {comm}: {what} is restricted; see man kernel_lockdown.7"


def denial_line(reason: Reason | str, comm: str = "<tool>") -> str:
    """The log line the kernel prints when ``comm`` is denied ``reason`` (a Reason or an id)."""
    if isinstance(reason, str):
        found = next((r for r in TABLE if r.id == reason), None)
        if found is None:
            raise KeyError(reason)
        reason = found
    return DENIAL_FORMAT.format(comm=comm, what=reason.log)


# debugfs, for path exceptions (lockdownctl-policy(5)). The kernel's sysfs offers
# it this mount point (fs/debugfs/inode.c debugfs_init(): sysfs_create_mount_point(
# kernel_kobj, "debug")); tracing/ below it is an automount of tracefs, governed by
# LOCKDOWN_TRACEFS instead (fs/debugfs/inode.c, debugfs_create_automount()).
DEBUGFS_MOUNT = "/sys/kernel/debug"
DEBUGFS_TRACING = DEBUGFS_MOUNT + "/tracing"
# The reason a debugfs open is checked for: fs/debugfs/file.c debugfs_locked_down(),
# called from the proxy ->open after the file_open LSM hook, with only the reason.
DEBUGFS_REASON = "debugfs"
# debugfs files the kernel offers a second time outside debugfs with no lockdown
# check: exempting them gives root nothing the kernel does not already give.
# lib/dynamic_debug.c dynamic_debug_init_control() creates the control file in
# debugfs and with proc_create("control", 0644, proc_mkdir("dynamic_debug", NULL))
# in procfs; neither ddebug_proc_write() nor the parser checks lockdown
# (Linux kernel commit 239a5791ffd5 ("dynamic_debug: allow to work if debugfs is
# disabled") (in v5.7) added the procfs file).
DEBUGFS_UNGATED_TWIN = {DEBUGFS_MOUNT + "/dynamic_debug/control": "/proc/dynamic_debug/control"}


@cache
def _by_log() -> dict[str, Reason]:
    return {r.log.lower(): r for r in TABLE}


@cache
def _by_old_log() -> dict[str, Reason]:
    return {old.lower(): r for r in TABLE for old in r.old_logs}


def reason_from_phrase(what: str) -> tuple[Reason, bool] | None:
    """The table reason printed as ``what`` (case-insensitive), and whether it
    was a pre-5.4 distro phrase (``Reason.old_logs``) rather than ``log``."""
    key = what.strip().lower()
    if (reason := _by_log().get(key)) is not None:
        return reason, False
    if (reason := _by_old_log().get(key)) is not None:
        return reason, True
    return None


def suggest(key: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices`` to a mistyped name, or ''."""
    import difflib

    norm = key.strip().lower().removeprefix(ENUM_PREFIX.lower())[:200]
    close = difflib.get_close_matches(norm, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _version(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def release_layout(release: str | None) -> LockdownEnum:
    """The enum as the ``.0`` release of ``release`` defines it (mainline if None).

    Only a fallback for kernels without BTF: stable series backport new
    reasons (XEN_USER_ACTIONS reached every LTS), which moves the values.
    """
    version = _version(release) if release else None
    members: list[tuple[str, int]] = [("LOCKDOWN_NONE", 0)]
    for level, marker in ((_I, "LOCKDOWN_INTEGRITY_MAX"), (_C, "LOCKDOWN_CONFIDENTIALITY_MAX")):
        for reason in TABLE:
            if reason.level != level or (version is not None and _version(reason.since) > version):  # type: ignore[operator]
                continue
            name = reason.enum
            if version is not None and version < (5, 14) and reason.aliases:
                name = reason.aliases[0]  # renamed in v5.14
            members.append((name, len(members)))
        members.append((marker, len(members)))
    return LockdownEnum(source=f"built-in table for Linux {release or 'mainline'}", members=members)


def merge(kernel: LockdownEnum | None, release: str | None = None) -> Catalogue:
    """Merge the built-in table with a kernel's enum.

    Without BTF (``kernel`` None) the values are those of the table's layout
    for ``release`` and nothing is marked as known to be on the kernel.
    """
    if kernel is None:
        layout = merge(release_layout(release))
        # XSA-482's LOCKDOWN_XEN_USER_ACTIONS (v7.0) was inserted before INTEGRITY_MAX and
        # backported into stable series (6.1.167, 6.12.78), and a release string cannot say
        # whether a kernel has it (Debian's "6.1.0-57-amd64" hides its stable level): a
        # value that differs with and without it is unknown, never guessed.
        names = [n for n, _ in release_layout(release).members]
        if "LOCKDOWN_XEN_USER_ACTIONS" not in names:
            names.insert(names.index("LOCKDOWN_INTEGRITY_MAX"), "LOCKDOWN_XEN_USER_ACTIONS")
        backported = merge(LockdownEnum("backported", [(n, v) for v, n in enumerate(names)]))
        same = {r.id for r in layout.reasons if r.value == backported.get(r.id).value}
        return Catalogue(reasons=tuple(replace(r, on_kernel=False, value=r.value if r.id in same else None)
                                       for r in layout.reasons), kernel=None)
    known = {name: r for r in TABLE for name in (r.enum, *r.aliases)}
    out: list[Reason] = []
    unknown: list[tuple[str, int, str]] = []
    seen = set()
    for name, value in kernel.reasons():
        level = kernel.level_of(value) or ""
        known_reason = known.get(name)
        if known_reason is None:
            unknown.append((name, value, level))
            continue
        reason = known_reason
        seen.add(reason.enum)
        out.append(replace(reason, value=value, level=level, on_kernel=True))
    out.extend(replace(r, value=None, on_kernel=False) for r in TABLE if r.enum not in seen)
    return Catalogue(reasons=tuple(out), kernel=kernel, unknown=tuple(unknown))


def catalogue(btf_path: str | Path | None = None, root: Path | str = "/") -> Catalogue:
    """The catalogue for the kernel whose BTF is at ``btf_path`` (default: running).

    A missing BTF file is not an error (older or BTF-less kernels): the table's
    mainline values are used and ``from_btf`` is False. A malformed one is.
    """
    from .root import Root

    # The running kernel's BTF is read through Root: links in a --root tree stay inside it.
    path = Path(btf_path) if btf_path is not None else Path(Root(root) / VMLINUX_BTF)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if btf_path is not None:
            raise InputError(f"{path}: no such BTF file") from None
        return merge(None, Root(root).osrelease())
    except OSError as exc:
        raise InputError(f"{path}: cannot read BTF: {exc.strerror}") from None
    return merge(parse_lockdown_enum(data, str(path)))
