"""Every LSM hook the BPF objects attach to has the arguments the programs read.

A BPF LSM program reads its hook's arguments by position, so a hook that
gains one (the `bpf` hook in 6.15) silently shifts `ret`. Two checks:

- hooks.VARIANTS, which the loader uses at run time, says exactly what the
  committed objects' programs declare (read from their DWARF: the inlined
  ``____<program>`` function that BPF_PROG generates, and the ELF section
  ``lsm/<hook>`` each program lives in);
- for the BTF of each kernel in tests/data/btf/hooks (Debian 6.1, 6.12,
  7.3 and a 6.18 build; README there), each object has a variant whose every
  program matches ``bpf_lsm_<hook>``, and hooks.object_path picks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from lockdownctl.bpf import hooks
from lockdownctl.btf import func_protos
from lockdownctl.errors import FeatureMissing

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "btf" / "hooks"
KERNELS = sorted(FIXTURES.glob("*.btf"))
# Which seal build each kernel needs: the `bpf` hook has `bool kernel` since 6.15.
SEAL_FOR = {
    "vmlinux-6.1.0-57-amd64.btf": "seal.bpf.o",
    "vmlinux-6.12.118+deb12-amd64.btf": "seal.bpf.o",
    "vmlinux-6.18.44-fc-v657.btf": "seal-kernarg.bpf.o",
    "vmlinux-7.3.4+deb13-amd64.btf": "seal-kernarg.bpf.o",
}


def _spell(die: Any) -> str:
    """A DWARF type as C: "const struct path *", "union bpf_attr *", "unsigned int"."""
    if die is None:
        return "void"
    target = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
    name = die.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in die.attributes else ""
    if die.tag == "DW_TAG_pointer_type":
        inner = _spell(target)
        return inner + ("*" if inner.endswith("*") else " *")
    if die.tag == "DW_TAG_const_type":
        return "const " + _spell(target)
    if die.tag in ("DW_TAG_volatile_type", "DW_TAG_typedef"):
        return _spell(target)
    prefix = {"DW_TAG_structure_type": "struct ", "DW_TAG_union_type": "union ",
              "DW_TAG_enumeration_type": "enum "}.get(die.tag, "")
    return prefix + name


def declared_programs(path: Path) -> dict[str, hooks.Program]:
    """The LSM programs of a BPF object as its debug information declares them."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        sections = {}
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{path}: no symbol table"
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and isinstance(sym["st_shndx"], int):
                sections[sym.name] = elf.get_section(sym["st_shndx"]).name
        inner: dict[str, list[tuple[str, str]]] = {}
        plain: dict[str, list[tuple[str, str]]] = {}
        for cu in elf.get_dwarf_info().iter_CUs():
            for die in cu.iter_DIEs():
                name = die.attributes.get("DW_AT_name")
                if die.tag == "DW_TAG_subprogram" and name:
                    params = [
                        (_spell(p.get_DIE_from_attribute("DW_AT_type")),
                         p.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in p.attributes else "")
                        for p in die.iter_children() if p.tag == "DW_TAG_formal_parameter"]
                    if name.value.decode().startswith("____"):
                        inner[name.value.decode()[4:]] = params
                    else:
                        plain[name.value.decode()] = params
    out = {}
    for prog, section in sections.items():
        if not section.startswith(("lsm/", "lsm.s/")):
            continue
        if prog not in inner:  # no BPF_PROG: a program that reads no argument, only its ctx
            assert plain.get(prog) == [("unsigned long long *", "ctx")], (
                f"{path.name} {prog}: neither BPF_PROG(name, args..., int ret) nor f(unsigned long long *ctx)")
            out[prog] = hooks.Program(prog, section.split("/", 1)[1], None)
            continue
        params = inner[prog]
        assert params[0] == ("unsigned long long *", "ctx") and params[-1] == ("int", "ret"), (
            f"{path.name} {prog}: not BPF_PROG(name, args..., int ret): {params}")
        out[prog] = hooks.Program(prog, section.split("/", 1)[1], tuple(params[1:-1]))
    return out


