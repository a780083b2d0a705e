"""The JSON envelope's text, byte for byte what ``json.dumps`` writes.

Importing the json package costs about 7 ms (its decoder needs ``re``, which
needs enum, functools and collections): more than lockdownctl's own work in a
``status --json`` run (benchmarks/startup.py). Writing JSON needs none of it:
strings are escaped by the C function json itself uses (``_json``, json's
accelerator, with json.encoder's pure-Python twin as the fallback), the rest is
structure. tests/unit/test_startup_path.py checks the output equals json.dumps on
generated data, both layouts.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from _json import encode_basestring_ascii as _string
except ImportError:  # an interpreter without the accelerator
    from json.encoder import encode_basestring_ascii as _string

_INFINITY = float("inf")


def dumps(obj: Any, indent: int | None = 2) -> str:
    """``json.dumps(obj, indent=indent, allow_nan=False)``, or with ``indent=None``
    ``json.dumps(obj, separators=(",", ":"), allow_nan=False)``."""
    out: list[str] = []
    _encode(obj, out, "\n" if indent is not None else "", " " * (indent or 0), ": " if indent is not None else ":")
    return "".join(out)


def _float(value: float) -> str:
    # json.dumps writes NaN and Infinity by default, which is not JSON (RFC
    # 8259 section 6): consumers reject it. Refuse, as allow_nan=False does.
    if value != value or value in (_INFINITY, -_INFINITY):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


def _key(key: Any) -> str:
    # json.dumps turns these key types into strings and refuses any other.
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _float(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _encode(obj: Any, out: list[str], newline: str, step: str, colon: str) -> None:
    if isinstance(obj, str):
        out.append(_string(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float(obj))
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        inner = newline + step
        out.append("[")
        for i, item in enumerate(obj):
            out.append(("," if i else "") + inner)
            _encode(item, out, inner, step, colon)
        out.append(newline + "]")
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = newline + step
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            out.append(("," if i else "") + inner + _string(_key(key)) + colon)
            _encode(value, out, inner, step, colon)
        out.append(newline + "}")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
