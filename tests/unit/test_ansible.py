"""The Ansible collection (ansible/ansible_collections/lockdownctl/lockdown) with real ansible-core.

One ``ansible-playbook`` run (connection local, the real lockdownctl from
this environment, fixture roots) registers every task's result and prints
them as one base64 JSON line; the tests read it. ansible-core starts slowly (about two
seconds a playbook), so the tasks are batched. Nothing here needs root: the
boot configuration is a scratch copy of a fixture root, and the enforcer is
only planned (``--root`` takes no real apply). ``ansible-test sanity`` and
``units`` run on a copy of the collection, ``ansible-galaxy collection
build`` makes the tarball it ships as.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, ROOTS, lockdownctl

COLLECTION = REPO / "ansible" / "ansible_collections" / "lockdownctl" / "lockdown"
GRUB_ROOT = REPO / "tests" / "data" / "boot" / "debian12-grub-cloud"
BIN = Path(sys.executable).parent
ANSIBLE_TEST_HOME = Path(os.environ.get("LOCKDOWNCTL_ANSIBLE_TEST_HOME", "/var/tmp/lockdownctl-ansible-test"))
# the drop-in `enable` writes for this fixture (tests/data/boot/golden has the whole plan)
DROP_IN = "etc/default/grub.d/99-lockdownctl.cfg"
UKI_ROOT = REPO / "tests" / "data" / "boot" / "uki-signed-only"  # signed images, nothing to rebuild them from
CHECK_ROOT = REPO / "tests" / "data" / "check" / "hibernation" / "positive"  # findings that break


def executable() -> str:
    """The lockdownctl that `pip install -e .` put next to this interpreter."""
    path = BIN / "lockdownctl"
    assert path.exists(), f"{path}: lockdownctl is not installed in this environment (pip install -e '.[test]')"
    return str(path)


def ansible_env(home: Path) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "ansible"), "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


RESULTS = "LOCKDOWNCTL-RESULTS:"


def run_playbook(tmp: Path, tasks: list[dict[str, Any]], names: list[str], *args: str,
                 timeout: float = 600) -> tuple[dict[str, Any], str]:
    """Run ``tasks`` on localhost; return every registered result by name and the output.

    The results come back in a ``debug`` line (an action that runs on the
    controller): a ``copy`` to a file would run two more modules, over a
    minute each under TCG in the VM tier."""
    everything = "{" + ", ".join(f"'{n}': {n}" for n in names) + "}"
    tasks = [*tasks, {"name": "results", "ansible.builtin.debug": {
        "msg": RESULTS + "{{ " + everything + " | to_json | b64encode }}"}}]
    book = tmp / "playbook.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", *args, str(book)],
                          capture_output=True, text=True, env=ansible_env(tmp / "home"), timeout=timeout,
                          check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    found = re.findall(re.escape(RESULTS) + r"([A-Za-z0-9+/=]+)", proc.stdout)
    assert len(found) == 1, text
    return json.loads(base64.b64decode(found[0])), text


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def status_roots() -> list[Path]:
    return sorted(p for p in ROOTS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ansible")
    exe = executable()
    enabled, planned, direct, stale, unreadable = (
        tmp / n for n in ("enabled", "planned", "direct", "stale", "unreadable"))
    for copy in (enabled, planned, direct, stale, unreadable):
        shutil.copytree(GRUB_ROOT, copy, symlinks=True)
    # the tool's own run on an identical copy: what the module must leave behind
    ref = lockdownctl("enable", "confidentiality", "--json", "--root", str(direct))
    assert ref.code == 0, ref.out + ref.err
    grub = unreadable / "etc/default/grub"
    if os.geteuid() == 0:  # root reads mode 000: a directory where the file should be is unreadable to anyone
        grub.unlink()
        grub.mkdir()
    else:
        grub.chmod(0)
    uki = tmp / "uki"
    shutil.copytree(UKI_ROOT, uki, symlinks=True)
    not_a_dir = tmp / "not-a-directory"
    not_a_dir.write_text("")
    pristine = tree(enabled)

    def ld(name: str, **params: Any) -> dict[str, Any]:
        return {"name": name, "lockdownctl.lockdown.lockdownctl": {"executable": exe, **params}, "register": name}

    tasks: list[dict[str, Any]] = [
        {"name": "info", "lockdownctl.lockdown.lockdownctl_info": {"executable": exe, "root": "{{ item }}"},
         "loop": [str(p) for p in status_roots()], "register": "info"},
        {"name": "info_check", "lockdownctl.lockdown.lockdownctl_info": {
            "executable": exe, "root": str(CHECK_ROOT), "check": True, "check_level": "confidentiality"},
         "register": "info_check", "check_mode": True},
        {**ld("plan", level="confidentiality", root=str(planned)), "check_mode": True, "diff": True},
        ld("first", level="confidentiality", root=str(enabled)),
        {**ld("second", level="confidentiality", root=str(enabled)), "diff": True},
        {**ld("second_check", level="confidentiality", root=str(enabled)), "check_mode": True},
        {**ld("lower", level="integrity", root=str(enabled)), "ignore_errors": True},
        ld("disable", level="none", root=str(stale)),
        ld("disable_again", level="none", root=str(stale)),
        {**ld("unreadable", level="integrity", root=str(unreadable)), "ignore_errors": True},
        {**ld("not_a_dir", level="integrity", root=str(not_a_dir)), "ignore_errors": True},
        {**ld("uki", level="integrity", root=str(uki)), "ignore_errors": True},
        {"name": "info_not_a_dir", "lockdownctl.lockdown.lockdownctl_info": {"executable": exe, "root": str(not_a_dir)},
         "register": "info_not_a_dir", "ignore_errors": True},
        {**ld("policy_plan", policy=str(REPO / "examples/integrity.yaml"), seal=True, root=str(enabled)),
         "check_mode": True, "diff": True},
        {**ld("policy_root", policy=str(REPO / "examples/integrity.yaml"), root=str(enabled)), "ignore_errors": True},
        # the running level: planned only (check mode) on this machine, never written
        {**ld("now_plan", level="confidentiality", now=True), "check_mode": True, "diff": True, "ignore_errors": True},
        {**ld("now_none", level="none", now=True), "check_mode": True, "ignore_errors": True},
        {**ld("now_root", level="integrity", now=True, root=str(enabled)), "ignore_errors": True},
        {**ld("now_none_root", level="none", now=True, root=str(enabled)), "check_mode": True, "ignore_errors": True},
    ]
    names = [t["register"] for t in tasks]
    results, text = run_playbook(tmp, tasks, names)
    return {"r": results, "text": text, "enabled": enabled, "planned": planned, "direct": direct, "stale": stale,
            "uki": uki, "uki_tree": tree(uki),
            "pristine": pristine, "unreadable": unreadable, "not_a_dir": not_a_dir}


def test_info_equals_status_json_for_every_fixture_root(book: dict[str, Any]) -> None:
    items = book["r"]["info"]["results"]
    assert [i["item"] for i in items] == [str(p) for p in status_roots()]
    for item in items:
        ref = lockdownctl("status", "--json", "--root", item["item"])
        assert item["status"] == ref.json()["data"], item["item"]
        assert item["status_code"] == ref.code
        assert item["changed"] is False and not item.get("failed")


def without_timings(doc: Any) -> Any:
    """``check`` times each detector: the one value that differs between two runs."""
    if isinstance(doc, dict):
        return {k: without_timings(v) for k, v in doc.items() if k != "seconds"}
    if isinstance(doc, list):
        return [without_timings(v) for v in doc]
    return doc


def test_info_check_equals_check_json(book: dict[str, Any]) -> None:
    res = book["r"]["info_check"]
    ref = lockdownctl("check", "--level", "confidentiality", "--json", "--root", str(CHECK_ROOT))
    assert ref.code == 1  # a finding that breaks is a result, not a failure of the module
    assert without_timings(res["check"]) == without_timings(ref.json()["data"])
    assert res["changed"] is False and not res.get("failed")


def test_check_mode_writes_nothing_and_diff_shows_the_edit(book: dict[str, Any]) -> None:
    plan = book["r"]["plan"]
    assert plan["changed"] is True and plan["reboot_required"] is True
    assert tree(book["planned"]) == book["pristine"]  # not a byte written, no backup directory
    assert plan["boot"]["setups"] == ["grub"]
    prepared = "".join(d["prepared"] for d in plan["diff"])
    assert '+GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX lockdown=confidentiality"' in prepared
    assert '-GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown=confidentiality"' in prepared
    assert "# command: update-grub" in prepared
    # the diff is what the tool's own dry run prints, and ansible-playbook --diff shows it
    dry = lockdownctl("enable", "confidentiality", "--dry-run", "--json", "--root", str(GRUB_ROOT)).json()["data"]
    assert [d["prepared"] for d in plan["diff"][:-1]] == [c["diff"] for s in dry["setups"] for c in s["changes"]]
    assert f"+++ b/{DROP_IN}" in book["text"]


def test_enable_writes_the_real_file_then_is_idempotent(book: dict[str, Any]) -> None:
    r, enabled, direct = book["r"], book["enabled"], book["direct"]
    assert r["first"]["changed"] is True and r["first"]["reboot_required"] is True
    assert r["first"]["boot"]["commands_not_run"] == ["update-grub"]  # --root never runs the boot loader's tools
    assert r["first"]["boot"]["verified"] is True
    for rel in ("etc/default/grub", DROP_IN):  # byte for byte what `lockdownctl enable` itself writes
        assert (enabled / rel).read_bytes() == (direct / rel).read_bytes(), rel
    assert tree(enabled) != book["pristine"]
    ref = lockdownctl("enable", "confidentiality", "--dry-run", "--json", "--root", str(GRUB_ROOT)).json()
    grub_warning = next(w for w in ref["warnings"] if w.startswith("GRUB has no superuser password"))
    assert f"[WARNING]: {grub_warning}" in book["text"]  # the tool's warnings reach the play
    for name in ("second", "second_check"):
        assert r[name]["changed"] is False, name
        assert "diff" not in r[name]
    # the fixture has no securityfs: the running level is unknown, so only a change asks for a reboot
    assert r["first"]["running_level"] is None and r["second"]["reboot_required"] is False


def test_disable_removes_the_token_once(book: dict[str, Any]) -> None:
    r, stale = book["r"], book["stale"]
    assert r["disable"]["changed"] is True and r["disable_again"]["changed"] is False
    assert "lockdown=" not in (stale / "etc/default/grub").read_text()
    assert r["disable"]["level"] == "none"


def test_lowering_is_refused_with_the_tools_message(book: dict[str, Any]) -> None:
    lower = book["r"]["lower"]
    ref = lockdownctl("enable", "integrity", "--dry-run", "--json", "--root", str(book["enabled"]))
    assert lower["failed"] is True and lower["rc"] == ref.code == 1
    refused = " ".join(ref.json()["data"]["refused"].split())
    assert lower["msg"] == f"lockdownctl enable exited 1: {refused}"


def test_a_problem_the_tool_cannot_solve_is_its_message(book: dict[str, Any]) -> None:
    uki = book["r"]["uki"]
    ref = lockdownctl("enable", "integrity", "--dry-run", "--json", "--root", str(UKI_ROOT))
    problem = " ".join(ref.json()["data"]["problems"][0].split())
    assert "--unit" in problem and uki["failed"] is True and uki["rc"] == ref.code == 1
    assert uki["msg"] == f"lockdownctl enable exited 1: {problem}"
    assert book["uki_tree"] == tree(UKI_ROOT)  # refused at the plan: nothing written


@pytest.mark.parametrize("name, words", [
    ("unreadable", ["enable", "integrity", "--dry-run"]),
    ("not_a_dir", ["enable", "integrity", "--dry-run"]),
    ("info_not_a_dir", ["status"]),
])
def test_failures_are_the_tools_exit_code_and_message(book: dict[str, Any], name: str, words: list[str]) -> None:
    res = book["r"][name]
    root = book["not_a_dir"] if "not_a_dir" in name else book["unreadable"]
    ref = lockdownctl(*words, "--json", "--root", str(root))
    message = ref.json()["errors"][0]["message"]
    assert res["failed"] is True and res["rc"] == ref.code == 2
    assert res["msg"] == f"lockdownctl {words[0]} exited 2: {message}"
    # ansible-core marks every failed result "exception: (traceback unavailable)"; none is a traceback
    assert "\n" not in res["msg"] and "Traceback" not in json.dumps(res) and "Traceback" not in book["text"]


def test_policy_is_planned_under_a_root_and_refused_for_real(book: dict[str, Any]) -> None:
    r = book["r"]
    policy = str(REPO / "examples/integrity.yaml")
    ref = lockdownctl("enforce", "apply", policy, "--seal", "--dry-run", "--json", "--root", str(book["enabled"]))
    plan = r["policy_plan"]
    assert plan["changed"] is True and plan["enforcer"]["action"] == "planned"
    assert plan["enforcer"]["policy_id"] == ref.json()["data"]["policy_id"]
    assert plan["diff"][0]["after"] == {"loaded": True, "policy_id": plan["enforcer"]["policy_id"],
                                        "mode": "enforce", "sealed": True}
    real = lockdownctl("enforce", "apply", policy, "--json", "--root", str(book["enabled"]))
    assert r["policy_root"]["failed"] is True and r["policy_root"]["rc"] == real.code == 2
    assert r["policy_root"]["msg"] == "lockdownctl enforce apply exited 2: " + real.json()["errors"][0]["message"]


def test_now_in_check_mode_is_the_tools_plan_for_the_running_kernel(book: dict[str, Any]) -> None:
    """Check mode only: this machine's level is never written. Whatever this
    kernel runs at, the module says what the tool's own dry run says."""
    res = book["r"]["now_plan"]
    ref = lockdownctl("enable", "confidentiality", "--now", "--dry-run", "--json")
    data = ref.json()["data"]
    running = data["kernel"]["level"]
    if running == "confidentiality":
        assert res["changed"] is False and not res.get("failed")
    elif ref.code == 0:  # the tool would write: changed, nothing written, the diff is the level
        assert res["changed"] is True and res["now"]["written"] is False and res["now"]["plan"] == data["now"]["plan"]
        assert res["diff"] == [{"before_header": "/sys/kernel/security/lockdown",
                                "after_header": "/sys/kernel/security/lockdown",
                                "before": {"level": running}, "after": {"level": "confidentiality"}}]
    else:  # refused (readiness findings, no lockdown LSM, ...): the tool's message
        why = data.get("refused") or (data.get("now") or {}).get("refused") or ref.json()["errors"][0]["message"]
        assert res["failed"] is True and res["rc"] == ref.code
        assert res["msg"] == f"lockdownctl enable exited {ref.code}: " + " ".join(why.split())
    if not res.get("failed"):
        assert res["running_level"] == running and res["reboot_required"] is False and "boot" not in res
    none = book["r"]["now_none"]
    level = lockdownctl("status", "--json").json()["data"]["level"]
    if level == "none":
        assert none["changed"] is False and not none.get("failed")
    else:
        assert none["failed"] is True and none["rc"] == 1
        assert none["msg"].startswith(f"lockdownctl status: the running kernel is at {level}: lockdown levels "
                                      "only go up until reboot, so none cannot be set now")


