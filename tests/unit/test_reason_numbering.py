"""No numbering of lockdown reasons per major version (XSA-482).

LOCKDOWN_XEN_USER_ACTIONS came with XSA-482 in v7.0, inserted before
LOCKDOWN_INTEGRITY_MAX, and was backported into stable 6.1.167 and 6.12.78:
every confidentiality reason's value moved inside those series. Debian's
6.1.0-57 (6.1.192) and 6.12.118 have it, although their release strings look
like any 6.1 / 6.12. The hook fixtures (tests/data/btf/hooks, README there)
carry each kernel's real ``enum lockdown_reason``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockdownctl import reasons
from lockdownctl.btf import parse_lockdown_enum

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "data" / "btf" / "hooks").glob("vmlinux-*.btf"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_fallback_never_claims_a_value_the_kernel_does_not_have(fixture: Path) -> None:
    kernel = parse_lockdown_enum(fixture.read_bytes(), fixture.name)
    assert kernel is not None and kernel.value("LOCKDOWN_XEN_USER_ACTIONS") == 20
    release = fixture.stem.removeprefix("vmlinux-")  # what uname -r says on that kernel
    real = {r.id: r.value for r in reasons.merge(kernel).reasons if r.on_kernel}
    guessed = {r.id: r.value for r in reasons.merge(None, release).reasons if r.value is not None}
    wrong = {i: (v, real.get(i)) for i, v in guessed.items() if real.get(i) != v}
    assert not wrong, f"without BTF, {release} would be given wrong values (fallback, real): {wrong}"


def test_values_a_release_string_cannot_tell_are_unknown() -> None:
    debian61 = reasons.merge(None, "6.1.0-57-amd64")  # 6.1.192: has XEN_USER_ACTIONS (= 20)
    assert debian61.get("dev_mem").value == 2  # before the insertion: the same either way
    assert debian61.get("xen_user_actions").value is None
    assert debian61.get("kcore").value is None  # 21 on 6.1.0 .. 6.1.166, 22 from 6.1.167
    mainline = reasons.merge(None, "7.3.4+deb13-amd64")
    assert (mainline.get("xen_user_actions").value, mainline.get("kcore").value) == (20, 22)
