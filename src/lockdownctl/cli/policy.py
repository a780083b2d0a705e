"""``lockdownctl policy validate FILE``: check an enforcer policy without loading it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..output import Result, Style


ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = actions.add_parser("validate", help="check a policy file against this kernel's reasons")
    validate.add_argument("policy", metavar="FILE", help="policy file (YAML); - reads standard input")
    validate.add_argument("--btf", metavar="FILE", help="check against the reasons of this BTF file "
                          "instead of the running kernel's")
    validate.add_argument("--json", action="store_true", help="print JSON instead of text")
    from . import color_option

    color_option(validate)
    validate.add_argument("--strict", action="store_true", help="refuse (exit 1) a policy with any warning, "
                          "e.g. a protection it claims but lets root bypass")
    validate.add_argument("--root", metavar="PATH", default="/",
                          help="read the kernel's BTF, and resolve users, cgroups and executables, below PATH")


COMMON_OPTIONS = False  # --json and --root are added to the action


def run(args: argparse.Namespace) -> Result:
    from ..bpf.resolve import resolve
    from ..output import Result
    from ..policy import load_policy, verdicts
    from ..reasons import catalogue
    from ..root import Root

    root = Root(args.root)
    cat = catalogue(args.btf, root=root.path)
    if args.policy == "-":  # standard input, like watch -
        from ..infile import read_text
        from ..policy import parse_policy

        policy = parse_policy(read_text("-", "policy", stdin=True), "-", cat)
    else:
        policy = load_policy(args.policy, cat)
    resolved = resolve(policy, cat, root)  # what enforce apply resolves: users, cgroups, executables
    data = {"valid": True, "policy": policy.to_dict(), "verdicts": verdicts(policy, cat),
            "kernel_btf": cat.from_btf, "root": root.path,
            "skipped": [w for w in resolved.warnings if " skipped: " in w]}
    from ..protection import attach

    warnings, code = attach(data, policy, cat, strict=args.strict)
    data["paths"] = resolved.paths  # path exceptions: the inode each names now
    if args.btf is None:  # path exceptions need the kernel at none (#20): what enforce apply would say
        from ..bpf.dbgfs import problem
        from ..host.securityfs import read_securityfs

        if why := problem(policy, cat, read_securityfs(root).level, root):
            warnings.append(f"enforce apply would refuse this policy here (exit 3): {why}")
    return Result("policy", data, _render, code, warnings=[*policy.warnings, *resolved.warnings, *warnings])


def _render(data: dict[str, Any], s: Style) -> str:
    pol = data["policy"]
    denied = [r for r, v in data["verdicts"].items() if v == "deny"]
    skipped = f", {len(data['skipped'])} skipped (not installed)" if data["skipped"] else ""
    lines = [f"{pol['source']}: {s.good('valid')} (profile {pol['profile']}, mode {pol['mode']}, "
             f"{len(pol['exceptions'])} exception(s){skipped})",
             f"denies: {', '.join(denied) or '-'}"]
    for entry in data.get("paths", []):
        lines.append(f"path exception (line {entry['line']}): {entry['path']} " + (
            f"is debugfs inode {entry['file_id']} now (matched by inode: re-apply after the file is re-created)"
            if entry["file_id"] else "is resolved to its inode on the running system, when applied"))
    if not data["kernel_btf"]:
        lines.append(s.dim("note: no kernel BTF: reasons checked against the built-in table"))
    from ..protection import text

    return "\n".join(lines + text(data))