def test_now_with_a_root_is_refused_before_anything_runs(book: dict[str, Any]) -> None:
    """The tool refuses --now with --root even in a dry run; the module refuses the pair
    itself, for level none too (which the tool is never asked about: a root's level would
    have passed for the running kernel's)."""
    ref = lockdownctl("enable", "integrity", "--now", "--dry-run", "--json", "--root", str(GRUB_ROOT))
    assert ref.code == 2 and "--now acts on the running kernel" in ref.json()["errors"][0]["message"]
    for name in ("now_root", "now_none_root"):
        res = book["r"][name]
        assert res["failed"] is True and res["msg"] == "parameters are mutually exclusive: now|root", res
        assert "now" not in res and "running_level" not in res


# --- ansible-test and ansible-galaxy on a copy of the collection ---------------------------------------------------

SANITY_TESTS = ["validate-modules", "pep8", "ansible-doc", "yamllint", "runtime-metadata", "import", "compile",
                "shebang", "symlinks", "line-endings", "no-smart-quotes", "action-plugin-docs", "pylint"]


def _pip_bootstrap() -> None:
    """ansible-test builds a virtual environment per sanity test and bootstraps pip in it with a script it
    downloads from ci-files.testing.ansible.com; its cache path takes a local one instead: pip from the
    interpreter's ensurepip, then ansible-test's own pinned pip from the package index."""
    source = (BIN.parent / "lib").glob("python3*/site-packages/ansible_test/_internal/python_requirements.py")
    version = re.search(r"pip='([0-9.]+)'", next(iter(source)).read_text())
    assert version is not None
    cache = ANSIBLE_TEST_HOME / ".ansible/test/cache" / f"get_pip_{version[1].replace('.', '_')}.py"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text('"""ansible-test pip bootstrap from ensurepip (tests/unit/test_ansible.py)."""\n'
                     "import ensurepip\nimport runpy\nimport sys\n\nensurepip.bootstrap(upgrade=True)\n"
                     'sys.argv = ["pip", "install"] + [a for a in sys.argv[1:] if a not in '
                     '("--no-setuptools", "--no-wheel")]\n'
                     'runpy.run_module("pip", run_name="__main__", alter_sys=True)\n')