@pytest.mark.parametrize("variant", [v for vs in hooks.VARIANTS.values() for v in vs], ids=lambda v: v.object)
def test_variants_say_what_the_objects_declare(variant: hooks.Variant) -> None:
    declared = declared_programs(Path(hooks.HERE) / variant.object)
    listed = {p.name: p for p in variant.programs}
    assert sorted(declared) == sorted(listed), f"{variant.object}: programs differ from hooks.VARIANTS"
    for name, prog in declared.items():
        mirror = listed[name]
        if prog.args is None or mirror.args is None:
            assert (prog.hook, prog.args) == (mirror.hook, mirror.args), f"{variant.object} {name}"
            continue
        assert (prog.hook, [hooks.shape(t) for t, _ in prog.args], [n for _, n in prog.args]) == (
            mirror.hook, [hooks.shape(t) for t, _ in mirror.args], [n for _, n in mirror.args]), (
            f"{variant.object} {name}: the object declares {prog}, hooks.VARIANTS says {mirror}")


def test_fixtures_cover_every_hook() -> None:
    assert [k.name for k in KERNELS] == sorted(SEAL_FOR)
    for kernel in KERNELS:
        found = func_protos(kernel.read_bytes(), kernel.name, [f"bpf_lsm_{h}" for h in hooks.all_hooks()])
        assert len(found) == len(hooks.all_hooks()), f"{kernel.name}: regenerate it (README.md)"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda p: p.stem)
@pytest.mark.parametrize("obj", sorted(hooks.VARIANTS))
def test_a_variant_of_each_object_fits_each_kernel(obj: str, kernel: Path) -> None:
    kernel_hooks = hooks.kernel_hooks(kernel.read_bytes(), kernel.name)
    chosen = Path(hooks.object_path(obj, str(kernel)))  # FeatureMissing when none fits
    variant = next(v for v in hooks.VARIANTS[obj] if v.object == chosen.name)
    for prog in variant.programs:
        ret, params = kernel_hooks[prog.hook]
        assert ret == "int" and (prog.args is None or
                                 [hooks.shape(t) for _n, t in params] == [hooks.shape(t) for t, _n in prog.args])
    if obj == "seal":
        assert chosen.name == SEAL_FOR[kernel.name]


def test_the_bpf_hook_argument_decides(tmp_path: Path) -> None:
    seven = hooks.kernel_hooks((FIXTURES / "vmlinux-7.3.4+deb13-amd64.btf").read_bytes(), "7.3")
    six = hooks.kernel_hooks((FIXTURES / "vmlinux-6.12.118+deb12-amd64.btf").read_bytes(), "6.12")
    assert [n for n, _ in seven["bpf"][1]] == ["cmd", "attr", "size", "kernel"]
    assert [n for n, _ in six["bpf"][1]] == ["cmd", "attr", "size"]
    assert hooks.choose("seal", six).object == "seal.bpf.o"
    assert hooks.choose("seal", seven).object == "seal-kernarg.bpf.o"
    # A kernel whose hook changed again: refused before anything loads, saying why (exit 3).
    changed = dict(seven, bpf=("int", [*seven["bpf"][1], ("token", "struct bpf_token *")]))
    with pytest.raises(FeatureMissing) as exc:
        hooks.choose("seal", changed)
    assert exc.value.exit_code == 3
    assert "ldctl_seal_bpf: hook bpf takes (int cmd, union bpf_attr *attr, unsigned int size, _Bool kernel, " \
           "struct bpf_token *token), the program expects (int cmd, union bpf_attr *attr, unsigned int size, " \
           "bool kernel)" in str(exc.value)
    missing = {h: p for h, p in seven.items() if h != "move_mount"}
    with pytest.raises(FeatureMissing, match="the kernel has no LSM hook move_mount"):
        hooks.choose("seal", missing)
    with pytest.raises(FeatureMissing, match="cannot read the kernel's BTF"):
        hooks.object_path("seal", str(tmp_path / "absent"))


def test_shapes() -> None:
    assert hooks.shape("const struct path *") == hooks.shape("struct path *") == "struct path *"
    assert hooks.shape("enum lockdown_reason") == hooks.shape("int") == "int4"
    assert hooks.shape("_Bool") == hooks.shape("bool") == "int1"
    assert hooks.shape("long unsigned int") == hooks.shape("unsigned long") == "int8"
    assert hooks.shape("const char *") == hooks.shape("char *") == "int1 *"
    assert hooks.shape("int") != hooks.shape("_Bool")
