"""Rebuild the fixture roots of ``lockdownctl check`` (tests/unit/test_check.py).

    python3 tests/data/check/make_fixtures.py     # as root on Debian 12, see README.md

One root per detector, ``<detector>/positive`` (every trigger the detector
knows, from real files) and ``<detector>/negative`` (the same kind of host,
nothing that breaks). Real files come from the Debian packages installed here
(linux-image-6.1.0-56-amd64 modules, systemd's logind.conf) or fetched with
``apt-get download`` (kexec-tools, kdump-tools, rasdaemon, setserial,
msr-tools); what the kernel itself writes (/proc, sysfs, the kernel log) is
written in the kernel's own format, with the source function named.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASE = "6.1.0-56-amd64"
MODULES = Path("/lib/modules") / RELEASE / "kernel"
DEBS = ("kexec-tools", "kdump-tools", "rasdaemon", "setserial")


def w(root: Path, rel: str, content: str | bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(mode)


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)


def base(root: Path, cmdline: str = "") -> None:
    """What every root has: release, command line, an empty taint mask."""
    w(root, "proc/sys/kernel/osrelease", RELEASE + "\n")
    w(
        root,
        "proc/cmdline",
        f"BOOT_IMAGE=/boot/vmlinuz-{RELEASE} root=UUID=3f1c2a7e-5b0d-4a7e-9c51-2f6b1d0e8a11 ro quiet"
        + (" " + cmdline if cmdline else "")
        + "\n",
    )
    w(root, "proc/sys/kernel/tainted", "0\n")
    w(root, "sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
    w(root, "sys/kernel/security/lsm", "lockdown,capability,landlock,yama,apparmor,tomoyo,bpf")


def process(root: Path, pid: int, comm: str, exe: str, fds: dict[int, tuple[str, str]], maps: str = "") -> None:
    """A /proc/PID: fds are (target, fdinfo flags in octal as the kernel prints them)."""
    w(root, f"proc/{pid}/comm", comm + "\n")
    link(root, f"proc/{pid}/exe", exe)
    w(root, f"proc/{pid}/maps", maps)
    for fd, (target, flags) in fds.items():
        link(root, f"proc/{pid}/fd/{fd}", target)
        w(root, f"proc/{pid}/fdinfo/{fd}", f"pos:\t0\nflags:\t{flags}\nmnt_id:\t25\nino:\t1029\n")


def dpkg(root: Path, packages: list[str]) -> None:
    """var/lib/dpkg/status stanzas from apt-cache show (real control data), marked installed."""
    stanzas = []
    for name in packages:
        shown = subprocess.run(["apt-cache", "show", name], capture_output=True, text=True, check=True).stdout
        fields = [
            ln
            for ln in shown.split("\n\n")[0].splitlines()
            if ln.split(":", 1)[0] in ("Package", "Version", "Architecture", "Maintainer", "Description")
        ]
        fields.insert(1, "Status: install ok installed")
        stanzas.append("\n".join(fields))
    w(root, "var/lib/dpkg/status", "\n\n".join(stanzas) + "\n")


def unsigned_copy(module: Path, work: Path) -> bytes:
    """A signed Debian module without its signature: objcopy rewrites the ELF
    and drops the appended signature, which lies outside every section (the
    kernel docs: signed modules "MAY NOT be stripped once the signature is computed")."""
    out = work / (module.name + ".unsigned")
    subprocess.run(["objcopy", str(module), str(out)], check=True)
    data = out.read_bytes()
    assert not data.endswith(b"~Module signature appended~\n")
    return data


def fetch_debs(work: Path) -> Path:
    extract = work / "x"
    subprocess.run(["apt-get", "download", *DEBS], cwd=work, check=True, capture_output=True)
    for deb in work.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(extract)], check=True)
    return extract


def keys_line(serial: int, desc: str) -> str:
    # security/keys/proc.c proc_keys_show(): id, flags, usage, timeout, perm, uid, gid, type (9 chars), description
    return f"{serial:08x} I------     1 perm 1f030000     0     0 asymmetri {desc}: X509.rsa {desc[-8:]} []\n"


BUILTIN_KEYRING = "0206c755 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: 1\n"


def modules(root: Path, work: Path, positive: bool) -> None:
    mods = f"lib/modules/{RELEASE}"
    crc7 = MODULES / "lib/crc7.ko"
    if positive:
        base(root, "parport_pc.io=0x378")
        w(root, f"{mods}/extra/crc7.ko", unsigned_copy(crc7, work))
        w(
            root,
            f"{mods}/updates/dkms/cordic.ko.zst",
            subprocess.run(
                ["zstd", "-q", "-c"],
                input=unsigned_copy(MODULES / "lib/math/cordic.ko", work),
                capture_output=True,
                check=True,
            ).stdout,
        )
        w(root, f"{mods}/misc/crc16.ko.gz", gzip.compress(unsigned_copy(MODULES / "lib/crc16.ko", work), mtime=0))
        # Signed by Debian's build key, which this (fixture) kernel's keyrings do not hold.
        w(
            root,
            f"{mods}/extra/crc-itu-t.ko.xz",
            lzma.compress((MODULES / "lib/crc-itu-t.ko").read_bytes(), check=lzma.CHECK_CRC32),
        )
        w(
            root,
            "proc/keys",
            BUILTIN_KEYRING + keys_line(0x1A2B3C4D, "Debian Secure Boot CA: 6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1"),
        )
        # kernel/module/main.c m_show() with module_flags(): "(OE)"
        w(
            root,
            "proc/modules",
            "crc7 12288 0 - Live 0x0000000000000000 (OE)\ncordic 12288 0 - Live 0x0000000000000000\n",
        )
        w(root, "proc/sys/kernel/tainted", "12288\n")
        w(root, "etc/modules-load.d/crc7.conf", "# load the CRC7 helper at boot\ncrc7\n")
        w(root, "etc/modprobe.d/ipmi.conf", "# BMC on a fixed KCS port\noptions ipmi_si type=kcs ports=0xca2\n")
        w(root, "etc/modprobe.d/force.conf", "install cordic /sbin/modprobe --ignore-install --force cordic\n")
        # dkms add layout: /var/lib/dkms/<module>/<version>/source -> the source tree with dkms.conf
        w(
            root,
            "var/lib/dkms/cordic/1.0/source/dkms.conf",
            'PACKAGE_NAME="cordic"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="cordic"\n'
            'DEST_MODULE_LOCATION[0]="/updates/dkms"\nAUTOINSTALL="yes"\n',
        )
        # kernel/module/signing.c / main.c: pr_notice_once("%s: module verification failed: ...")
        w(
            root,
            "dev/kmsg",
            "[    4.113205] crc7: loading out-of-tree module taints kernel.\n"
            "[    4.113231] crc7: module verification failed: signature and/or required key missing - tainting kernel\n",
        )
    else:
        base(root)
        w(root, f"{mods}/extra/crc7.ko", crc7.read_bytes())  # Debian-signed, key in the keyrings below
        w(root, f"{mods}/kernel/lib/crc16.ko", unsigned_copy(MODULES / "lib/crc16.ko", work))  # in-tree: not scanned
        w(
            root,
            "proc/keys",
            BUILTIN_KEYRING
            + keys_line(0x1A2B3C4D, "Build time autogenerated kernel key: 66f54e1566a043cc3030420e181cf850fb9f42ac"),
        )
        w(root, "proc/modules", "crc7 12288 0 - Live 0x0000000000000000\n")
        w(root, "etc/modules-load.d/crc7.conf", "crc7\n")
        w(root, "etc/modprobe.d/snd.conf", "options snd-hda-intel power_save=1\n")
        w(root, "dev/kmsg", "[    0.000000] Linux version 6.1.0-56-amd64\n")


def hibernation(root: Path, work: Path, positive: bool) -> None:
    logind = Path("/etc/systemd/logind.conf").read_text()  # systemd 252 (Debian 12), all commented out
    w(root, "etc/systemd/logind.conf", logind)
    if positive:
        base(root, "resume=UUID=0c6e1f2a-8d3b-4f6e-a1c9-5e7d2b4f9a30 resume_offset=34816")
        w(root, "sys/power/resume", "254:2\n")
        w(root, "etc/initramfs-tools/conf.d/resume", "RESUME=UUID=0c6e1f2a-8d3b-4f6e-a1c9-5e7d2b4f9a30\n")
        w(root, "etc/systemd/logind.conf.d/lid.conf", "[Login]\nHandleLidSwitch=hibernate\n")
        w(root, "etc/systemd/sleep.conf.d/hibernate.conf", "[Sleep]\nHibernateDelaySec=45min\n")
        # systemd's sleep.c writes HibernateLocation as JSON; efivarfs adds the 4-byte attributes
        w(
            root,
            "sys/firmware/efi/efivars/HibernateLocation-8cf2644b-4b0b-428f-9387-6d876050dc67",
            b"\x07\x00\x00\x00"
            + b'{"uuid":"0c6e1f2a-8d3b-4f6e-a1c9-5e7d2b4f9a30","offset":34816,"kernelVersion":"'
            + RELEASE.encode()
            + b'"}',
        )
        # A real swap header (mkswap), signature replaced as kernel/power/swap.c mark_swapfiles() does.
        img = work / "swap.img"
        img.write_bytes(bytes(1 << 16))
        subprocess.run(["mkswap", "-q", "-U", "0c6e1f2a-8d3b-4f6e-a1c9-5e7d2b4f9a30", str(img)], check=True)
        page = bytearray(img.read_bytes()[:4096])
        assert page[4086:4096] == b"SWAPSPACE2"
        page[4086:4096] = b"S1SUSPEND\x00"
        w(root, "dev/block/254:2", bytes(page))
    else:
        base(root)
        w(root, "sys/power/resume", "0:0\n")


def kexec(root: Path, x: Path, positive: bool) -> None:
    postinst = subprocess.run(
        ["dpkg-deb", "-e", str(next(x.parent.glob("kexec-tools_*.deb"))), str(x.parent / "kexec-ctl")], check=True
    )
    assert postinst.returncode == 0
    template = (x.parent / "kexec-ctl/postinst").read_text()
    default = template.split("<<'EOFMAGICNUMBER1234'\n", 1)[1].split("EOFMAGICNUMBER1234", 1)[0]
    if positive:
        base(root, "crashkernel=384M-:128M")
        w(root, "etc/default/kexec", default.replace("LOAD_KEXEC=false", "LOAD_KEXEC=true"))
        w(root, "etc/default/kdump-tools", (x / "usr/share/kdump-tools/kdump-tools.conf").read_text())
        w(root, "lib/systemd/system/kdump-tools.service", (x / "lib/systemd/system/kdump-tools.service").read_text())
        link(
            root, "etc/systemd/system/basic.target.wants/kdump-tools.service", "/lib/systemd/system/kdump-tools.service"
        )
        w(root, "sys/kernel/kexec_crash_loaded", "1\n")
        w(root, "sys/kernel/kexec_loaded", "1\n")
    else:
        base(root)
        w(root, "etc/default/kexec", default)
        w(root, "sys/kernel/kexec_crash_loaded", "0\n")
        w(root, "sys/kernel/kexec_loaded", "0\n")


PORT_UNIT = """[Unit]
Description=Read the POST code port at boot (planted trigger: opens /dev/port)

