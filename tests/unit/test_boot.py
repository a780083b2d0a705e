"""enable / disable against one fixture root per boot setup (tests/data/boot/README.md).

Every test works on a scratch copy of a fixture: plan (golden diff), apply,
verify, idempotence, disable, backups, malformed input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdownctl.boot import tokens
from lockdownctl.boot.engine import View
from lockdownctl.boot.grub import evaluate as grub_evaluate
from lockdownctl.boot.grub import own_dropin
from lockdownctl.boot.run import execute
from lockdownctl.boot.shell import parse_value, scan
from lockdownctl.boot.unit import UNIT_TEXT
from lockdownctl.errors import InputError
from lockdownctl.host.uki import uki_cmdline as read_cmdline
from lockdownctl.levels import LEVELS, level_rank
from lockdownctl.root import Root
from tests.conftest import DATA, REPO, ROOTS, lockdownctl

BOOT = DATA / "boot"
GOLDEN = BOOT / "golden"
FIXTURES = ["debian12-grub-cloud", "fedora39-bls", "rhel8-bls-kernelopts", "arch-systemd-boot",
            "popos22-kernelstub", "uki-kernel-install", "silverblue39-rpm-ostree"]
# Roots that are not round-tripped, and the test that uses each; support directories.
ELSEWHERE = {"uki-signed-only": "test_uki_without_rebuild_source_points_to_unit"}
SUPPORT = {"golden", "grub-mkconfig"}
# Setups whose regeneration command cannot run for a --root that is not the live
# system, so a second plan still lists it (files are unchanged).
COMMAND_ONLY_AGAIN = {"rhel8-bls-kernelopts", "silverblue39-rpm-ostree", "uki-kernel-install"}
HAD_TOKEN = {"debian12-grub-cloud", "uki-kernel-install"}  # the fixture carries an old lockdown= token
HAD_HIGHER = {"debian12-grub-cloud", "uki-kernel-install"}  # ... at confidentiality: enable integrity lowers it


def scratch(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(BOOT / name, dest, symlinks=True)
    return dest


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and not rel.startswith("var/lib/lockdownctl"):
            out[rel] = path.read_bytes()
    return out


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    run = lockdownctl(*args, "--json")
    assert "Traceback" not in run.err
    env = run.json()
    assert env["exit_code"] == run.code
    return run.code, env["data"]


def diffs(data: dict[str, Any]) -> str:
    return "".join(c["diff"] for s in data["setups"] for c in s["changes"])


# The level each fixture is enabled at in the round-trip tests: one that lowers
# nothing (a fixture with lockdown=confidentiality refuses integrity).
LEVEL = {name: "confidentiality" if name in HAD_HIGHER else "integrity" for name in FIXTURES}
GOLDEN_CASES = ([(name, LEVEL[name], False) for name in FIXTURES]
                + [(name, "integrity", True) for name in sorted(HAD_HIGHER)])


@pytest.mark.parametrize(("name", "level", "force"), GOLDEN_CASES)
def test_plan_matches_golden_diff(name: str, level: str, force: bool, tmp_path: Path) -> None:
    root = scratch(tmp_path, name)
    before = tree(root)
    code, data = run_json("enable", level, "--dry-run", "--root", str(root), *(["--force"] if force else []))
    assert code == 0, data
    assert tree(root) == before and not (root / "var").exists()  # a dry run writes nothing
    golden = GOLDEN / f"{name}.enable-{level}{'-force' if force else ''}.diff"
    if os.environ.get("LOCKDOWNCTL_REGEN") == "1":
        golden.write_text(diffs(data))
    assert diffs(data) == golden.read_text()
    assert all(c["ok"] for s in data["setups"] for c in s["verify"])
    # --force names every token it lowers; without it nothing is lowered
    assert bool(data["lowers"]) == force
    warnings = run_json_warnings(data)
    assert all(f"--force: lowers {lo['where']} from lockdown={lo['level']}" in warnings for lo in data["lowers"])


def run_json_warnings(data: dict[str, Any]) -> str:
    return "\n".join(w for s in data["setups"] for w in s["warnings"])


def test_golden_files_all_have_a_case() -> None:
    cases = {f"{n}.enable-{lv}{'-force' if f else ''}.diff" for n, lv, f in GOLDEN_CASES}
    assert {p.name for p in GOLDEN.iterdir()} == cases


@pytest.mark.parametrize("name", FIXTURES)
def test_apply_verify_idempotent_disable(name: str, tmp_path: Path) -> None:
    root = scratch(tmp_path, name)
    original = tree(root)
    # (the UKI fixture is at confidentiality already: lower it explicitly, so that something is applied)
    args = ["integrity", "--force"] if name == "uki-kernel-install" else [LEVEL[name]]
    code, data = run_json("enable", *args, "--root", str(root))
    assert code == 0 and data["verified"] is True, data
    applied = data["applied"]
    commands = [c["text"] for s in data["setups"] for c in s["commands"]]
    assert applied["commands_not_run"] == commands  # --root elsewhere: printed, never run
    # backups hold the previous contents of every modified file
    for f in applied["files"]:
        if f["action"] == "modify":
            backup = root / f["backup"].lstrip("/")
            assert backup.read_bytes() == original[f["path"].lstrip("/")]
    # every entry / variable carries exactly one token
    for setup in data["setups"]:  # (rpm-ostree: only its own command changes anything)
        assert setup["verify"] or name in COMMAND_ONLY_AGAIN
        assert all(c["ok"] for c in setup["verify"]), setup["verify"]
    after_enable = tree(root)
    # a second run changes no file
    code, again = run_json("enable", *args, "--root", str(root))
    assert code == 0 and tree(root) == after_enable
    assert not [c for s in again["setups"] for c in s["changes"]]
    if name not in COMMAND_ONLY_AGAIN:
        assert again["changed"] is False and again["applied"] is None
    # disable removes the token the same way; other arguments are untouched
    code, off = run_json("disable", "--root", str(root))
    assert code == 0 and off["verified"] is True, off
    final = tree(root)
    assert b"lockdown=" not in b"".join(v for k, v in final.items() if not k.endswith(".efi"))
    if name not in HAD_TOKEN:
        assert final == original
    code, off_again = run_json("disable", "--root", str(root))
    assert code == 0 and not [c for s in off_again["setups"] for c in s["changes"]]


def _append(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _higher_in(root: Path, name: str) -> str:
    """Put a lockdown=confidentiality where the setup keeps its command line; where it is."""
    if name == "grub.cfg":  # the generated entries only: regenerating would lower them
        _append(root / "etc/default/grub", " lockdown=confidentiality", "")
        (root / "boot/grub").mkdir(parents=True)
        (root / "boot/grub/grub.cfg").write_text("menuentry 'Debian' {\n\tlinux /vmlinuz root=/dev/vda1 ro "
                                                 "lockdown=confidentiality\n}\n")
        return "boot/grub/grub.cfg:2 (linux line)"
    if name == "fedora39-bls":
        entry = "boot/loader/entries/f1c3a9e27b4d4e5f8a6b0c2d4e6f8a1b-6.6.9-200.fc39.x86_64.conf"
        _append(root / entry, "rhgb quiet", "rhgb quiet lockdown=confidentiality")
        return f"{entry}:5 (options)"
    if name == "rhel8-bls-kernelopts":
        _append(root / "boot/grub2/grubenv", "rhgb quiet", "rhgb quiet lockdown=confidentiality")
        return "boot/grub2/grubenv:3 (kernelopts)"
    if name == "arch-systemd-boot":
        _append(root / "etc/kernel/cmdline", "splash", "splash lockdown=confidentiality")
        return "etc/kernel/cmdline:1"
    if name == "popos22-kernelstub":
        _append(root / "etc/kernelstub/configuration", '"loglevel=0",', '"loglevel=0", "lockdown=confidentiality",')
        return "etc/kernelstub/configuration (user.kernel_options)"
    if name == "silverblue39-rpm-ostree":
        _append(root / "boot/loader/entries/ostree-1-fedora.conf", "rhgb quiet", "rhgb quiet lockdown=confidentiality")
        return "boot/loader/entries/ostree-1-fedora.conf:3 (options)"
    if name == "uki-signed-only":  # --unit: the confidentiality instance is enabled
        wants = root / "etc/systemd/system/sysinit.target.wants"
        wants.mkdir(parents=True)
        (wants / "lockdownctl-lockdown@confidentiality.service").symlink_to("../lockdownctl-lockdown@.service")
        return "sysinit.target.wants/lockdownctl-lockdown@confidentiality.service"
    return {"debian12-grub-cloud": "etc/default/grub:9 (GRUB_CMDLINE_LINUX_DEFAULT)",
            "uki-kernel-install": "etc/kernel/cmdline:1"}[name]


@pytest.mark.parametrize("name", [*FIXTURES, "grub.cfg", "uki-signed-only"])
def test_enable_never_lowers_without_force(name: str, tmp_path: Path) -> None:
    """Issue 14.1: a higher lockdown= in any entry or variable is refused, naming it; --force lowers it."""
    root = scratch(tmp_path, "debian12-grub-cloud" if name == "grub.cfg" else name)
    where = _higher_in(root, name)
    unit = ["--unit"] if name == "uki-signed-only" else []
    before = tree(root)
    for dry in ([], ["--dry-run"]):
        code, data = run_json("enable", "integrity", *unit, *dry, "--root", str(root))
        assert code == 1, data
        assert "would lower the boot level" in data["refused"] and where in data["refused"], data["refused"]
        assert "lockdown=confidentiality" in data["refused"] and "--force" in data["refused"]
        assert any(lo["where"].endswith(where) and lo["level"] == "confidentiality" for lo in data["lowers"])
        assert tree(root) == before and not (root / "var").exists()
    text = lockdownctl("enable", "integrity", *unit, "--root", str(root))
    assert text.code == 1 and text.out.startswith("refused: enable integrity would lower the boot level: ")
    # the same level, or a higher one, is never refused
    code, data = run_json("enable", "confidentiality", *unit, "--dry-run", "--root", str(root))
    assert "refused" not in data and not data["lowers"], data
    # --force lowers it, and says so
    code, data = run_json("enable", "integrity", *unit, "--force", "--root", str(root))
    assert "refused" not in data and data["verified"] is not False, data
    assert any(where in w and "--force: lowers" in w for w in run_json_warnings(data).splitlines())
    # disable may always lower
    code, data = run_json("disable", *unit, "--root", str(root))
    assert "refused" not in data


@pytest.mark.parametrize("target", ["/usr/share/grub/default/grub", "../../usr/share/grub/default/grub"])
def test_enable_writes_through_a_symlinked_defaults_file(target: str, tmp_path: Path) -> None:
    """Issue 14.5: the link stays, its target inside the root is written (atomically), the backup is complete."""
    root = scratch(tmp_path, "debian12-grub-cloud")
    real = root / "usr/share/grub/default/grub"
    real.parent.mkdir(parents=True)
    (root / "etc/default/grub").rename(real)
    (root / "etc/default/grub").symlink_to(target)
    original = real.read_text()
    code, data = run_json("enable", "confidentiality", "--root", str(root))
    assert code == 0 and data["verified"] is True, data
    assert os.readlink(root / "etc/default/grub") == target  # still the same link
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n' in real.read_text()
    (backup,) = [f["backup"] for f in data["applied"]["files"] if f["path"] == "/etc/default/grub"]
    assert (root / backup.lstrip("/")).read_text() == original
    assert not (root / backup.lstrip("/")).is_symlink()
    assert not [p for p in real.parent.iterdir() if p.name != "grub"]  # no temporary file left
    code, data = run_json("disable", "--root", str(root))
    assert code == 0 and os.readlink(root / "etc/default/grub") == target
    assert "lockdown=" not in real.read_text()


def test_every_boot_fixture_is_covered() -> None:
    """A new tree under tests/data/boot is round-tripped (FIXTURES) or has its own test."""
    trees = {p.name for p in BOOT.iterdir() if p.is_dir()}
    assert trees - SUPPORT == set(FIXTURES) | set(ELSEWHERE), "add it to FIXTURES (or ELSEWHERE with its test)"
    source = Path(__file__).read_text()
    for name, test in ELSEWHERE.items():
        body = source.split(f"def {test}(", 1)[1].split("\ndef ", 1)[0]
        assert f'"{name}"' in body, f"{test} does not use {name}"
    readme = (BOOT / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in trees - SUPPORT), "every root has a row in README.md"


def _grub_root(tmp: Path, values: dict[str, list[str]], dropin: str | None) -> Path:
    root = tmp / "root"
    shutil.copytree(BOOT / "debian12-grub-cloud", root, symlinks=True)
    grub = root / "etc/default/grub"
    text = grub.read_text().replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown=confidentiality"',
                                    'GRUB_CMDLINE_LINUX_DEFAULT="{default}"')
    text = text.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="{linux}"')
    grub.write_text(text.format(default=" ".join(values["default"]), linux=" ".join(values["linux"])))
    cloud = root / "etc/default/grub.d/10_cloud.cfg"
    cloud.write_text(cloud.read_text().replace("consoleblank=0", " ".join(["consoleblank=0", *values["cloud"]])))
    if dropin:
        (root / "etc/default/grub.d/99-lockdownctl.cfg").write_text(own_dropin(dropin))
    return root


def _entry_levels(root: Path) -> dict[str, int]:
    """The level each kind of GRUB entry boots at (the highest valid lockdown=, as the kernel keeps)."""
    env, _, _ = grub_evaluate(View(Root(root)))
    linux = env.get("GRUB_CMDLINE_LINUX", "")
    out = {}
    for entry, cmdline in (("normal", linux + " " + env.get("GRUB_CMDLINE_LINUX_DEFAULT", "")), ("recovery", linux)):
        valid = [v for v in tokens.lockdown_values(cmdline, entry) if v in LEVELS[1:]]
        out[entry] = max((level_rank(v) for v in valid), default=0)
    return out


_TOKEN = st.sampled_from(["lockdown=integrity", "lockdown=confidentiality", "lockdown=none", "lockdown=bogus",
                          "quiet", "splash"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({k: st.lists(_TOKEN, max_size=3) for k in ("default", "linux", "cloud")}),
       dropin=st.sampled_from([None, "integrity", "confidentiality"]),
       level=st.sampled_from(["integrity", "confidentiality"]))
def test_grub_plan_never_lowers(values: dict[str, list[str]], dropin: str | None, level: str) -> None:
    """Issue 14.1 as a property: whatever lockdown= the GRUB variables hold, enable either
    refuses (naming a higher token that is there) or leaves no entry lower than before."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _grub_root(Path(tmp), values, dropin)
        before = _entry_levels(root)
        written = [*values["default"], *values["linux"], *values["cloud"], f"lockdown={dropin}"]
        higher = [t for t in written if t in ("lockdown=integrity", "lockdown=confidentiality")
                  and level_rank(t.split("=")[1]) > level_rank(level)]
        data = execute(Root(root), level, dry_run=False, use_unit=False)
        if higher:
            assert data["exit_code"] == 1 and "would lower the boot level" in data["refused"]
            assert all(lo["level"] == "confidentiality" for lo in data["lowers"]) and data["applied"] is None
            assert _entry_levels(root) == before
        else:
            assert "refused" not in data and data["verified"], data
            after = _entry_levels(root)
            assert all(after[e] >= before[e] for e in before) and set(after.values()) == {level_rank(level)}


