"""`lockdownctl check` on a generated root: 5,000 module files and 2,000
processes (issue 7: at most 2 s here), and half that size in the same run, so
that the ratio shows whether time is linear in size (expected about 2.0).

    /opt/lockdownctl-test-venv/bin/python benchmarks/check.py

Module files are copies of one real Debian module (crc7.ko from
linux-image-6.1.0-56-amd64): half unsigned (objcopy, see
tests/data/check/README.md), half signed and xz-compressed; each process has
8 fds and a 40-line maps file, one in 100 holding /dev/cpu/0/msr.
"""

from __future__ import annotations

import lzma
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from lockdownctl.checks import check
from lockdownctl.root import Root

FIXTURE = Path(__file__).resolve().parent.parent / "tests/data/check/modules"
RELEASE = "6.1.0-56-amd64"
STATE = {"level": "none", "lsm": {"lockdown_active": True}, "secure_boot": {"state": "not-efi", "evidence": []},
         "source": {"kind": "none"}}
MAPS = "".join(f"7f00{i:04x}0000-7f00{i:04x}1000 r-xp 00000000 08:01 {1000 + i} /usr/lib/x86_64-linux-gnu/lib{i}.so\n"
               for i in range(40))


def build(root: Path, modules: int, processes: int) -> None:
    unsigned = (FIXTURE / "positive/lib/modules" / RELEASE / "extra/crc7.ko").read_bytes()
    signed = lzma.compress((FIXTURE / "negative/lib/modules" / RELEASE / "extra/crc7.ko").read_bytes(),
                           check=lzma.CHECK_CRC32)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(RELEASE + "\n")
    (root / "proc/cmdline").write_text("root=/dev/sda1 ro\n")
    (root / "proc/keys").write_text("")
    for i in range(modules):
        d = root / f"lib/modules/{RELEASE}/extra/vendor{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        if i % 2:
            (d / f"m{i}.ko").write_bytes(unsigned)
        else:
            (d / f"m{i}.ko.xz").write_bytes(signed)
    for pid in range(1000, 1000 + processes):
        p = root / f"proc/{pid}"
        (p / "fd").mkdir(parents=True)
        (p / "fdinfo").mkdir()
        (p / "comm").write_text(f"proc{pid}\n")
        os.symlink("/usr/bin/daemon", p / "exe")
        (p / "maps").write_text(MAPS)
        for fd in range(8):
            target = "/dev/cpu/0/msr" if fd == 3 and pid % 100 == 0 else f"/var/log/file{fd}"
            os.symlink(target, p / "fd" / str(fd))
            (p / "fdinfo" / str(fd)).write_text("pos:\t0\nflags:\t0100002\n")


def timed(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    data = check(Root(root), "confidentiality", dict(STATE))  # type: ignore[arg-type]
    return time.perf_counter() - start, len(data["findings"])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        full, half = Path(tmp) / "full", Path(tmp) / "half"
        build(full, 5000, 2000)
        build(half, 2500, 1000)
        timed(half)  # warm the page cache and imports once
        t_half, n_half = min(timed(half) for _ in range(3))
        t_full, n_full = min(timed(full) for _ in range(3))
    print(f"{'root':<32}{'seconds':>10}{'findings':>10}")
    print(f"{'2,500 modules, 1,000 processes':<32}{t_half:>10.3f}{n_half:>10}")
    print(f"{'5,000 modules, 2,000 processes':<32}{t_full:>10.3f}{n_full:>10}")
    print(f"ratio full/half: {t_full / t_half:.2f} (linear: 2.00); goal: full <= 2 s: "
          f"{'met' if t_full <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
