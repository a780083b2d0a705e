"""The enforcer's state file when /run/lockdownctl cannot take it (state/pins.py, fsio.Reservation).

``enforce apply`` takes the state file's room before it changes the kernel,
so a full or read-only directory fails first (exit 74, nothing changed);
``enforce status`` uses the state file only when it names the running policy.
Real full and read-only mounts in real kernels: tests/vm/test_apply_full.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lockdownctl.errors import EXIT_OUTPUT, OutputError
from lockdownctl.fsio import Reservation
from lockdownctl.state import pins


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "run"
    monkeypatch.setattr(pins, "STATE_DIR", str(d))
    monkeypatch.setattr(pins, "STATE", str(d / "enforcer.json"))
    return d


def test_room_is_taken_first_and_the_file_replaced_only_at_commit(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text("old")
    path.chmod(0o600)
    room = Reservation(str(path), 10000)
    (tmp,) = [p for p in tmp_path.iterdir() if p != path]
    assert tmp.stat().st_size == 10000 and path.read_text() == "old"  # the room, the old file untouched
    room.commit("new")
    assert sorted(tmp_path.iterdir()) == [path] and path.read_text() == "new"  # truncated to its contents
    assert path.stat().st_mode & 0o777 == 0o600  # the old file's mode
    room.abort()  # after commit: nothing to give back, the file stays
    assert path.read_text() == "new"


def test_contents_larger_than_the_room_are_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    room = Reservation(str(path), 3)
    room.commit("x" * 70000)
    assert path.read_text() == "x" * 70000 and os.listdir(tmp_path) == ["f"]


def test_a_commit_that_fails_keeps_the_old_file_and_gives_the_room_back(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.mkdir()  # rename(2) of a file over a directory: EISDIR
    room = Reservation(str(path), 100)
    with pytest.raises(IsADirectoryError):
        room.commit("new")
    assert os.listdir(tmp_path) == ["f"] and path.is_dir()


def test_unwritable_state_directory_is_exit_74_before_anything(state_dir: Path, tmp_path: Path) -> None:
    state_dir.parent.joinpath("blocker").write_text("")
    pins.STATE_DIR = str(tmp_path / "blocker" / "run")  # (monkeypatch restores it) ENOTDIR
    pins.STATE = pins.STATE_DIR + "/enforcer.json"
    with pytest.raises(OutputError) as exc:
        pins.reserve_state({"policy_id": "1"})
    assert exc.value.exit_code == EXIT_OUTPUT == 74
    assert exc.value.message.startswith(f"{pins.STATE}: cannot write: Not a directory: nothing was loaded")


def test_reserve_state_removes_strays_of_killed_applies(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / ".enforcer.json.abc123.lockdownctl").write_text("x" * 100)  # a killed apply's room
    (state_dir / "btf-ids").write_text("kept")
    room = pins.reserve_state({"policy_id": "00000000000000aa"})
    pins.save_state({"policy_id": "00000000000000aa"}, room)
    assert sorted(os.listdir(state_dir)) == ["btf-ids", "enforcer.json"]
    assert json.loads((state_dir / "enforcer.json").read_text()) == {"policy_id": "00000000000000aa"}


def test_state_names_the_running_policy_or_is_not_used(state_dir: Path) -> None:
    state, why = pins.state_of("00000000000000aa")
    assert state == {} and why is not None and "missing" in why
    pins.save_state({"policy_id": "00000000000000aa", "policy_file": "/etc/old.yaml"})
    assert pins.state_of("00000000000000aa") == ({"policy_id": "00000000000000aa", "policy_file": "/etc/old.yaml"},
                                                 None)
    state, why = pins.state_of("00000000000000bb")  # an apply changed the kernel, could not save
    assert state == {} and why == (f"{pins.STATE} names policy 00000000000000aa, the kernel runs "
                                   "00000000000000bb (its state was not saved): apply the policy again")


def test_policy_id_offset_is_the_structs() -> None:
    """status reads the running policy id without importing bpf/abi.py or bpf/gate.py: the same
    offset, and the same pin that says a signed seal refuses every fd to the policy map."""
    from lockdownctl.bpf import gate
    from lockdownctl.bpf.abi import LdPolicy

    assert gate.INFO == pins.GATE_INFO
    assert LdPolicy.policy_id.offset == pins.POLICY_ID_OFFSET


def test_no_enforcer_no_running_policy_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pins, "PIN_DIR", str(tmp_path))  # no pinned policy map there
    assert pins.running_policy_id() is None
