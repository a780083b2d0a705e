"""watch --follow counts overwritten /dev/kmsg records from their sequence numbers
(one EPIPE stands for any number of them): the record header parser."""

from __future__ import annotations

import pytest

from lockdownctl.klog.sources import record_seq


@pytest.mark.parametrize(("record", "seq"), [
    (b"5,1234,5678901,-;Lockdown: cat: use of tracefs is restricted; see man kernel_lockdown.7\n", 1234),
    (b"6,0,0,-,caller=T1;Linux version 6.12\n SUBSYSTEM=x\n", 0),
    (b"14,99,1,c;user space line\n", 99),
    (b"garbage without header\n", None),
    (b"5,x,1,-;damaged\n", None),
])
def test_record_seq(record: bytes, seq: int | None) -> None:
    assert record_seq(record) == seq
