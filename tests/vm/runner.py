"""Boot a Debian kernel at a chosen lockdown level and run a command or pytest inside.

    python3 -m tests.vm.runner --kernel 6.12 --level integrity \\
        --cmd 'cat /sys/kernel/security/lockdown' --results /tmp/vm-out
    python3 tests/vm/runner.py --kernel 6.1 --level none \\
        --pytest tests/vm/test_guest_status.py --results /tmp/vm-out

The guest is virtme-ng (vng): the host's / read-only over 9p, the results
directory shared read-write (``--rwdir``), the command run as root. The guest
wrapper script (``guest.sh`` in the results directory; the kernel command line
is capped at 2,048 bytes, so logic never goes there) writes ``exit_status`` and
``dmesg.txt`` next to whatever the command leaves (``junit.xml`` for pytest).
Recipe and timings: ../shared/recipes/vm.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests.vm` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.vm.splat import format_report, guest_splats
else:
    from .splat import format_report, guest_splats

REPO = Path(__file__).resolve().parents[2]
KERNEL_PINS = Path(__file__).with_name("kernels.txt")  # what scripts/vm-setup.sh fetches
DEFAULT_KERNEL_CACHE = "/opt/lockdownctl-kernels"


@dataclass(frozen=True)
class KernelPin:
    """One line of kernels.txt: a Debian kernel family pinned by package version."""

    family: str  # the name tests use: guest(kernel="7.3")
    suite: str
    version: str  # Debian package version: the directory name in the kernel cache
    packages: tuple[str, ...]


def read_pins(path: Path = KERNEL_PINS) -> dict[str, KernelPin]:
    """The pinned kernels by family, oldest first (the file's order)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 4:
            raise ValueError(f"{path}:{number}: expected 'family suite version package...', got {line!r}")
        pins[fields[0]] = KernelPin(fields[0], fields[1], fields[2], tuple(fields[3:]))
    return pins


KERNELS = read_pins()
LEVELS = ("none", "integrity", "confidentiality")
DEFAULT_LSM = "lockdown,capability,yama,bpf"
DEFAULT_TIMEOUT = 240.0
DEFAULT_VENV = "/opt/lockdownctl-test-venv"
VNG_BIN = Path("/opt/vng/bin")  # where scripts/vm-setup.sh installs virtme-ng
SETUP_HINT = "run scripts/vm-setup.sh as root (Debian 12) to install QEMU and virtme-ng and to fetch the kernels"
# Guest exit statuses that are not the command's: timeout(1) and a guest panic.
EXIT_TIMEOUT = 124
EXIT_VNG_FAILURE = 255


class VmUnavailable(RuntimeError):
    """This host cannot boot the requested guest (missing QEMU, vng or kernel)."""


@dataclass(frozen=True, order=True)
class Target:
    kernel: str
    level: str

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; choose from {', '.join(KERNELS)}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; choose from {', '.join(LEVELS)}")

    @property
    def name(self) -> str:
        return f"{self.kernel}-{self.level}"


@dataclass
class VmResult:
    target: Target
    kernel_image: Path
    append: str
    accel: str
    exit_status: int  # the guest command's; 124 timeout, 255 panic or vng failure
    duration: float
    results: Path
    console: str
    dmesg: str | None  # None: the guest never got to save it (hang, panic)
    splats: list[str] = field(default_factory=list)

    @property
    def timed_out(self) -> bool:
        return self.exit_status == EXIT_TIMEOUT

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and self.dmesg is not None and not self.splats

    def problems(self) -> str:
        """What went wrong with the boot itself (not with the command), or ''."""
        out = []
        if self.timed_out:
            out.append(f"guest {self.target.name} timed out after {self.duration:.0f} s")
        if self.dmesg is None:
            out.append(f"guest {self.target.name} did not save its dmesg (exit status {self.exit_status})")
        if self.splats:
            out.append(f"kernel splat in guest {self.target.name}:\n" + format_report(self.splats))
        if out:
            out.append(self.console_tail())
        return "\n".join(out)

    def console_tail(self, lines: int = 40) -> str:
        return "console tail:\n" + "\n".join(self.console.splitlines()[-lines:])


def kernel_cache() -> Path:
    return Path(os.environ.get("LOCKDOWNCTL_KERNEL_CACHE", DEFAULT_KERNEL_CACHE))


def find_kernel(family: str) -> Path:
    """The vmlinuz of a pinned family, unpacked by scripts/vm-setup.sh (never from /boot).

    vng finds the modules next to it (``lib/modules/KVER`` or
    ``usr/lib/modules/KVER`` of the same tree), puts 9p and virtio into its
    initramfs and links the tree to /lib/modules/KVER in the guest.
    """
    pin = KERNELS[family]
    tree = kernel_cache() / pin.version
    images = sorted(tree.glob("boot/vmlinuz-*")) + sorted(tree.glob("usr/lib/modules/*/vmlinuz"))
    if len(images) != 1:
        found = "no vmlinuz" if not images else f"{len(images)} images"
        raise VmUnavailable(f"kernel {family} ({' '.join(pin.packages)} {pin.version}): {found} in {tree}; "
                            f"{SETUP_HINT}")
    return images[0]


def find_vng() -> str:
    """Path of vng; its directory must also be on PATH (vng runs `virtme-run` by name)."""
    if shutil.which("qemu-system-x86_64") is None:
        raise VmUnavailable(f"qemu-system-x86_64 not found; {SETUP_HINT}")
    vng = shutil.which("vng") or shutil.which("vng", path=str(VNG_BIN))
    if vng is None:
        raise VmUnavailable(f"vng (virtme-ng) not found on PATH or in {VNG_BIN}; {SETUP_HINT}")
    return vng


def check_available(target: Target) -> None:
    """Raise VmUnavailable when this host cannot boot ``target``."""
    find_vng()
    find_kernel(target.kernel)


def kernel_append(level: str, lsm: str = DEFAULT_LSM, extra: str = "") -> str:
    # No lockdown= at all for "none": the kernel rejects "lockdown=none".
    parts = [] if level == "none" else [f"lockdown={level}"]
    if lsm:
        parts.append(f"lsm={lsm}")
    if extra:
        parts.append(extra)
    return " ".join(parts)


def guest_python() -> tuple[str, dict[str, str]]:
    """(python, extra environment) for the guest, from LOCKDOWNCTL_VENV on the host.

    The host's filesystem is the guest's, so the test venv (its python is a
    symlink into /root/.pyenv, visible read-only) works there by absolute path.
    Without it: Debian's python with the source tree on PYTHONPATH.
    """
    venv = Path(os.environ.get("LOCKDOWNCTL_VENV", DEFAULT_VENV))
    if (venv / "bin" / "python").exists():
        return str(venv / "bin" / "python"), {}
    return "/usr/bin/python3", {"PYTHONPATH": str(REPO / "src")}


def guest_pytest_problem(python: str, env: dict[str, str]) -> str:
    """A one-line reason when ``python`` cannot import pytest (checked on the host), else ''."""
    done = subprocess.run([python, "-c", "import pytest"], env={**os.environ, **env}, capture_output=True)
    if done.returncode == 0:
        return ""
    venv = os.environ.get("LOCKDOWNCTL_VENV", DEFAULT_VENV)
    return (
        f"{python} cannot import pytest (no test venv at LOCKDOWNCTL_VENV="
        f"{venv}); create it with: python3 -m venv {venv} && {venv}/bin/pip install -e '{REPO}[test]'"
    )


def build_pytest_command(python: str, selection: list[str], results: Path) -> str:
    # Read-only repo in the guest: no cache dir; junit goes to the shared dir.
    args = [python, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
            f"--junitxml={results / 'junit.xml'}", *selection]
    return shlex.join(args)


def guest_script(target: Target, command: str, results: Path, env: dict[str, str]) -> str:
    exports = {
        "LOCKDOWNCTL_IN_GUEST": "1",
        "LOCKDOWNCTL_GUEST_KERNEL": target.kernel,
        "LOCKDOWNCTL_GUEST_LEVEL": target.level,
        "LOCKDOWNCTL_GUEST_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",  # the source tree is read-only in the guest
        "HOME": "/tmp",
        **env,
    }
    return "\n".join([
        "#!/bin/sh",
        "# Written by tests/vm/runner.py; runs as root inside the guest.",
        f"cd {shlex.quote(str(REPO))} || exit 125",
        "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()),
        "(",  # a subshell: an `exit` in the command must not skip the lines below
        command,
        ")",
        "status=$?",
        f"echo $status > {shlex.quote(str(results / 'exit_status'))}",
        # Saved last, so it holds everything the command made the kernel say.
        f"dmesg > {shlex.quote(str(results / 'dmesg.txt'))}",
        "exit $status",
        "",
    ])


def vng_command(vng: str, kernel: Path, append: str, results: Path, accel: str, script: Path) -> list[str]:
    # --verbose puts the kernel log on the console (loglevel=7): the only record
    # of a panic or a hang, and it costs no measurable time.
    cmd = [vng, "--verbose", "-r", str(kernel), "--rwdir", str(results), "--cwd", "/", "--append", append]
    if accel == "tcg":
        # Round-robin TCG (one host thread for both vCPUs): with QEMU's
        # multi-threaded TCG (7.2) a vCPU could still execute an int3 that
        # text_poke_bp() on the other vCPU had already replaced, once the
        # kernel's sync IPIs were done: "Oops: int3" at the patched site
        # (bpf_lsm_file_open+0x5 when the file_open trampoline is attached;
        # __bpf_prog_enter with the BPF stats static key) and soft lockups in
        # 6.1, 6.12 and 7.3 guests. Real CPUs serialise cross-modified code
        # as the kernel expects (arch/x86/kernel/alternative.c).
        cmd += ["--disable-kvm", "--qemu-opts=-accel tcg,thread=single"]  # "=": the value starts with "-"
        # An emulated CPU on a busy host can miss the IO-APIC timer check at
        # boot ("IO-APIC + timer doesn't work!", a panic before any test: seen
        # once on 6.1 at load 10); virtualised kernels skip it the same way.
        cmd[cmd.index("--append") + 1] += " no_timer_check"
    return [*cmd, "--", f"sh {script}"]


def _run_vng(cmd: list[str], timeout: float, echo: bool) -> tuple[int, str]:
    """Run vng under timeout(1) and return (exit status, console output).

    vng's stdout is read through a pipe: QEMU reopens a regular file and
    clobbers it. timeout(1) puts itself in its own process group and signals
    the whole group, so QEMU dies with vng on a hang.
    """
    env = dict(os.environ, PATH=f"{Path(cmd[0]).parent}:{os.environ.get('PATH', '')}")
    full = ["timeout", "--kill-after=10", str(int(timeout)), *cmd]
    proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True, errors="replace")
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                sys.stderr.write(line)
        status = proc.wait()
    except BaseException:
        # Interrupted (Ctrl-C, pytest timeout): do not leave QEMU behind.
        # timeout(1) leads its own process group, whose id is its pid.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return status, "".join(lines)


