"""root.py: the child-process helper that status and securityfs use."""

from __future__ import annotations

import os

import pytest

from lockdownctl.cli.status import prefetch
from lockdownctl.errors import InputError
from lockdownctl.root import Child, Root


def test_child_returns_plain_data() -> None:
    assert Child(lambda: {"pid": os.getpid(), "x": [1, 2.5, None, "s"]}).result()["x"] == [1, 2.5, None, "s"]
    assert Child(lambda: os.getpid()).result() != os.getpid()


def test_child_reraises_our_errors_and_oserrors() -> None:
    def bad_input() -> None:
        raise InputError("f:1: broken")

    with pytest.raises(InputError, match=r"^f:1: broken$"):
        Child(bad_input).result()

    def missing() -> None:
        raise FileNotFoundError(2, "gone")

    with pytest.raises(OSError) as info:
        Child(missing).result()
    assert info.value.errno == 2


def test_child_that_dies_is_an_oserror() -> None:
    with pytest.raises(OSError, match="child process died"):
        Child(lambda: os._exit(3)).result()


@pytest.mark.parametrize(
    ("argv", "starts"),
    [(["status", "--json"], True), (["status", "--root", "/"], True), (["status", "--root=/tmp"], False),
     (["status", "--root", "/tmp"], False), (["status", "--help"], False)],
)
def test_status_prefetch_only_for_the_live_system(argv: list[str], starts: bool) -> None:
    child = prefetch(argv)
    assert (child is not None) == starts
    if child is not None:
        child.discard()


def test_root_paths() -> None:
    root = Root("/")
    assert root.live and root / "proc/cmdline" == "/proc/cmdline"
    assert root.read_bytes("no/such/file") is None
