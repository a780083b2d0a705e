"""Path exceptions (#20, "Exemptions that are sound"): one debugfs file exempted
from the enforcer's debugfs denial. Parsing and validation (file:line errors,
exit 2), resolution, the kernel support check (exit 3), the protection graph,
and the map contents both policy generations get."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import time
from pathlib import Path

import pytest

from lockdownctl.bpf import abi, dbgfs, enforcer, hooks, libbpf
from lockdownctl.bpf.resolve import resolve
from lockdownctl.btf import parse_lockdown_enum
from lockdownctl.errors import InputError
from lockdownctl.policy import parse_policy
from lockdownctl.protection import analyse
from lockdownctl.reasons import DEBUGFS_UNGATED_TWIN, merge
from lockdownctl.root import Root
from tests.conftest import host_btf_bytes, lockdownctl

HOST = merge(parse_lockdown_enum(host_btf_bytes(), "host"))
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "btf" / "hooks"
CONTROL = "/sys/kernel/debug/dynamic_debug/control"
GOOD = f"""version: 1
profile: integrity
exceptions:
  - name: dyndbg
    path: {CONTROL}
    allow: [debugfs]
"""


def debugfs_bit() -> int:
    value = HOST.get("debugfs").value
    assert value is not None
    return 1 << value


def one(path: str, allow: str = "[debugfs]") -> str:
    return f"version: 1\nprofile: integrity\nexceptions:\n  - name: x\n    path: {path}\n    allow: {allow}\n"


def test_a_path_exception_parses() -> None:
    policy = parse_policy(GOOD, "p.yaml", HOST)
    (exc,) = policy.exceptions
    assert (exc.kind, exc.value, exc.allow, exc.name, exc.line) == ("path", CONTROL, ["debugfs"], "dyndbg", 4)
    assert policy.to_dict()["exceptions"][0]["kind"] == "path"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (one("dynamic_debug/control"), "p.yaml:5: path must be an absolute, normalised path"),
        (one("/sys/kernel/debug/../debug/x"), "p.yaml:5: path must be an absolute, normalised path"),
        (one("/sys/kernel/debug//x"), "p.yaml:5: path must be an absolute, normalised path"),
        (one("/proc/dynamic_debug/control"), "p.yaml:5: path /proc/dynamic_debug/control is not a debugfs file"),
        (one("/sys/kernel/debug"), "p.yaml:5: path /sys/kernel/debug is not a debugfs file"),
        (one("/sys/kernel/debug/tracing/trace"), "p.yaml:5: path /sys/kernel/debug/tracing/trace is in tracefs"),
        (one(CONTROL, "[debugfs, msr]"), "p.yaml:6: a path exception allows only debugfs, not debugfs, msr"),
        (one(CONTROL, "[tracefs]"), "p.yaml:6: a path exception allows only debugfs, not tracefs"),
        (one(CONTROL, "[debugfz]"), "p.yaml:6: unknown lockdown reason 'debugfz'"),
        (f"version: 1\nexceptions:\n  - path: {CONTROL}\n    exe: /bin/x\n    allow: [debugfs]\n",
         "p.yaml:3: an exception needs exactly one of exe, cgroup, uid, comm, path"),
    ],
)
def test_bad_path_exceptions_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_policy(text, "p.yaml", HOST)
    assert info.value.message.startswith(message), info.value.message


def test_validate_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(one("/etc/passwd"))
    run = lockdownctl("policy", "validate", str(bad))
    assert run.code == 2, run.err
    assert run.err.startswith(f"lockdownctl: error: {bad}:5: path /etc/passwd is not a debugfs"), run.err
    bad.write_text(one(CONTROL, "[kexec]"))
    run = lockdownctl("enforce", "apply", str(bad), "--dry-run")
    assert run.code == 2 and f"{bad}:6: a path exception allows only debugfs" in run.err, run.err


def test_below_a_root_the_file_is_not_resolved(tmp_path: Path) -> None:
    # a --root has no debugfs: reported unresolved, never matched by a name found there
    (tmp_path / "sys/kernel/debug/dynamic_debug").mkdir(parents=True)
    (tmp_path / "sys/kernel/debug/dynamic_debug/control").write_text("")
    resolved = resolve(parse_policy(GOOD, "p.yaml", HOST), HOST, Root(str(tmp_path)))
    assert "path" not in resolved.exceptions and resolved.mark_reasons == 0 and resolved.warnings == []
    assert resolved.paths == [{"path": CONTROL, "line": 4, "file_id": None}]


def test_a_missing_file_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    stat = os.stat

    def missing(p: str, *a: object, **k: object) -> os.stat_result:
        if p == CONTROL:
            raise FileNotFoundError(2, "No such file or directory")
        return stat(p, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", missing)
    resolved = resolve(parse_policy(GOOD, "p.yaml", HOST), HOST, Root("/"))
    assert "path" not in resolved.exceptions and resolved.mark_reasons == 0
    assert resolved.warnings == [f"p.yaml:4: exception dyndbg skipped: {CONTROL} does not exist (debugfs not "
                                 "mounted at /sys/kernel/debug, or its module not loaded)"]


def test_a_file_that_is_not_on_debugfs_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The live system: the path exists but lives on another file system.
    fake_control(monkeypatch, tmp_path, "ext4")
    with pytest.raises(InputError) as info:
        resolve(parse_policy(GOOD, "p.yaml", HOST), HOST, Root("/"))
    assert info.value.message == (f"p.yaml:4: path {CONTROL} is on ext4, not debugfs: a path exception names a "
                                  "debugfs file")


def test_resolved_identity_and_mark_reasons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = fake_control(monkeypatch, tmp_path, "debugfs")
    resolved = resolve(parse_policy(GOOD, "p.yaml", HOST), HOST, Root("/"))
    bit = debugfs_bit()
    assert resolved.exceptions["path"] == [((abi.kernel_dev(st.st_dev), st.st_ino), bit, "dyndbg")]
    assert resolved.mark_reasons == bit
    assert resolved.paths == [{"path": CONTROL, "line": 4,
                               "file_id": f"{abi.dev_text(abi.kernel_dev(st.st_dev))}:{st.st_ino}"}]
    key = abi.map_key("path", 1, resolved.exceptions["path"][0][0])
    assert isinstance(key, abi.LdExeKey) and (key.slot, key.dev, key.ino) == (1, abi.kernel_dev(st.st_dev),
                                                                              st.st_ino)


def fake_control(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fstype: str) -> os.stat_result:
    """The live system as seen by resolve(): CONTROL is a regular file on ``fstype``."""
    from lockdownctl.bpf import resolve as resolve_mod

    real = tmp_path / "control"
    real.write_text("")
    st = real.stat()
    stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: st if p == CONTROL else stat(p, *a, **k))
    monkeypatch.setattr(resolve_mod, "fstype_at", lambda p: fstype if p == CONTROL else None)
    return st


class FakeMaps:
    """The enforcer's map writes, recorded (write_policy's logic without a kernel)."""

    def __init__(self) -> None:
        self.maps: dict[int, dict[bytes, bytes]] = {}

    def update(self, fd: int, key: ctypes._CData, value: ctypes._CData, flags: int = 0) -> None:
        self.maps.setdefault(fd, {})[bytes(key)] = bytes(value)

    def delete(self, fd: int, key: ctypes._CData) -> None:
        if bytes(key) not in self.maps.get(fd, {}):
            raise OSError(errno.ENOENT, "No such file or directory")
        del self.maps[fd][bytes(key)]

    def keys(self, fd: int, key_type: type[ctypes.Structure]) -> list[ctypes.Structure]:
        return [key_type.from_buffer_copy(k) for k in self.maps.get(fd, {})]


def test_both_generations_get_the_path_exception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    st = fake_control(monkeypatch, tmp_path, "debugfs")
    with_path = resolve(parse_policy(GOOD, "p.yaml", HOST), HOST, Root("/"))
    without = resolve(parse_policy("version: 1\nprofile: integrity\n", "q.yaml", HOST), HOST, Root("/"))
    maps = FakeMaps()
    monkeypatch.setattr(libbpf, "map_update", maps.update)
    monkeypatch.setattr(libbpf, "map_delete", maps.delete)
    monkeypatch.setattr(libbpf, "map_keys", maps.keys)
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the grace period before the old slot is cleared
    policy = abi.LdPolicy()

    class View:
        def close(self) -> None:
            pass

    fds = {pin: i for i, pin in enumerate(abi.MAPS)}
    enf = enforcer.Enforcer(fds)
    monkeypatch.setattr(enf, "_policy_view", lambda writable=True: (View(), policy))
    bit = debugfs_bit()
    ident = (abi.kernel_dev(st.st_dev), st.st_ino)

    def path_map() -> dict[tuple[int, int, int], int]:
        return {(k.slot, k.dev, k.ino): int.from_bytes(v, "little")
                for kb, v in maps.maps.get(fds["path_exceptions"], {}).items()
                for k in [abi.LdExeKey.from_buffer_copy(kb)]}

    for gen, resolved in enumerate([with_path, with_path, without, with_path], start=1):
        enf.write_policy(resolved)
        slot = policy.gen & 1
        assert policy.gen == gen
        if resolved is with_path:  # the active slot holds the file and the mark's reasons; the old slot is empty
            assert path_map() == {(slot, *ident): bit, (slot, 0, 0): bit}
            assert policy.paths[slot] == 1  # file_open marks only while the active slot has path exceptions
        else:
            assert path_map() == {} and policy.paths[slot] == 0
    monkeypatch.setattr(enf, "read_policy", lambda: {"slot": policy.gen & 1})
    assert enf.exceptions()["path"] == 1  # the {slot, 0, 0} entry is not an exception


def test_kernel_support_is_read_from_btf() -> None:
    for kernel in sorted(FIXTURES.glob("*.btf")):
        hooks_only = kernel.read_bytes()
        # the fixtures hold the hooks only: task storage is what they lack
        assert dbgfs.btf_problem(hooks_only, kernel.name) == (
            f"no BPF task storage (bpf_task_storage_get is not in {kernel.name})")
    assert dbgfs.btf_problem(host_btf_bytes(), "host") == ""
    # a kernel without the file_open hook
    data = host_btf_bytes().replace(b"\0bpf_lsm_file_open\0", b"\0bpf_lsm_file_opem\0")
    assert dbgfs.btf_problem(data, "k") == "ldctl_file_open: the kernel has no LSM hook file_open"


def test_refused_unless_the_kernel_is_at_none(tmp_path: Path) -> None:
    policy = parse_policy(GOOD, "p.yaml", HOST)
    btf = tmp_path / "sys/kernel/btf/vmlinux"
    btf.parent.mkdir(parents=True)
    btf.write_bytes(host_btf_bytes())
    root = Root(str(tmp_path))
    assert dbgfs.problem(policy, HOST, "none", root) == ""
    for level in ("integrity", "confidentiality"):
        why = dbgfs.problem(policy, HOST, level, root)
        assert why.startswith("p.yaml:4: path exceptions cannot work here: the kernel itself is at " + level)
    assert "cannot be read" in dbgfs.problem(policy, HOST, None, root)
    btf.write_bytes(host_btf_bytes().replace(b"\0bpf_task_storage_get\0", b"\0bpf_task_storage_gex\0"))
    assert dbgfs.problem(policy, HOST, "none", root).endswith("no BPF task storage (bpf_task_storage_get is not "
                                                              f"in {tmp_path}/sys/kernel/btf/vmlinux)")
    no_paths = parse_policy("version: 1\nprofile: integrity\n", "q.yaml", HOST)
    assert dbgfs.problem(no_paths, HOST, "integrity", root) == ""


def test_apply_refuses_with_exit_3_on_an_integrity_kernel(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/btf").mkdir(parents=True)
    (tmp_path / "sys/kernel/btf/vmlinux").write_bytes(host_btf_bytes())
    (tmp_path / "sys/kernel/security").mkdir(parents=True)
    (tmp_path / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD)
    run = lockdownctl("enforce", "apply", str(policy), "--dry-run", "--root", str(tmp_path), "--json")
    assert run.code == 0, run.err
    assert f"enforce apply would fail here (exit 3): {policy}:4: path exceptions cannot work here: the kernel " \
           "itself is at integrity" in "\n".join(run.json()["warnings"])
    (tmp_path / "sys/kernel/security/lockdown").write_text("[none] integrity confidentiality\n")
    run = lockdownctl("enforce", "apply", str(policy), "--dry-run", "--root", str(tmp_path), "--json")
    assert run.code == 0 and "exit 3" not in "\n".join(run.json().get("warnings", [])), run.out


def test_protection_counts_a_sound_path_exception_as_no_route() -> None:
    assert DEBUGFS_UNGATED_TWIN[CONTROL] == "/proc/dynamic_debug/control"
    graph = analyse(parse_policy(GOOD, "p.yaml", HOST), HOST)
    everyone, dyndbg = graph["subjects"]
    assert everyone["integrity"]["state"] == "holds" and dyndbg["integrity"]["state"] == "holds"
    assert graph["sound"] == ["exception:0"] and graph["warnings"] == []
    assert dyndbg["widens"].startswith("the file, not its opener, is exempted")
    grant = next(g for g in graph["grants"] if g["reason"] == "debugfs")
    assert grant["granted_to"] == ["exception:0"]
    # Another debugfs file: a route for debugfs (kernel write), with a warning naming it.
    other = parse_policy(one("/sys/kernel/debug/ec/ec0/io"), "p.yaml", HOST)
    graph = analyse(other, HOST)
    assert graph["subjects"][0]["integrity"]["state"] == "bypassable"
    (route,) = graph["subjects"][0]["integrity"]["routes"]
    assert route["reason"] == "debugfs" and route["granted"] == [
        "allowed for opens of /sys/kernel/debug/ec/ec0/io only, by any process (a debugfs file with write "
        "access may reach hardware)"]
    assert any(w.startswith("p.yaml:4: exception x (path /sys/kernel/debug/ec/ec0/io) exempts") for w in
               graph["warnings"])


def test_the_programs_attach_to_hooks_every_kernel_has() -> None:
    lockdown = hooks.VARIANTS["lockdown"][0]
    assert [p.hook for p in lockdown.programs] == ["locked_down", "file_open", "inode_setattr"]
    assert list(enforcer.LINK_PINS) == [p.name for p in lockdown.programs]
    assert "task_marks" in abi.POLICY_MAPS and abi.PROGRAM_WRITTEN == ("task_marks",)


def test_check_proposes_the_procfs_twin_and_the_sound_path_exception() -> None:
    from tests.unit.test_check import _run

    (f,) = [f for f in _run("debug", "positive")["findings"] if f["title"].startswith("dyndbg-helper")]
    assert f["remedy"].startswith("use /proc/dynamic_debug/control (the same control file in procfs, with no "
                                  "lockdown check: it works at every level, no policy change)")
    assert f["policy"] == f"exceptions: [{{name: control, path: {CONTROL}, allow: [debugfs]}}]"
    assert f["exposes"].startswith(f"exempts only {CONTROL}, which the kernel also offers as "
                                   "/proc/dynamic_debug/control with no lockdown check: no route")
    # the snippet is a valid policy with no route
    policy = parse_policy("version: 1\nprofile: integrity\n" + f["policy"] + "\n", "p.yaml", HOST)
    assert analyse(policy, HOST)["subjects"][0]["integrity"]["state"] == "holds"


def test_explain_debugfs_names_the_procfs_twin() -> None:
    run = lockdownctl("explain", "debugfs", "--json")
    data = run.json()["data"]
    text = json.dumps(data)
    assert run.code == 0 and DEBUGFS_UNGATED_TWIN[CONTROL] in text and "no lockdown check" in text
    assert "path exception" in text


def test_status_says_when_the_file_was_re_created(tmp_path: Path) -> None:
    f = tmp_path / "control"
    f.write_text("")
    st = f.stat()
    entry = {"path": str(f), "line": 4, "file_id": f"{abi.dev_text(abi.kernel_dev(st.st_dev))}:{st.st_ino}"}
    assert enforcer.stale_path(entry) is None
    keep = tmp_path / "keep"
    f.rename(keep)  # the inode stays in use, so the new file gets another
    f.write_text("")
    assert (enforcer.stale_path(entry) or "").endswith(f"the policy matches {entry['file_id']}: apply it again")
    f.unlink()
    assert enforcer.stale_path(entry) == f"{f}: No such file or directory"


def test_an_event_names_the_debugfs_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lockdownctl.bpf import decode

    f = tmp_path / "debug" / "fault_around_bytes"
    f.parent.mkdir()
    f.write_text("")
    st = f.stat()
    # the decoder walks every debugfs mount: here a directory standing in for one
    monkeypatch.setattr("lockdownctl.mountinfo.mounts", lambda: [(str(tmp_path / "debug"), "debugfs")])
    value = HOST.get("debugfs").value
    assert value is not None
    rec = abi.LdEvent(time_ns=5 * 10**9, pid=999999, tid=999999, reason=value, verdict=abi.LD_DENY, comm=b"python3",
                      file_ino=st.st_ino, file_dev=abi.kernel_dev(st.st_dev))
    out = decode.EventDecoder(HOST).decode(bytes(rec))
    assert out["reason"] == "debugfs" and out["file"] == str(f)
    assert out["file_id"] == f"{abi.dev_text(abi.kernel_dev(st.st_dev))}:{st.st_ino}"
    assert decode.render_event(out).endswith(f" file {f}")
    rec.file_ino = 0  # no mark: no file
    plain = decode.EventDecoder(HOST).decode(bytes(rec))
    assert plain["file"] is None and plain["file_id"] is None and " file " not in decode.render_event(plain)