@cache
def kvm_boots(kernel: Path) -> bool:
    """Does a stock kernel really boot under KVM here? (Nested PVM: no, it fails in ~3 s.)"""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    token = "lockdownctl-kvm-probe-ok"
    status, console = _run_vng([find_vng(), "-r", str(kernel), "--", f"echo {token}"], 60, echo=False)
    return status == 0 and token in console


def pick_accel(requested: str, kernel: Path) -> str:
    if requested not in ("tcg", "kvm", "auto"):
        raise ValueError(f"accelerator {requested!r} (LOCKDOWNCTL_VM_ACCEL?): choose tcg, kvm or auto")
    if requested == "auto":
        return "kvm" if kvm_boots(kernel) else "tcg"
    return requested


def boot(
    target: Target,
    command: str,
    results: Path,
    *,
    lsm: str = DEFAULT_LSM,
    extra_append: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    accel: str | None = None,
    echo: bool = False,
) -> VmResult:
    """Boot ``target``, run the shell ``command`` as root in the repo, collect results.

    ``results`` is created (it must be an absolute path without spaces or
    commas: vng passes it on the kernel command line) and receives
    ``guest.sh``, ``console.log``, ``exit_status`` and ``dmesg.txt``.
    """
    vng = find_vng()
    kernel = find_kernel(target.kernel)
    results = results.resolve()
    if re.search(r"[\s,=\"']", str(results)):
        raise ValueError(f"results directory {results} must not contain spaces, commas, quotes or '='")
    results.mkdir(parents=True, exist_ok=True)
    for stale in ("exit_status", "dmesg.txt", "junit.xml", "results.json", "console.log"):
        (results / stale).unlink(missing_ok=True)
    shutil.rmtree(results / "capture", ignore_errors=True)
    _python, env = guest_python()
    script = results / "guest.sh"
    script.write_text(guest_script(target, command, results, env))
    append = kernel_append(target.level, lsm, extra_append)
    chosen = pick_accel(accel or os.environ.get("LOCKDOWNCTL_VM_ACCEL", "tcg"), kernel)

    start = time.monotonic()
    status, console = _run_vng(vng_command(vng, kernel, append, results, chosen, script), timeout, echo)
    duration = time.monotonic() - start
    (results / "console.log").write_text(console)
    dmesg_file = results / "dmesg.txt"
    dmesg = dmesg_file.read_text(errors="replace") if dmesg_file.exists() else None
    # A panic or hang never reaches dmesg.txt, and a flood can push a splat out of
    # the ring before it is saved: the console has the kernel log as printed.
    splats = guest_splats(console, dmesg)
    return VmResult(target, kernel, append, chosen, status, duration, results, console, dmesg, splats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python3 -m tests.vm.runner",
        description="Boot a Debian kernel in QEMU at a lockdown level and run a command or pytest inside.",
    )
    ap.add_argument("--kernel", required=True, choices=list(KERNELS),
                    help="kernel family pinned in tests/vm/kernels.txt (fetched by scripts/vm-setup.sh)")
    ap.add_argument("--level", required=True, choices=LEVELS, help="none leaves lockdown= off the command line")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--pytest", metavar="SELECTION",
                      help="pytest arguments run in the guest, e.g. 'tests/vm/test_guest_status.py -k 6.1-none'")
    what.add_argument("--cmd", help="shell command run as root in the guest (cwd: the repo)")
    ap.add_argument("--results", required=True, type=Path, help="host directory shared read-write with the guest")
    ap.add_argument("--lsm", default=DEFAULT_LSM, help=f"lsm= value (default {DEFAULT_LSM}; '' to leave it out)")
    ap.add_argument("--append", default="", help="more kernel command line parameters")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per boot (default %(default)s)")
    ap.add_argument("--accel", choices=("tcg", "kvm", "auto"), default=None,
                    help="tcg (default, or env LOCKDOWNCTL_VM_ACCEL), kvm, or auto: kvm if a probe boot works")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not echo the guest console")
    args = ap.parse_args(argv)

    target = Target(args.kernel, args.level)
    if args.pytest is not None:
        python, env = guest_python()
        if missing := guest_pytest_problem(python, env):
            print(f"runner: {missing}", file=sys.stderr)
            return 2
        command = build_pytest_command(python, shlex.split(args.pytest), args.results.resolve())
    else:
        command = args.cmd
    try:
        result = boot(target, command, args.results, lsm=args.lsm, extra_append=args.append,
                      timeout=args.timeout, accel=args.accel, echo=not args.quiet)
    except VmUnavailable as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:  # an unusable --results path or LOCKDOWNCTL_VM_ACCEL
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    print(f"runner: {target.name} on {result.kernel_image} ({result.accel}), append {result.append!r}: "
          f"exit status {result.exit_status} in {result.duration:.1f} s; results in {result.results}",
          file=sys.stderr)
    if problems := result.problems():
        print(problems, file=sys.stderr)
    if result.exit_status == 0 and not result.ok:
        return 1
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
