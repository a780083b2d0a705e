"""Which build of a BPF object fits the running kernel's LSM hooks.

A BPF LSM program reads its hook's arguments by position (``BPF_PROG``), and
the return value of the programs before it (``ret``) sits right after them.
When a hook gains an argument, a program written for the old list reads the
new argument as ``ret``: Linux kernel commit 082f1db02c80 ("security:
Propagate caller information in bpf hooks") (in v6.15) added ``bool kernel``
to the ``bpf`` hook, and the seal built for three arguments is refused there
(EINVAL: it could return 1). So an object may ship in variants built from one
source (scripts/build-bpf.sh), and the loader takes the variant whose every
LSM program's arguments match the FUNC_PROTO of ``bpf_lsm_<hook>`` in the
running kernel's BTF: feature detection, never a kernel version.

VARIANTS mirrors the sources (each program's arguments before ``int ret``);
tests/unit/test_bpf_hooks.py checks it against the committed objects' debug
information and against BTF of Debian's 6.1, 6.12 and 7.3 and of 6.18.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..btf import VMLINUX_BTF, func_protos
from ..errors import FeatureMissing, InputError

HERE = os.path.dirname(os.path.abspath(__file__))
LIVE_BTF = "/" + VMLINUX_BTF  # the running kernel's (btf.py owns the path)


@dataclass(frozen=True)
class Program:
    name: str
    hook: str  # SEC("lsm/<hook>")
    # (C type, name) as the source declares them, before `int ret`; None: the
    # program reads no argument (nor ret), so any argument list fits
    args: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True)
class Variant:
    object: str  # file name in this directory
    programs: tuple[Program, ...]


def _args(*decls: str) -> tuple[tuple[str, str], ...]:
    """"struct inode *inode" -> ("struct inode *", "inode")."""
    out = []
    for decl in decls:
        cut = max(decl.rfind(" "), decl.rfind("*")) + 1
        out.append((decl[:cut].strip(), decl[cut:]))
    return tuple(out)


_SEAL_COMMON = (
    Program("ldctl_seal_bpf_map", "bpf_map", _args("struct bpf_map *map", "unsigned int fmode")),
    Program("ldctl_seal_inode_permission", "inode_permission", _args("struct inode *inode", "int mask")),
    Program("ldctl_seal_inode_unlink", "inode_unlink", _args("struct inode *dir", "struct dentry *dentry")),
    Program("ldctl_seal_inode_rmdir", "inode_rmdir", _args("struct inode *dir", "struct dentry *dentry")),
    Program("ldctl_seal_inode_rename", "inode_rename",
            _args("struct inode *old_dir", "struct dentry *old_dentry", "struct inode *new_dir",
                  "struct dentry *new_dentry")),
    Program("ldctl_seal_sb_umount", "sb_umount", _args("struct vfsmount *mnt", "int flags")),
    Program("ldctl_seal_sb_mount", "sb_mount",
            _args("const char *dev_name", "const struct path *path", "const char *type", "unsigned long flags",
                  "void *data")),
    Program("ldctl_seal_move_mount", "move_mount", _args("const struct path *from_path", "const struct path *to_path")),
)
_BPF_ARGS = ("int cmd", "union bpf_attr *attr", "unsigned int size")

# object -> its variants, in the order they are tried.
VARIANTS: dict[str, tuple[Variant, ...]] = {
    "lockdown": (Variant("lockdown.bpf.o", (
        Program("ldctl_locked_down", "locked_down", _args("int what")),
        Program("ldctl_file_open", "file_open", _args("struct file *file")),
        # (dentry, attr) before 6.9, (idmap, dentry, attr) since: the program reads neither
        Program("ldctl_inode_setattr", "inode_setattr", None),
    )),),
    "seal": (
        Variant("seal.bpf.o", (Program("ldctl_seal_bpf", "bpf", _args(*_BPF_ARGS)), *_SEAL_COMMON)),
        Variant("seal-kernarg.bpf.o", (Program("ldctl_seal_bpf", "bpf", _args(*_BPF_ARGS, "bool kernel")),
                                       *_SEAL_COMMON)),
    ),
    "gate": (  # SEC("lsm.s/bpf"): sleepable, same arguments
        Variant("gate.bpf.o", (Program("ldctl_gate_bpf", "bpf", _args(*_BPF_ARGS)),)),
        Variant("gate-kernarg.bpf.o", (Program("ldctl_gate_bpf", "bpf", _args(*_BPF_ARGS, "bool kernel")),)),
    ),
}

# Integer spellings by size: a program may read an enum or a typedef'd
# integer as any integer of the same size (BPF_PROG casts each u64 slot).
_INT_SIZES = {
    "_Bool": 1, "bool": 1, "char": 1, "signed char": 1, "unsigned char": 1,
    "short": 2, "short int": 2, "unsigned short": 2, "short unsigned int": 2,
    "int": 4, "unsigned int": 4, "long": 8, "long int": 8, "unsigned long": 8, "long unsigned int": 8,
    "long long": 8, "long long int": 8, "unsigned long long": 8, "long long unsigned int": 8,
}


def shape(ctype: str) -> str:
    """What matters of a C type for reading an argument: integer size, or what a pointer points to."""
    ctype = " ".join(w for w in ctype.replace("*", " * ").split() if w not in ("const", "volatile", "restrict"))
    if ctype.endswith("*"):
        return shape(ctype[:-1]) + " *"
    if ctype.startswith("enum "):
        return "int4"  # kernel enums in hook arguments are 4 bytes
    if ctype in _INT_SIZES:
        return f"int{_INT_SIZES[ctype]}"
    return ctype


def _decl(ctype: str, name: str) -> str:
    return f"{ctype}{'' if ctype.endswith('*') else ' '}{name}"


def mismatch(program: Program, kernel: tuple[str, list[tuple[str, str]]] | None) -> str:
    """Why ``program`` cannot run on a hook with this prototype ('' when it can)."""
    if kernel is None:
        return f"{program.name}: the kernel has no LSM hook {program.hook}"
    ret, params = kernel
    if shape(ret) != "int4":
        return f"{program.name}: hook {program.hook} returns {ret}, the program expects int"
    if program.args is None:
        return ""
    want = ", ".join(_decl(t, n) for t, n in program.args)
    have = ", ".join(_decl(t, n) for n, t in params)
    if len(params) != len(program.args) or any(
            shape(kt) != shape(pt) for (_kn, kt), (pt, _pn) in zip(params, program.args, strict=False)):
        return f"{program.name}: hook {program.hook} takes ({have}), the program expects ({want})"
    return ""


def all_hooks() -> list[str]:
    return sorted({p.hook for variants in VARIANTS.values() for v in variants for p in v.programs})


def kernel_hooks(data: bytes, source: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """hook -> (return type, parameters) for every hook any variant attaches to."""
    protos = func_protos(data, source, [f"bpf_lsm_{h}" for h in all_hooks()])
    return {name.removeprefix("bpf_lsm_"): proto for name, proto in protos.items()}


def choose(obj: str, hooks: dict[str, tuple[str, list[tuple[str, str]]]], source: str = LIVE_BTF) -> Variant:
    """The first variant of ``obj`` whose every program fits ``hooks``; FeatureMissing (exit 3) if none."""
    why = []
    for variant in VARIANTS[obj]:
        problems = [m for p in variant.programs if (m := mismatch(p, hooks.get(p.hook)))]
        if not problems:
            return variant
        why.append(f"{variant.object}: {'; '.join(problems)}")
    raise FeatureMissing(f"no build of lockdownctl's {obj} BPF object fits this kernel's LSM hooks "
                         f"({source}): " + " | ".join(why))


def object_path(obj: str, btf_path: str = LIVE_BTF) -> str:
    """Path of the variant of ``obj`` that fits the running kernel (read from its BTF)."""
    try:
        with open(btf_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise FeatureMissing(f"{btf_path}: cannot read the kernel's BTF ({exc.strerror}): the BPF LSM programs "
                             "need it (CONFIG_DEBUG_INFO_BTF)") from None
    try:
        hooks = kernel_hooks(data, btf_path)
    except InputError as exc:
        raise FeatureMissing(str(exc)) from None
    return os.path.join(HERE, choose(obj, hooks, btf_path).object)
