"""IPsec SA secrets: keys redacted in xfrm netlink dumps (confidentiality).

Kernel: net/xfrm/xfrm_user.c xfrm_redact() (LOCKDOWN_XFRM_SECRET): no error,
the key bytes read as zero. Informational: only scripts that read keys
from ``ip xfrm state`` notice.
"""

from __future__ import annotations

import re

from .common import script_hits
from .engine import Context, Evidence, Finding

NAME = "xfrm"
SYMPTOM = "ip xfrm state shows zeroed keys: scripts that export ESP keys (e.g. for Wireshark) get nothing useful"
PACKAGES = ("strongswan", "strongswan-charon", "libreswan", "racoon", "ipsec-tools")


def detect(ctx: Context) -> list[Finding]:
    out = []
    for line in script_hits(ctx, re.compile(r"ip\s+(-\S+\s+)*xfrm\s+state")):
        out.append(
            ctx.finding(
                NAME,
                "xfrm_secret",
                "likely",
                "a script reads IPsec SAs with ip xfrm state",
                [Evidence("file", line.where, line.text)],
                SYMPTOM,
                "export keys from the IKE daemon (charon/pluto) instead",
            )
        )
    for package in PACKAGES:
        ev = ctx.package_evidence(package)
        if ev is not None:
            out.append(
                ctx.finding(
                    NAME,
                    "xfrm_secret",
                    "info",
                    f"IPsec daemon {package} installed",
                    [ev],
                    SYMPTOM,
                    "export keys from the IKE daemon instead of netlink dumps",
                    package=package,
                )
            )
    return out
