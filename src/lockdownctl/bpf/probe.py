"""Is the BPF LSM usable for the enforcer on this kernel?

A kernel can list ``bpf`` among its active LSMs and still refuse LSM
programs (this project's own build host returns EPERM at load), so, like
systemd before it uses BPF LSM, we decide by loading a minimal program on
the ``locked_down`` hook. Loading without attaching changes nothing.
"""

from __future__ import annotations

import errno
import os

from . import libbpf

# r0 = 0; exit  (BPF_ALU64|BPF_MOV|BPF_K, BPF_JMP|BPF_EXIT)
_RETURN_ZERO = [(0xB7, 0, 0, 0), (0x95, 0, 0, 0)]
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
CACHE_DIR = "/run/lockdownctl"
CACHE = CACHE_DIR + "/btf-ids"


def _cache_key() -> str | None:
    try:
        with open(BOOT_ID) as fh:
            return f"{fh.read().strip()}:{os.stat(VMLINUX_BTF).st_size}"
    except OSError:
        return None


def _cached_ids(key: str) -> dict[str, int]:
    """The cache file: the key on the first line, then "hook id" lines
    (plain text: json would cost the import of re at every start)."""
    try:
        with open(CACHE) as fh:
            first, *rest = fh.read().splitlines()
        if first != key:
            return {}
        return {hook: int(value) for hook, value in (line.split() for line in rest)}
    except (OSError, ValueError):
        return {}


def cached_lsm_btf_id(hook: str) -> int:
    """BTF id of ``bpf_lsm_<hook>``, cached in /run for the current boot.

    libbpf parses all of vmlinux BTF (about 10 ms) to find one id; the id
    cannot change before the next boot, and /run is emptied at boot, so the
    cache is keyed by boot id and BTF size and never trusted across boots.
    """
    key = _cache_key()
    ids = _cached_ids(key) if key else {}
    if isinstance(ids.get(hook), int):
        return ids[hook]
    btf_id = libbpf.find_vmlinux_btf_id(hook, libbpf.BPF_LSM_MAC)
    if key:
        ids[hook] = btf_id
        try:
            os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
            tmp = f"{CACHE}.{os.getpid()}"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(key + "\n" + "".join(f"{h} {i}\n" for h, i in ids.items()))
            os.replace(tmp, CACHE)
        except OSError:
            pass  # a read-only /run only costs the next run the lookup again
    return btf_id


def trial_load() -> dict[str, str | None]:
    """Load (never attach) ``lsm/locked_down`` returning 0; close it at once.

    Returns {"result": ok|refused|not-tried, "errno": name or None, "detail": text}.
    """
    if os.geteuid() != 0:
        return {"result": "not-tried", "errno": None, "detail": "loading a BPF LSM program needs root"}
    try:
        btf_id = cached_lsm_btf_id("locked_down")
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"no bpf_lsm_locked_down in vmlinux BTF: {exc}"}
    try:
        fd = libbpf.prog_load(libbpf.BPF_PROG_TYPE_LSM, "ldctl_probe", _RETURN_ZERO,
                              expected_attach_type=libbpf.BPF_LSM_MAC, attach_btf_id=btf_id)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"the kernel refuses LSM programs: {name} at load"}
    os.close(fd)
    return {"result": "ok", "errno": None, "detail": "a minimal lsm/locked_down program loaded"}
