"""``lockdownctl policy validate|sign|verify``: check an enforcer policy without
loading it; sign it into a bundle the sealed enforcer's gate accepts (issue #19,
docs/signed-policy.md); verify a bundle offline."""

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
    sign = actions.add_parser("sign", help="compile and sign a policy into a bundle for enforce update")
    sign.add_argument("policy", metavar="FILE", help="policy file (YAML)")
    sign.add_argument("--key", metavar="KEY", required=True, help="the owner's RSA private key (PEM or DER)")
    sign.add_argument("--cert", metavar="CERT", required=True,
                      help="the owner's certificate (PEM or DER, with a subject key identifier)")
    sign.add_argument("--version", metavar="N", type=int, required=True,
                      help="bundle version: the gate accepts only a version greater than the active one")
    sign.add_argument("--host", metavar="MACHINE_ID",
                      help="bind the bundle to one host (its /etc/machine-id); needed for exe and cgroup "
                           "exceptions, which are resolved here")
    sign.add_argument("--btf", metavar="FILE", help="compile for the reason numbering of this BTF file "
                      "(the target kernel's) instead of the running kernel's")
    sign.add_argument("-o", "--output", metavar="OUT", help="bundle file to write (default: FILE.bundle)")
    sign.add_argument("--dry-run", action="store_true", help="compile and sign, write nothing")
    sign.add_argument("--json", action="store_true", help="print JSON instead of text")
    sign.add_argument("--root", metavar="PATH", default="/", help="read the kernel's BTF, and resolve users "
                      "and executables, below PATH")
    verify = actions.add_parser("verify", help="check a bundle's signature offline against a certificate")
    verify.add_argument("bundle", metavar="BUNDLE", help="bundle file (policy sign's output)")
    verify.add_argument("--cert", metavar="CERT", required=True, help="the certificate it must be signed with")
    verify.add_argument("--btf", metavar="FILE", help="also say whether it fits this BTF's reason numbering")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.add_argument("--root", metavar="PATH", default="/", help="read the kernel's BTF below PATH")
    color_option(sign)
    color_option(verify)


COMMON_OPTIONS = False  # --json and --root are added to the action


def run(args: argparse.Namespace) -> Result:
    if args.action == "sign":
        return _sign(args)
    if args.action == "verify":
        return _verify(args)
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


def _sign(args: argparse.Namespace) -> Result:
    from .. import signing
    from ..bpf.resolve import resolve
    from ..errors import FeatureMissing, OutputError
    from ..fsio import atomic_write
    from ..output import Result
    from ..policy import load_policy
    from ..reasons import catalogue
    from ..root import Root

    root = Root(args.root)
    signer = signing.load_cert(args.cert)
    key = signing.load_key(args.key)
    cat = catalogue(args.btf, root=root.path)
    if not cat.from_btf:
        raise FeatureMissing("no kernel BTF to number the reasons by: give the target's with --btf FILE")
    policy = load_policy(args.policy, cat)
    signing.check_signable(policy)
    resolved = resolve(policy, cat, root)
    host = signing.host_id(args.host) if args.host else 0
    payload = signing.compile_payload(resolved, cat, args.version, host, args.policy)
    bundle = signing.sign(payload, key, signer)
    out = args.output or args.policy + ".bundle"
    if not args.dry_run:
        try:
            atomic_write(out, bundle, 0o644)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    data = {**signing.describe(signing.parse(bundle, out), cat), "bundle": out, "dry_run": args.dry_run,
            "key_id": signer.skid.hex(), "bytes": len(bundle)}
    return Result("policy", data, _render_bundle, warnings=[*policy.warnings, *resolved.warnings])


def _verify(args: argparse.Namespace) -> Result:
    from .. import signing
    from ..infile import read_bytes
    from ..output import Result
    from ..reasons import catalogue
    from ..root import Root

    signer = signing.load_cert(args.cert)
    raw = read_bytes(args.bundle, "bundle")
    bundle = signing.verify(raw, signer, args.bundle)
    cat = catalogue(args.btf, root=Root(args.root).path)
    data = {**signing.describe(bundle, cat), "bundle": args.bundle, "verified": True, "key_id": signer.skid.hex()}
    return Result("policy", data, _render_bundle)


def _render_bundle(data: dict[str, Any], s: Style) -> str:
    head = (f"{data['bundle']}: {s.good('verified')}" if data.get("verified") else
            f"{data['bundle']}: {'would write' if data['dry_run'] else 'signed'} ({data['bytes']} bytes)")
    denied = [r for r, v in data["verdicts"].items() if v == "deny"]
    ex = ", ".join(f"{n} {k}" for k, n in data["exceptions"].items() if n)
    lines = [head, f"version {data['version']}, key id {data['key_id']}, mode {data['mode']}, "
             f"host {data['host_id'] or 'any'}", f"denies: {', '.join(denied) or '-'}", f"exceptions: {ex or '-'}"]
    if data["matches_kernel"] is False:
        lines.append(s.dim("note: compiled for another reason numbering than this kernel's: its gate refuses it"))
    return "\n".join(lines)
