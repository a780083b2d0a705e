"""libbpf.RingBuffer on this machine's kernel: what a callback raises reaches
the caller of poll/consume (ctypes alone would print it and go on).

Records come from a real ring buffer map, written by a socket filter program
run through BPF_PROG_TEST_RUN: a program that is never attached, so it acts on
nothing but this test (this kernel refuses LSM programs, not these).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator

import pytest

from lockdownctl.bpf import libbpf
from tests.host.conftest import require, require_root

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_PROG_TEST_RUN = 0, 10
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_FUNC_RINGBUF_OUTPUT = 130


def _bpf(cmd: int, attr: bytearray) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return int(ret)


@pytest.fixture
def ring_and_writer() -> Iterator[tuple[int, int]]:
    """(ring buffer map fd, socket filter fd that writes one 8-byte record per run)."""
    require_root()
    attr = bytearray(128)
    struct.pack_into("=IIII", attr, 0, BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16)
    try:
        ring = _bpf(BPF_MAP_CREATE, attr)
    except OSError as exc:
        require(False, f"cannot create a BPF ring buffer map here: {exc}")
        raise
    insns = [
        (0x7A, 0x0A, -8, 42),  # *(u64 *)(r10 - 8) = 42
        (0xBF, 0xA2, 0, 0),  # r2 = r10
        (0x07, 0x02, 0, -8),  # r2 += -8
        (0x18, 0x11, 0, ring),  # r1 = the map (ld_imm64, BPF_PSEUDO_MAP_FD)
        (0x00, 0x00, 0, 0),
        (0xB7, 0x03, 0, 8),  # r3 = 8
        (0xB7, 0x04, 0, 0),  # r4 = 0
        (0x85, 0x00, 0, BPF_FUNC_RINGBUF_OUTPUT),  # bpf_ringbuf_output(r1, r2, r3, r4)
        (0xB7, 0x00, 0, 0),  # r0 = 0
        (0x95, 0x00, 0, 0),  # exit
    ]
    try:
        prog = libbpf.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "ldctl_test_rb", insns)
    except OSError as exc:
        os.close(ring)
        require(False, f"cannot load a socket filter program here: {exc}")
        raise
    try:
        yield ring, prog
    finally:
        os.close(prog)
        os.close(ring)


def _write(prog: int, records: int) -> None:
    packet = ctypes.create_string_buffer(64)  # at least an Ethernet header
    attr = bytearray(80)
    struct.pack_into("=IIIIQQI", attr, 0, prog, 0, len(packet), 0, ctypes.addressof(packet), 0, records)
    _bpf(BPF_PROG_TEST_RUN, attr)


def test_callback_exception_reaches_consume(ring_and_writer: tuple[int, int]) -> None:
    ring_fd, prog = ring_and_writer
    _write(prog, 3)
    seen: list[bytes] = []

    def callback(raw: bytes) -> None:
        seen.append(raw)
        if len(seen) == 1:
            raise RuntimeError("first record refused")

    ring = libbpf.RingBuffer(ring_fd, callback)
    try:
        with pytest.raises(RuntimeError, match="first record refused"):
            ring.consume()
        assert len(seen) == 1  # libbpf stopped at the failing record...
        assert ring.consume() == 2  # ...which counts as consumed: the rest follow, once
        assert seen == [struct.pack("=Q", 42)] * 3
        assert ring.consume() == 0
    finally:
        ring.close()


def test_closed_pipe_in_a_callback_stops_poll(ring_and_writer: tuple[int, int]) -> None:
    ring_fd, prog = ring_and_writer
    _write(prog, 2)

    def callback(_raw: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")  # `lockdownctl enforce events --follow | head`

    ring = libbpf.RingBuffer(ring_fd, callback)
    try:
        with pytest.raises(BrokenPipeError):
            ring.poll(100)
    finally:
        ring.close()