def test_confidentiality_replaces_integrity(tmp_path: Path) -> None:
    root = scratch(tmp_path, "arch-systemd-boot")
    assert lockdownctl("enable", "integrity", "--root", str(root)).code == 0
    assert lockdownctl("enable", "confidentiality", "--root", str(root)).code == 0
    text = (root / "etc/kernel/cmdline").read_text()
    assert text == "root=UUID=5f1c0a4e-2b7d-4e3a-9c81-6d2f0e4b7a19 rw rootflags=subvol=@ quiet splash " \
                   "lockdown=confidentiality\n"


def test_grub_cloud_dropin_pitfall_reported(tmp_path: Path) -> None:
    root = scratch(tmp_path, "debian12-grub-cloud")
    _, data = run_json("enable", "confidentiality", "--dry-run", "--root", str(root))
    (setup,) = data["setups"]
    assert any("10_cloud.cfg:2: assigns GRUB_CMDLINE_LINUX without $GRUB_CMDLINE_LINUX" in n for n in setup["notes"])
    assert [c["path"] for c in setup["changes"]] == ["/etc/default/grub", "/etc/default/grub.d/99-lockdownctl.cfg"]
    assert setup["commands"][0]["argv"] == ["update-grub"]
    assert any("superuser password" in w for w in setup["warnings"])


