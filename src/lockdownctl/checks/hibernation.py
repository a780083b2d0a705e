"""Hibernation: resume configured, hibernate actions, a pending image.

Kernel: kernel/power/hibernate.c hibernation_available() asks for
LOCKDOWN_HIBERNATION; hibernate() and the boot-time resume
(software_resume_initcall()) both stop there, so a locked-down kernel neither
hibernates nor resumes, and a pending image is lost.
"""

from __future__ import annotations

import re

from ..errors import InputError
from ..host.modules import read_conf_lines
from ..host.systemd import read_conf
from .engine import Context, Evidence, Finding, reason_yaml

NAME = "hibernation"
HIBERNATE_LOCATION = "sys/firmware/efi/efivars/HibernateLocation-8cf2644b-4b0b-428f-9387-6d876050dc67"
SWSUSP_SIGS = (b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"LINHIB0001")
SYMPTOM = (
    "systemctl hibernate fails ('Sleep verb \"hibernate\" not supported'), hibernate menu entries vanish, "
    "and at boot the kernel refuses to resume: a pending hibernation image is discarded"
)
HIBERNATE_ACTIONS = ("hibernate", "hybrid-sleep", "suspend-then-hibernate")
LOGIND_KEYS = re.compile(r"^(Handle\w+|IdleAction)$")


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    policy = reason_yaml("hibernation")

    def add(confidence: str, title: str, ev: list[Evidence], symptom: str = SYMPTOM) -> None:
        out.append(ctx.finding(NAME, "hibernation", confidence, title, ev, symptom, policy=policy))

    cmdline = ctx.cmdline
    if cmdline is not None:
        for key in ("resume", "resume_offset"):
            for value in cmdline.values(key):
                add(
                    "breaks",
                    f"{key}= on the kernel command line: hibernation and resume are configured",
                    [Evidence("cmdline", cmdline.path, f"{key}={value}")],
                )
    device = _resume_device(ctx)
    if device is not None and device != "0:0":
        ev = [Evidence("sysfs", ctx.root.display("sys/power/resume"), device)]
        image = _pending_image(ctx, device)
        if image:
            ev.append(image)
            add(
                "breaks",
                "a hibernation image is waiting on the resume device",
                ev,
                "the pending image is discarded at the next boot with lockdown: resume (or discard) it first",
            )
        else:
            add("breaks", "a resume device is set", ev)
    for rel in ("etc/initramfs-tools/conf.d/resume", "etc/uswsusp.conf"):
        for line in read_conf_lines(ctx.root, rel):
            if re.match(r"^(RESUME|resume device)\s*[=:]\s*(?!none)", line.text, re.I):
                add(
                    "breaks",
                    "the initramfs is configured to resume from hibernation",
                    [Evidence("file", line.where, line.text)],
                )
    for d in ("etc/dracut.conf.d",):
        for name in ctx.root.listdir(d):
            for line in read_conf_lines(ctx.root, f"{d}/{name}"):
                if "resume" in line.text and "dracutmodules" in line.text and "omit" not in line.text:
                    add("likely", "dracut adds the resume module", [Evidence("file", line.where, line.text)])
    for line in read_conf_lines(ctx.root, "etc/mkinitcpio.conf"):
        if line.text.startswith("HOOKS") and re.search(r"\bresume\b", line.text):
            add("likely", "mkinitcpio has the resume hook", [Evidence("file", line.where, line.text)])
    for s in read_conf(ctx.root, "logind.conf"):
        if LOGIND_KEYS.match(s.key) and s.value in HIBERNATE_ACTIONS:
            add("breaks", f"logind hibernates on {s.key}", [Evidence("file", s.where, s.text)])
    for s in read_conf(ctx.root, "sleep.conf"):
        if (
            s.key in ("AllowHibernation", "AllowHybridSleep", "AllowSuspendThenHibernate")
            and s.value.lower() in ("yes", "true", "1", "on")
        ) or s.key == "HibernateDelaySec":
            add("likely", f"sleep.conf enables hibernation ({s.key})", [Evidence("file", s.where, s.text)])
    data = ctx.root.read_bytes(HIBERNATE_LOCATION)
    if isinstance(data, bytes):
        add(
            "breaks",
            "EFI variable HibernateLocation is set: systemd hibernated and expects to resume",
            [Evidence("efivar", ctx.root.display(HIBERNATE_LOCATION), data[4:].decode("utf-8", "replace")[:200])],
            "the hibernation image systemd wrote is discarded at the next boot with lockdown: resume it first",
        )
    for hit in ctx.proc_hits:
        if hit.path == "/dev/snapshot":
            out.append(
                ctx.finding(
                    NAME,
                    "hibernation",
                    "breaks",
                    f"{hit.comm} (pid {hit.pid}) has /dev/snapshot open",
                    [Evidence("process", hit.where, f"{hit.path}; exe {hit.exe}")],
                    "uswsusp s2disk/resume fail",
                    policy=policy,
                    pid=hit.pid,
                    exe=hit.exe,
                )
            )
    return out


def _resume_device(ctx: Context) -> str | None:
    """``MAJOR:MINOR`` from /sys/power/resume (kernel/power/hibernate.c resume_show())."""
    text = ctx.root.read_text("sys/power/resume")
    if not isinstance(text, str) or not text.strip():
        return None
    device = text.strip()
    major, colon, minor = device.partition(":")
    if not (colon and major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()):
        raise InputError(f"{ctx.root.display('sys/power/resume')}: malformed resume device {device!r} "
                         "(expected MAJOR:MINOR)")
    return device


def _pending_image(ctx: Context, device: str) -> Evidence | None:
    """The swap header of the resume device: swsusp replaces the swap
    signature with S1SUSPEND (kernel/power/swap.c HIBERNATE_SIG) while an
    image is pending (docs/kernel-facts.md 2.5)."""
    rel = f"dev/block/{device}"
    try:
        with open(ctx.root / rel, "rb") as fh:
            page = fh.read(4096)
    except OSError:
        return None
    sig = page[4086:4096]
    if any(sig.startswith(s) for s in SWSUSP_SIGS):
        return Evidence(
            "file", ctx.root.display(rel), f"swap header signature {sig.rstrip(bytes(1)).decode('ascii', 'replace')}"
        )
    return None
