"""The enforcer's event decoder looks each process's executable up once (a flood
of denials comes from few processes), within a bounded cache."""

from __future__ import annotations

import os

import pytest

from lockdownctl.bpf import decode
from lockdownctl.bpf.abi import LD_DENY, LdEvent, kernel_dev
from lockdownctl.reasons import catalogue


def record(pid: int, ino: int, dev: int) -> bytes:
    ev = LdEvent()
    ev.pid, ev.tid, ev.exe_ino, ev.exe_dev, ev.reason, ev.verdict = pid, pid, ino, dev, 0, LD_DENY
    ev.comm = b"flood"
    return bytes(ev)


def test_one_lookup_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = os.readlink

    def counting(path: str) -> str:
        calls.append(path)
        return real(path)

    st = os.stat("/proc/self/exe")
    exe = os.readlink("/proc/self/exe")
    raw = record(os.getpid(), st.st_ino, kernel_dev(st.st_dev))
    decoder = decode.EventDecoder(catalogue())
    monkeypatch.setattr(os, "readlink", counting)
    events = [decoder.decode(raw) for _ in range(3)]
    assert len(calls) == 1
    assert {e["exe"] for e in events} == {exe}
    # Another executable under the same pid (exec) is looked up again, and not trusted.
    assert decoder.decode(record(os.getpid(), st.st_ino + 1, kernel_dev(st.st_dev)))["exe"] is None
    assert len(calls) == 2


def test_cache_is_bounded() -> None:
    decoder = decode.EventDecoder(catalogue())
    for pid in range(decode.EXE_CACHE + 10):
        decoder.decode(record(10_000_000 + pid, 1, 1))  # no such processes: exe unknown
    assert 0 < len(decoder._exes) <= decode.EXE_CACHE