def test_grub_dropin_sorts_after_a_later_reset(tmp_path: Path) -> None:
    root = scratch(tmp_path, "debian12-grub-cloud")
    (root / "etc/default/grub.d/zz-late.cfg").write_text('GRUB_CMDLINE_LINUX="console=hvc0"\n')
    code, data = run_json("enable", "confidentiality", "--root", str(root))
    assert code == 0 and data["verified"]
    assert (root / "etc/default/grub.d/zz99-lockdownctl.cfg").exists()
    checks = data["setups"][0]["verify"]
    assert "console=hvc0 lockdown=confidentiality" in checks[0]["detail"]


def test_grub_without_dropin_dir_edits_in_place(tmp_path: Path) -> None:
    root = scratch(tmp_path, "debian12-grub-cloud")
    shutil.rmtree(root / "etc/default/grub.d")
    code, data = run_json("enable", "confidentiality", "--root", str(root))
    assert code == 0 and data["verified"]
    text = (root / "etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX="lockdown=confidentiality"\n' in text
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n' in text
    assert "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`" in text


@pytest.mark.parametrize("line", ['GRUB_CMDLINE_LINUX="quiet splash', "GRUB_CMDLINE_LINUX='quiet",
                                  'GRUB_DISTRIBUTOR=`lsb_release -i'])
def test_unbalanced_quotes_write_nothing(tmp_path: Path, line: str) -> None:
    root = scratch(tmp_path, "debian12-grub-cloud")
    path = root / "etc/default/grub"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(11, line + "\n")
    path.write_text("".join(lines))
    before = tree(root)
    run = lockdownctl("enable", "integrity", "--root", str(root))
    assert run.code == 2
    assert run.err.startswith(f"lockdownctl: error: {path}:12: unbalanced") and len(run.err.splitlines()) == 1
    assert tree(root) == before and not (root / "var").exists()


@pytest.mark.parametrize(("rel", "line", "what"), [
    ("etc/default/grub", 'if [ -e /x ]; then GRUB_CMDLINE_LINUX="lockdown=confidentiality"; fi', "reserved word 'if'"),
    ("etc/default/grub", 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX:-quiet} x"', "only $NAME and ${NAME}"),
    ("etc/default/grub", 'X=1 true; GRUB_CMDLINE_LINUX="$X"', "an assignment before the command 'true'"),
    ("etc/default/grub", 'GRUB_CMDLINE_LINUX="$1"', "positional or special parameter"),
    ("etc/default/grub", "cat <<EOF", "the command 'cat'"),
    ("etc/default/grub", "GRUB_X=1 <<EOF", "here-document"),
    ("etc/default/grub", "{ GRUB_CMDLINE_LINUX=x; }", "reserved word '{'"),
    ("etc/default/grub", "! GRUB_CMDLINE_LINUX=x", "reserved word '!'"),
    ("etc/default/grub", ". /etc/default/grub.local", "the command '.'"),
    ("etc/default/grub.d/15_timeout.cfg", "case x in x) GRUB_CMDLINE_LINUX=y;; esac", "reserved word 'case'"),
    ("etc/default/grub.d/15_timeout.cfg", 'GRUB_CMDLINE_LINUX_DEFAULT="$(cat /etc/cmdline)"', "not known here"),
    ("etc/default/grub.d/15_timeout.cfg", 'X=`echo a`; GRUB_CMDLINE_LINUX="$X"', "not known here"),
])
def test_unmodelled_shell_refused_with_file_and_line(tmp_path: Path, rel: str, line: str, what: str) -> None:
    """Issue 15.5: never guess what sh would make of a construct shell.py does not evaluate."""
    root = scratch(tmp_path, "debian12-grub-cloud")
    path = root / rel
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(1, line + "\n")
    path.write_text("".join(lines))
    before = tree(root)
    for args in ([], ["--force"], ["--dry-run"]):
        run = lockdownctl("enable", "confidentiality", *args, "--root", str(root))
        assert run.code == 2, run.out
        assert run.err.startswith(f"lockdownctl: error: {path}:2: ") and what in run.err, run.err
        assert len(run.err.splitlines()) == 1
    assert lockdownctl("disable", "--root", str(root)).code == 2
    assert tree(root) == before and not (root / "var").exists()


def test_mixed_quoting_refused_with_line(tmp_path: Path) -> None:
    root = scratch(tmp_path, "debian12-grub-cloud")
    path = root / "etc/default/grub"
    path.write_text(path.read_text().replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown=confidentiality"',
                                             "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"' lockdown=confidentiality'"))
    run = lockdownctl("enable", "confidentiality", "--root", str(root))
    assert run.code == 2 and f"{path}:9:" in run.err and "mixes quoting" in run.err


def test_never_writes_lockdown_none() -> None:
    run = lockdownctl("enable", "none", "--root", str(BOOT / "arch-systemd-boot"))
    assert run.code == 2 and "invalid choice" in run.err


def test_uki_without_rebuild_source_points_to_unit(tmp_path: Path) -> None:
    root = scratch(tmp_path, "uki-signed-only")
    code, data = run_json("enable", "integrity", "--root", str(root))
    assert code == 1 and "--unit" in data["problems"][0] and not (root / "var").exists()


def test_uki_cmdline_section_read_with_pefile() -> None:
    (image,) = (BOOT / "uki-kernel-install/efi/EFI/Linux").glob("*.efi")
    assert read_cmdline(image.read_bytes(), str(image)) == \
        "root=UUID=5f1c0a4e-2b7d-4e3a-9c81-6d2f0e4b7a19 rw quiet lockdown=confidentiality"
    with pytest.raises(InputError, match="not a PE image"):
        read_cmdline(b"MZ" + b"\0" * 100, "x.efi")


def test_uki_stale_image_needs_rebuild(tmp_path: Path) -> None:
    root = scratch(tmp_path, "uki-kernel-install")
    code, data = run_json("enable", "confidentiality", "--dry-run", "--root", str(root))
    # /etc/kernel/cmdline already says confidentiality; the image too: nothing to do
    assert code == 0 and data["changed"] is False
    code, data = run_json("enable", "integrity", "--dry-run", "--force", "--root", str(root))
    assert [c["argv"][0] for c in data["setups"][0]["commands"]] == ["kernel-install"]


def test_unit_install_and_remove(tmp_path: Path) -> None:
    root = scratch(tmp_path, "uki-signed-only")
    code, data = run_json("enable", "integrity", "--unit", "--root", str(root))
    assert code == 0, data
    assert (root / "etc/systemd/system/lockdownctl-lockdown@.service").read_text() == UNIT_TEXT
    assert data["applied"]["commands_not_run"] == [
        f"systemctl --root={root} enable lockdownctl-lockdown@integrity.service"]
    code, data = run_json("disable", "--unit", "--root", str(root))
    assert code == 0 and not (root / "etc/systemd/system/lockdownctl-lockdown@.service").exists()


def test_unit_dry_run_says_would(tmp_path: Path) -> None:
    """Walkthrough 1.1: a dry run never claims "installed" or "removed"."""
    root = scratch(tmp_path, "uki-signed-only")
    unit = "etc/systemd/system/lockdownctl-lockdown@.service"
    code, data = run_json("enable", "integrity", "--unit", "--dry-run", "--root", str(root))
    assert code == 0 and [c["detail"] for s in data["setups"] for c in s["verify"]] == ["would install"]
    text = lockdownctl("enable", "integrity", "--unit", "--dry-run", "--root", str(root)).out
    assert f"{unit}: would install" in text and ": installed" not in text and not (root / unit).exists()
    text = lockdownctl("disable", "--unit", "--dry-run", "--root", str(root)).out
    assert f"{unit}: not installed" in text and "removed" not in text
    assert lockdownctl("enable", "integrity", "--unit", "--root", str(root)).code == 0
    text = lockdownctl("disable", "--unit", "--dry-run", "--root", str(root)).out
    assert f"{unit}: would remove" in text and "removed" not in text and (root / unit).exists()
    code, data = run_json("disable", "--unit", "--root", str(root))
    assert data["setups"][0]["verify"][0]["detail"] == "not installed"


def test_disable_with_no_setup_does_not_advise_raising(tmp_path: Path) -> None:
    code, data = run_json("disable", "--dry-run", "--root", str(tmp_path))
    (problem,) = data["problems"]
    assert code == 1 and "raise" not in problem and "no lockdown= to remove" in problem
    code, data = run_json("enable", "integrity", "--dry-run", "--root", str(tmp_path))
    assert "use --unit to raise the level" in data["problems"][0]


def test_packaged_unit_is_the_one_installed() -> None:
    assert (REPO / "packaging/lockdownctl-lockdown@.service").read_text() == UNIT_TEXT


def test_refused_when_kconfig_forces_the_level() -> None:
    code, data = run_json("enable", "integrity", "--dry-run", "--root", str(ROOTS / "host-6.18-kconfig-integrity"))
    assert code == 1 and "already forces integrity" in data["refused"]


def test_refused_when_lockdown_lsm_inactive() -> None:
    code, data = run_json("enable", "integrity", "--dry-run", "--root", str(ROOTS / "lsm-drops-lockdown"))
    assert code == 3 and "lsm=lockdown," in data["refused"]


def test_readiness_check_refuses_unless_forced() -> None:
    hibernating = DATA / "check" / "hibernation" / "positive"
    code, data = run_json("enable", "integrity", "--dry-run", "--root", str(hibernating))
    assert code == 1 and "(hibernation)" in data["refused"] and "--force" in data["refused"]
    code, data = run_json("enable", "integrity", "--dry-run", "--force", "--root", str(hibernating))
    assert "refused" not in data and data["safety"]["readiness"]["breaks"]
    assert data["safety"]["readiness"]["checked"] is True
    # a tree with boot files only: check reads no evidence, so readiness is unknown, never "0 findings"
    code, data = run_json("enable", "integrity", "--dry-run", "--root", str(BOOT / "arch-systemd-boot"))
    readiness = data["safety"]["readiness"]
    assert code == 0 and readiness["checked"] is False and "0 findings" not in readiness["detail"]
    assert readiness["detail"].startswith("readiness unknown") and "process table" in readiness["detail"]
    run = lockdownctl("enable", "integrity", "--dry-run", "--root", str(BOOT / "arch-systemd-boot"))
    assert f"warning: {readiness['detail']}" in run.err and "0 findings" not in run.out + run.err


def _status(level: str, offered: list[str] | None = None) -> dict[str, Any]:
    return {"level": level, "offered": offered or ["none", "integrity", "confidentiality"],
            "lsm": {"lockdown_active": True}, "notes": []}


@pytest.mark.parametrize(("current", "want", "refused"), [
    ("integrity", "integrity", "already at integrity"),
    ("confidentiality", "integrity", "would lower it from confidentiality"),
    ("none", "integrity", None),
])
def test_now_only_raises(current: str, want: str, refused: str | None) -> None:
    from lockdownctl.boot.now import raise_now
    from lockdownctl.root import Root

    out = raise_now(Root("/"), want, _status(current), dry_run=True)  # dry run: never writes
    assert out["written"] is False
    if refused:
        assert refused in out["refused"] and "only go up until reboot" in out["refused"]
    else:
        assert out["refused"] is None and out["plan"].startswith(f"write {want} to /sys/kernel/security/lockdown")


def test_now_refuses_another_root() -> None:
    run = lockdownctl("enable", "integrity", "--now", "--root", str(BOOT / "arch-systemd-boot"))
    assert run.code == 2 and "--now acts on the running kernel" in run.err


def test_no_setup_found(tmp_path: Path) -> None:
    code, data = run_json("enable", "integrity", "--root", str(tmp_path))
    assert code == 1 and "--unit" in data["problems"][0]


# --- token editing and shell parsing ------------------------------------------


@pytest.mark.parametrize(("before", "level", "after"), [
    ("quiet splash", "integrity", "quiet splash lockdown=integrity"),
    ("lockdown=confidentiality quiet", "integrity", "quiet lockdown=integrity"),
    ("a lockdown=none b lockdown=integrity c\n", "integrity", "a b c lockdown=integrity\n"),
    ('a foo="x lockdown=y" b', None, 'a foo="x lockdown=y" b'),
    ("", "integrity", "lockdown=integrity"),
    ("$GRUB_CMDLINE_LINUX lockdown=integrity", None, "$GRUB_CMDLINE_LINUX"),
])
def test_set_token(before: str, level: str | None, after: str) -> None:
    assert tokens.set_token(before, level) == after


def test_scan_debian_and_fedora_defaults() -> None:
    text = (BOOT / "fedora39-bls/etc/default/grub").read_text()
    names = [a.name for a in scan(text, "grub")]
    assert names == ["GRUB_TIMEOUT", "GRUB_DISTRIBUTOR", "GRUB_DEFAULT", "GRUB_DISABLE_SUBMENU",
                     "GRUB_TERMINAL_OUTPUT", "GRUB_CMDLINE_LINUX", "GRUB_DISABLE_RECOVERY", "GRUB_ENABLE_BLSCFG"]
    value = parse_value('"$GRUB_CMDLINE_LINUX ${X} lit\\"q"')
    assert value.evaluate({"GRUB_CMDLINE_LINUX": "a b", "X": "x"}) == ('a b x lit"q', True)
    assert parse_value("`cmd`").evaluate({}) == ("`cmd`", False)
