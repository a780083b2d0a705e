"""Direct hardware access from user space: MSR writes, /dev/mem and
/dev/port, ioperm/iopl, PCI config writes and BAR mappings, serial port
reconfiguration, /dev/efi_test.

Kernel: arch/x86/kernel/msr.c msr_write()/msr_ioctl() (LOCKDOWN_MSR);
drivers/char/mem.c open_port() (LOCKDOWN_DEV_MEM); arch/x86/kernel/ioport.c
ksys_ioperm()/SYSCALL iopl (LOCKDOWN_IOPORT); drivers/pci/pci-sysfs.c
pci_write_config()/pci_mmap_resource() and drivers/pci/proc.c
(LOCKDOWN_PCI_ACCESS); drivers/tty/serial/serial_core.c uart_set_info()
(LOCKDOWN_TIOCSSERIAL); drivers/firmware/efi/test/efi_test.c (LOCKDOWN_EFI_TEST).
"""

from __future__ import annotations

import re

from ..host.modules import ConfLine, read_conf_lines
from ..reasons import denial_line
from .common import package_findings, proc_findings, tool_findings
from .engine import Context, Evidence, Finding, exception_yaml

NAME = "hardware"

# The log lines are built from the catalogue (reasons.denial_line), never typed.
MSR_SYMPTOM = (
    "MSR writes fail with 'Operation not permitted' (reads still work): undervolting, power-limit "
    "and TDP tools stop working; log: " + denial_line("msr")
)
DEVMEM_SYMPTOM = (
    "open of {what} fails with 'Operation not permitted'; log: " + denial_line("dev_mem")
)
IOPORT_SYMPTOM = "ioperm()/iopl() fail with 'Operation not permitted' ('Could not get I/O privileges')"
PCI_SYMPTOM = (
    "PCI config writes and BAR mmap fail with 'Operation not permitted' (pcilib: sysfs_write: write "
    "failed; DPDK: Cannot set up bus mastering)"
)

MSR_TOOLS = re.compile(
    r"(^|[/\s])(wrmsr|intel-undervolt|undervolt|throttled|lenovo_fix(\.py)?|amdctl|zenstates(\.py)?"
    r"|ryzenadj|x86_energy_perf_policy|pcm(-\w+)?)(\s|$)"
)
DEVMEM_TOOLS = re.compile(
    r"(/dev/(mem|kmem|port)\b|(^|[/\s])(devmem2?|flashrom|cbmem|superiotool|inteltool"
    r"|isadump|isaset|smbios-thermal-ctl|memtester)(\s|$))"
)
IOPORT_TOOLS = re.compile(r"((^|[/\s])(ectool|intelmetool|outb|inb|ioport)(\s|$)|hwclock\s.*--directisa)")
SETPCI_WRITE = re.compile(r"(^|[/\s])setpci\s[^#]*\S=\S")

PACKAGES = {
    "msr-tools": ("msr", "/usr/sbin/wrmsr", MSR_SYMPTOM),
    "intel-undervolt": ("msr", "/usr/bin/intel-undervolt", MSR_SYMPTOM),
    "throttled": ("msr", "/usr/bin/throttled", MSR_SYMPTOM),
    "ryzenadj": ("pci_access", "/usr/bin/ryzenadj", PCI_SYMPTOM),
    "flashrom": ("dev_mem", "/usr/sbin/flashrom", DEVMEM_SYMPTOM.format(what="/dev/mem")),
    "coreboot-utils": ("dev_mem", "/usr/sbin/cbmem", DEVMEM_SYMPTOM.format(what="/dev/mem")),
    "libsmbios-bin": ("dev_mem", "/usr/sbin/smbios-thermal-ctl", DEVMEM_SYMPTOM.format(what="/dev/mem")),
    "memtester": ("dev_mem", "/usr/sbin/memtester", DEVMEM_SYMPTOM.format(what="/dev/mem")),
    "linuxcnc-uspace": ("ioport", "/usr/bin/rtapi_app", IOPORT_SYMPTOM),
    "dpdk": ("pci_access", "", PCI_SYMPTOM),
    "setserial": ("tiocsserial", "/bin/setserial", "setserial fails: Cannot set serial info: Operation not permitted"),
    "fwts": ("efi_test", "/usr/bin/fwts", "FWTS UEFI runtime-service tests fail"),
}


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    out += _msr(ctx)
    out += proc_findings(
        ctx, NAME, "dev_mem", re.compile(r"^/dev/(mem|kmem|port)$"), "/dev/mem, /dev/kmem or /dev/port", DEVMEM_SYMPTOM
    )
    out += tool_findings(
        ctx,
        NAME,
        "dev_mem",
        DEVMEM_TOOLS,
        "a /dev/mem or /dev/port user",
        DEVMEM_SYMPTOM.format(what="/dev/mem or /dev/port"),
    )
    out += _devmem_log(ctx)
    out += tool_findings(ctx, NAME, "ioport", IOPORT_TOOLS, "an I/O port tool", IOPORT_SYMPTOM)
    out += _pci(ctx)
    out += proc_findings(
        ctx, NAME, "efi_test", re.compile(r"^/dev/efi_test$"), "/dev/efi_test", "FWTS UEFI runtime-service tests fail"
    )
    out += _serial(ctx)
    out += package_findings(ctx, NAME, PACKAGES)
    return out