[Service]
Type=oneshot
ExecStart=/bin/dd if=/dev/port of=/dev/null bs=1 count=1 skip=128

[Install]
WantedBy=multi-user.target
"""


def hardware(root: Path, x: Path, positive: bool) -> None:
    if positive:
        base(root, "msr.allow_writes=on")
        # fdinfo flags: O_RDWR|O_LARGEFILE = 0100002 (what open("/dev/cpu/0/msr", O_RDWR) shows)
        process(root, 812, "intel-undervolt", "/usr/bin/intel-undervolt", {3: ("/dev/cpu/0/msr", "0100002")})
        process(
            root,
            901,
            "flashrom",
            "/usr/sbin/flashrom",
            {4: ("/dev/mem", "0100002")},
            "7f3a1c000000-7f3a1c001000 rw-s 000f0000 00:05 4 /dev/mem\n",
        )
        process(
            root,
            944,
            "dpdk-testpmd",
            "/usr/bin/dpdk-testpmd",
            {},
            "7f00aa000000-7f00ab000000 rw-s 00000000 00:15 20511 /sys/devices/pci0000:00/0000:00:03.0/resource0\n",
        )
        w(root, "etc/systemd/system/port-probe.service", PORT_UNIT)
        link(
            root,
            "etc/systemd/system/multi-user.target.wants/port-probe.service",
            "/etc/systemd/system/port-probe.service",
        )
        link(root, "sys/bus/pci/drivers/uio_pci_generic/0000:00:03.0", "../../../../devices/pci0000:00/0000:00:03.0")
        w(
            root,
            "etc/rc.local",
            "#!/bin/sh -e\n# disable ASPM L1 on the modem\nsetpci -s 00:1c.0 0x50.B=0x40\nexit 0\n",
            0o755,
        )
        w(root, "etc/serial.conf", "/dev/ttyS2 uart 16550A port 0x3e8 irq 5\n")
        w(
            root,
            "lib/systemd/system/etc-setserial.service",
            (x / "lib/systemd/system/etc-setserial.service").read_text(),
        )
        # arch/x86/kernel/msr.c filter_write(): pr_warn_ratelimited("Write to unrecognized MSR 0x%x by %s (pid: %d).\n")
        w(
            root,
            "dev/kmsg",
            "[  101.482113] msr: Write to unrecognized MSR 0x150 by intel-undervol (pid: 812).\n"
            "[  101.482120] msr: See https://git.kernel.org/pub/scm/linux/kernel/git/tip/tip.git/about for details.\n",
        )
        dpkg(root, ["msr-tools", "setserial"])
    else:
        base(root)
        # turbostat reads MSRs: O_RDONLY|O_LARGEFILE, keeps working under lockdown
        process(root, 700, "turbostat", "/usr/sbin/turbostat", {3: ("/dev/cpu/0/msr", "0100000")})
        w(root, "lib/systemd/system/rasdaemon.service", (x / "lib/systemd/system/rasdaemon.service").read_text())
        w(root, "dev/kmsg", "[    0.000000] Linux version 6.1.0-56-amd64\n")
        dpkg(root, ["kmod"])


def debug(root: Path, x: Path, positive: bool) -> None:
    t = "sys/kernel/tracing"
    if positive:
        base(root)
        process(
            root,
            1201,
            "dyndbg-helper",
            "/usr/local/bin/dyndbg-helper",
            {5: ("/sys/kernel/debug/dynamic_debug/control", "0100002")},
        )
        process(root, 1202, "trace-cmd", "/usr/bin/trace-cmd", {3: ("/sys/kernel/tracing/trace_pipe", "0100000")})
        process(root, 1203, "crash", "/usr/bin/crash", {3: ("/proc/kcore", "0100000")})
        w(
            root,
            "etc/tmpfiles.d/sched.conf",
            "# lower scheduler latency\nw /sys/kernel/debug/sched/latency_ns - - - - 1000000\n",
        )
        w(root, "etc/modprobe.d/ec_sys.conf", "options ec_sys write_support=1\n")
        w(root, "lib/systemd/system/rasdaemon.service", (x / "lib/systemd/system/rasdaemon.service").read_text())
        link(
            root,
            "etc/systemd/system/multi-user.target.wants/rasdaemon.service",
            "/lib/systemd/system/rasdaemon.service",
        )
        # kernel/trace/trace_kprobe.c trace_kprobe_show(): "p:kprobes/<event> <symbol>"
        w(root, f"{t}/kprobe_events", "p:kprobes/p_do_sys_openat2_0 do_sys_openat2\n")
        w(root, f"{t}/current_tracer", "function\n")
        w(root, f"{t}/set_event", "sched:sched_switch\n")
        w(root, f"{t}/uprobe_events", "")
        w(root, f"{t}/instances/perf-session/current_tracer", "nop\n")  # an instance is a tracefs subtree
        dpkg(root, ["trace-cmd"])
    else:
        base(root)
        w(root, f"{t}/kprobe_events", "")
        w(root, f"{t}/current_tracer", "nop\n")
        w(root, f"{t}/set_event", "")
        w(root, "etc/tmpfiles.d/home.conf", "q /home 0755 - - -\n")
        process(root, 1300, "sshd", "/usr/sbin/sshd", {3: ("/dev/null", "0100002")})


def bpf(root: Path, x: Path, positive: bool) -> None:
    base(root)

    # kernel/bpf/syscall.c bpf_prog_show_fdinfo()
    def prog(prog_type: int, prog_id: int) -> str:
        return (
            f"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t{prog_type}\nprog_jited:\t1\n"
            f"prog_tag:\t5c1f9c3c2a7b8e11\nmemlock:\t4096\nprog_id:\t{prog_id}\nrun_time_ns:\t0\nrun_cnt:\t0\n"
            "recursion_misses:\t0\nverified_insns:\t54\n"
        )

    pid = 1500
    process(
        root,
        pid,
        "bpftrace" if positive else "systemd",
        "/usr/bin/bpftrace" if positive else "/lib/systemd/systemd",
        {7: ("anon_inode:bpf-prog", "02000002")},
    )
    # BPF_PROG_TYPE_KPROBE = 2; BPF_PROG_TYPE_CGROUP_SKB = 8 (systemd's IP accounting)
    w(root, f"proc/{pid}/fdinfo/7", prog(2 if positive else 8, 42))
    if positive:
        dpkg(root, ["bpftrace"])


def acpi(root: Path, x: Path, positive: bool) -> None:
    if positive:
        base(root, "acpi_rsdp=0x7ffe0014")
        w(root, "proc/sys/kernel/tainted", "256\n")
        # drivers/acpi/tables.c acpi_table_initrd_override(): "Table Upgrade: override [%4.4s-%6.6s-%8.8s]"
        w(
            root,
            "dev/kmsg",
            "[    0.010311] ACPI: Table Upgrade: override [DSDT-LENOVO-TP-N23  ]\n"
            "[    0.010316] ACPI: DSDT 0x000000007FE27000 Physical table override, new table: 0x000000007FE1B000\n",
        )
    else:
        base(root)
        w(root, "dev/kmsg", "[    0.010311] ACPI: DSDT 0x000000007FE27000 01A7A2 (v02 LENOVO TP-N23   00001460)\n")


def kgdb(root: Path, x: Path, positive: bool) -> None:
    base(root, "kgdboc=ttyS0,115200 kgdbwait" if positive else "console=ttyS0,115200")


def xfrm(root: Path, x: Path, positive: bool) -> None:
    base(root)
    if positive:
        w(root, "etc/cron.d/esp-keys", "*/10 * * * * root ip -s xfrm state > /var/lib/esp-keys/latest\n")
        dpkg(root, ["strongswan-charon"])
    else:
        dpkg(root, ["kmod"])


def kernel_log(root: Path, x: Path, positive: bool) -> None:
    base(root)
    guests = HERE.parent / "guests"
    level = "6.12-integrity" if positive else "6.12-none"
    lines = [ln for ln in (guests / level / "dmesg.txt").read_text().splitlines() if not ln.startswith("#")]
    w(root, "dev/kmsg", "\n".join(lines) + "\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x = fetch_debs(work)
        for name, build in (
            ("modules", modules),
            ("hibernation", hibernation),
            ("kexec", kexec),
            ("hardware", hardware),
            ("debug", debug),
            ("bpf", bpf),
            ("acpi", acpi),
            ("kgdb", kgdb),
            ("xfrm", xfrm),
            ("kernel-log", kernel_log),
        ):
            for case in ("positive", "negative"):
                root = HERE / name / case
                shutil.rmtree(root, ignore_errors=True)
                root.mkdir(parents=True)
                build(root, work if name in ("modules", "hibernation") else x, case == "positive")


if __name__ == "__main__":
    main()