def _copy(tmp: Path) -> Path:
    dest = tmp / "ansible_collections" / "lockdownctl" / "lockdown"
    shutil.copytree(COLLECTION, dest, ignore=shutil.ignore_patterns("output", "__pycache__", "*.tar.gz"))
    return dest


def _ansible_test(cwd: Path, *args: str) -> str:
    env = {**ansible_env(cwd / "home"), "HOME": str(ANSIBLE_TEST_HOME)}  # its venv cache lives in $HOME
    proc = subprocess.run([str(BIN / "ansible-test"), *args, "--local", "--python",
                           f"{sys.version_info[0]}.{sys.version_info[1]}", "--color", "no"],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def test_ansible_test_sanity(tmp_path: Path) -> None:
    _pip_bootstrap()
    out = _ansible_test(_copy(tmp_path), "sanity", *[a for t in SANITY_TESTS for a in ("--test", t)])
    for name in SANITY_TESTS:
        assert f'Running sanity test "{name}"' in out, name


def test_ansible_test_units(tmp_path: Path) -> None:
    out = _ansible_test(_copy(tmp_path), "units")
    assert re.search(r"\b(\d+) passed\b", out), out


def test_galaxy_build_ships_both_modules(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
                           "--output-path", str(tmp_path)], capture_output=True, text=True,
                          env=ansible_env(tmp_path / "home"), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    tarball = tmp_path / f"lockdownctl-lockdown-{galaxy['version']}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert {"plugins/modules/lockdownctl.py", "plugins/modules/lockdownctl_info.py",
            "plugins/module_utils/lockdownctl.py", "meta/runtime.yml", "README.md"} <= names
    assert not any(n.startswith("tests/output") for n in names)
    assert manifest["collection_info"]["license"] == ["GPL-2.0-only"]
    # installable as users install it
    env = {**ansible_env(tmp_path / "home"), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "installed")}
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p",
                           str(tmp_path / "installed")], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    doc = subprocess.run([str(BIN / "ansible-doc"), "--json", "lockdownctl.lockdown.lockdownctl",
                          "lockdownctl.lockdown.lockdownctl_info"], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert doc.returncode == 0, doc.stdout + doc.stderr
    docs = json.loads(doc.stdout)
    assert str(tmp_path / "installed") in docs["lockdownctl.lockdown.lockdownctl"]["doc"]["filename"]
    assert docs["lockdownctl.lockdown.lockdownctl"]["return"]["reboot_required"]["type"] == "bool"
    assert docs["lockdownctl.lockdown.lockdownctl_info"]["doc"]["attributes"]["check_mode"]["support"] == "full"