def _msr(ctx: Context) -> list[Finding]:
    out = proc_findings(
        ctx, NAME, "msr", re.compile(r"^/dev/cpu/\d+/msr$"), "an MSR device", MSR_SYMPTOM, write_only=True
    )
    out += tool_findings(ctx, NAME, "msr", MSR_TOOLS, "an MSR writer", MSR_SYMPTOM)
    for rel in ("etc/intel-undervolt.conf", "etc/throttled.conf", "etc/lenovo_fix.conf"):
        lines = read_conf_lines(ctx.root, rel)
        if lines:
            tool = rel.rsplit("/", 1)[1].split(".")[0]
            out.append(
                ctx.finding(
                    NAME,
                    "msr",
                    "likely",
                    f"{tool} is configured",
                    [Evidence("file", lines[0].where, lines[0].text)],
                    MSR_SYMPTOM,
                    policy=exception_yaml(["msr"], exe=f"/usr/bin/{tool}"),
                    path=ctx.root.display(rel),
                )
            )
    cmdline = ctx.cmdline
    if cmdline is not None and cmdline.last("msr.allow_writes") in ("on", "1"):
        out.append(
            ctx.finding(
                NAME,
                "msr",
                "likely",
                "msr.allow_writes=on: MSR writes are expected on this host",
                [Evidence("cmdline", cmdline.path, f"msr.allow_writes={cmdline.last('msr.allow_writes')}")],
                MSR_SYMPTOM,
            )
        )
    allow = ctx.root.read_text("sys/module/msr/parameters/allow_writes")
    if isinstance(allow, str) and allow.strip() == "on":
        out.append(
            ctx.finding(
                NAME,
                "msr",
                "likely",
                "MSR writes are allowed (allow_writes=on)",
                [Evidence("sysfs", ctx.root.display("sys/module/msr/parameters/allow_writes"), "on")],
                MSR_SYMPTOM,
            )
        )
    # arch/x86/kernel/msr.c filter_write(): "Write to unrecognized MSR 0x%x by %s (pid: %d)."
    seen: set[str] = set()
    for line in ctx.log:
        m = re.search(r"msr: Write to unrecognized MSR (0x[0-9a-f]+) by (.+?)(?: \(pid: (\d+)\))?\.?$", line.text)
        if m and m.group(2) not in seen:
            seen.add(m.group(2))
            out.append(
                ctx.finding(
                    NAME,
                    "msr",
                    "breaks",
                    f"{m.group(2)} writes MSRs (MSR {m.group(1)})",
                    [ctx.log_evidence(line)],
                    MSR_SYMPTOM,
                    comm=m.group(2),
                )
            )
    return out


def _devmem_log(ctx: Context) -> list[Finding]:
    """arch/x86/mm/pat/memtype.c range_is_allowed(): ``Program %s tried to access /dev/mem between ...``."""
    out = []
    seen: set[str] = set()
    for line in ctx.log:
        m = re.search(r"Program (\S+) tried to access /dev/mem", line.text)
        if m and m.group(1) not in seen:
            seen.add(m.group(1))
            out.append(
                ctx.finding(
                    NAME,
                    "dev_mem",
                    "breaks",
                    f"{m.group(1)} reads /dev/mem",
                    [ctx.log_evidence(line)],
                    DEVMEM_SYMPTOM.format(what="/dev/mem"),
                    comm=m.group(1),
                )
            )
    return out


def _pci(ctx: Context) -> list[Finding]:
    out = proc_findings(
        ctx, NAME, "pci_access", re.compile(r"/(resource\d+(_wc)?)$|^/proc/bus/pci/"), "a PCI BAR", PCI_SYMPTOM
    )
    out += proc_findings(
        ctx, NAME, "pci_access", re.compile(r"^/sys/\S+/config$"), "PCI config space", PCI_SYMPTOM, write_only=True
    )
    for driver in ("uio_pci_generic", "igb_uio"):
        rel = f"sys/bus/pci/drivers/{driver}"
        bound = [d for d in ctx.root.listdir(rel) if re.match(r"^[0-9a-f]{4}:", d)]
        if bound:
            out.append(
                ctx.finding(
                    NAME,
                    "pci_access",
                    "breaks",
                    f"devices bound to {driver}: {', '.join(bound)}",
                    [Evidence("sysfs", ctx.root.display(f"{rel}/{bound[0]}"), f"{len(bound)} device(s)")],
                    PCI_SYMPTOM,
                    "bind the devices to vfio-pci (VFIO keeps working under lockdown)",
                    driver=driver,
                )
            )
    out += tool_findings(ctx, NAME, "pci_access", SETPCI_WRITE, "setpci writes", PCI_SYMPTOM)
    for line in _udev_hits(ctx, SETPCI_WRITE):
        out.append(
            ctx.finding(
                NAME,
                "pci_access",
                "breaks",
                "a udev rule runs setpci writes",
                [Evidence("file", line.where, line.text)],
                PCI_SYMPTOM,
            )
        )
    return out


def _udev_hits(ctx: Context, pattern: re.Pattern[str]) -> list[ConfLine]:
    from ..host.systemd import read_udev_rules

    return [line for line in read_udev_rules(ctx.root) if pattern.search(line.text)]


def _serial(ctx: Context) -> list[Finding]:
    out = []
    for rel in ("etc/serial.conf", "var/lib/setserial/autoserial.conf"):
        for line in read_conf_lines(ctx.root, rel):
            if re.search(r"\b(port|irq)\s+\S+", line.text):
                out.append(
                    ctx.finding(
                        NAME,
                        "tiocsserial",
                        "breaks",
                        "setserial changes a port's I/O address or IRQ",
                        [Evidence("file", line.where, line.text)],
                        "setserial fails: Cannot set serial info: Operation not permitted",
                        policy=exception_yaml(["tiocsserial"], exe="/bin/setserial"),
                    )
                )
    return out
