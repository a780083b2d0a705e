"""The lockdown levels, in the kernel's order (none < integrity < confidentiality)."""

LEVELS = ("none", "integrity", "confidentiality")


def level_rank(level: str) -> int:
    return LEVELS.index(level)
