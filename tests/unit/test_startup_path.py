"""What keeps ``status`` fast must not change what it prints or accepts.

The command line is parsed without argparse when it can be (cli/fastargs.py)
and the envelope is written without the json package (output/jsontext.py);
both are compared here with the modules they stand in for.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdownctl.cli import VERBS, _add_verb, verb_parser
from lockdownctl.cli.fastargs import Recorder, Unsupported, parse
from lockdownctl.cli.status import CHILD_MODULES, SLOW_IMPORTS, STARTUP_MODULES
from lockdownctl.errors import EXIT_OUTPUT
from lockdownctl.output.jsontext import dumps
from tests.conftest import DATA, REPO, ROOTS

# --- JSON text ---------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | st.text())
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none()
                      | st.floats(allow_nan=False), inner, max_size=4),
    max_leaves=30,
)


def _either(call: Callable[[], str]) -> str:
    try:
        return call()
    except ValueError:
        return "ValueError"


@settings(max_examples=400)
@given(json_values)
def test_jsontext_equals_json_dumps(value: object) -> None:
    assert _either(lambda: dumps(value)) == _either(lambda: json.dumps(value, indent=2, allow_nan=False))
    assert _either(lambda: dumps(value, indent=None)) == _either(
        lambda: json.dumps(value, separators=(",", ":"), allow_nan=False))
    assert _either(lambda: dumps(value, indent=0)) == _either(lambda: json.dumps(value, indent=0, allow_nan=False))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"x": -math.inf}, {math.inf: 1}])
def test_jsontext_refuses_nan_and_infinity(bad: object) -> None:
    # NaN and Infinity are not JSON (RFC 8259); json.dumps writes them unless allow_nan=False
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps(bad)
    with pytest.raises(ValueError):
        json.dumps(bad, allow_nan=False)


def test_jsontext_special_values() -> None:
    assert dumps({"\u00e9\n\x00": "\ud83d\ude00"}, indent=None) == '{"\\u00e9\\n\\u0000":"\\ud83d\\ude00"}'
    assert dumps({2: {}, True: [], None: "", 0.5: 1}) == json.dumps({2: {}, True: [], None: "", 0.5: 1}, indent=2)


@pytest.mark.parametrize("bad", [{1, 2}, b"bytes", {(1, 2): 3}, object()])
def test_jsontext_refuses_what_json_refuses(bad: object) -> None:
    with pytest.raises(TypeError):
        json.dumps(bad)
    with pytest.raises(TypeError):
        dumps(bad)


# --- command line --------------------------------------------------------------

def _tokens(verb: str) -> list[str]:
    """Every option of the verb, its choices, and things only argparse takes."""
    rec = Recorder()
    try:
        _add_verb(rec, verb)  # type: ignore[arg-type]
    except Unsupported:
        return []
    out = ["x", "-", "--", "-h", "--json=1", "--js", "--nope", "/tmp/f", "integrity", "bogus", "-1"]
    for flag, spec in rec.options.items():
        out += [flag, f"{flag}=", f"{flag}=v"]
        out += [f"{flag}={c}" for c in spec.choices or ()] + list(spec.choices or ())
    return out


FAST_VERBS = [v for v in VERBS if _tokens(v)]


def test_fast_path_covers_the_common_verbs() -> None:
    # status is the one the start-up goal is about; verbs with types, groups,
    # short aliases or actions (subcommands) are argparse's.
    assert {"status", "explain"} <= set(FAST_VERBS)
    assert "enforce" not in FAST_VERBS and "audit" not in FAST_VERBS


def _argparse(verb: str, argv: list[str]) -> dict[str, object] | str:
    try:
        return vars(verb_parser(verb).parse_args(argv))
    except Exception as exc:  # InputError: a usage error
        return f"error: {type(exc).__name__}"
    except SystemExit:  # --help
        return "exit"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FAST_VERBS).flatmap(lambda v: st.tuples(st.just(v), st.lists(st.sampled_from(_tokens(v)),
                                                                                     max_size=5))))
def test_fast_path_agrees_with_argparse(case: tuple[str, list[str]]) -> None:
    verb, argv = case
    fast = parse(lambda p: _add_verb(p, verb), list(argv))
    if fast is not None:  # whatever the fast path accepts, argparse reads the same way
        assert vars(fast) == _argparse(verb, list(argv))


@pytest.mark.parametrize(("argv", "expected"), [
    (["--json"], {"json": True, "root": "/", "expect": None}),
    (["--root", "/x", "--expect=confidentiality"], {"json": False, "root": "/x", "expect": "confidentiality"}),
    (["--root=/a", "--root=/b", "--json"], {"json": True, "root": "/b", "expect": None}),
    (["--format", "nfd", "--output", "/f"], {"json": False, "root": "/", "expect": None, "format": "nfd",
                                            "output": "/f"}),
    (["--color=never", "--json"], {"json": True, "root": "/", "expect": None, "color": "never"}),
])
def test_fast_path_status(argv: list[str], expected: dict[str, object]) -> None:
    fast = parse(lambda p: _add_verb(p, "status"), argv)
    # status --format nfd (nfd.py); --color (output.color_wanted)
    defaults = {"format": "text", "output": None, "dry_run": False, "color": "auto"}
    assert fast is not None and vars(fast) == {**defaults, **expected}


@pytest.mark.parametrize("argv", [["--js"], ["--help"], ["--expect", "high"], ["--root"], ["--root", "--json"],
                                  ["--json=yes"], ["extra"], ["--", "--json"]])
def test_fast_path_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert parse(lambda p: _add_verb(p, "status"), argv) is None


def test_usage_errors_are_still_argparses() -> None:
    from tests.conftest import lockdownctl

    run = lockdownctl("status", "--expect", "high")
    assert run.code == 2
    assert run.err.strip() == ("lockdownctl: error: lockdownctl status: argument --expect: invalid choice: "
                               "'high' (choose from 'none', 'integrity', 'confidentiality')")


# --- what status imports ------------------------------------------------------------

def _imported(*args: str) -> set[str]:
    """Every module the command imports, from the interpreter's own import log."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lockdownctl", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_status_imports_the_listed_modules_and_nothing_slow() -> None:
    imported = _imported("status", "--json", "--root", str(ROOTS / "host-6.18-kconfig-integrity"))
    ours = {m for m in imported if m.split(".")[0] == "lockdownctl"}
    # the verb's own module is loaded through importlib, which -X importtime does not log
    assert ours | {"lockdownctl.cli.status"} == set(STARTUP_MODULES)
    assert not imported & set(SLOW_IMPORTS), sorted(imported & set(SLOW_IMPORTS))


def test_only_the_start_up_path_keeps_the_start_up_style() -> None:
    # the hand-written TYPE_CHECKING = False saves the import of typing: only
    # worth it where status runs; everywhere else ordinary Python
    src = REPO / "src"
    idiom = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
             for p in (src / "lockdownctl").rglob("*.py") if "\nTYPE_CHECKING = False" in p.read_text()}
    assert idiom <= set(STARTUP_MODULES) | set(CHILD_MODULES), sorted(idiom - set(STARTUP_MODULES) - set(CHILD_MODULES))


# --- the executable --------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to fill")
@pytest.mark.parametrize("args", [["explain"], ["explain", "--json"],
                                  ["status", "--json", "--root", str(ROOTS / "host-6.18-kconfig-integrity")],
                                  ["watch", str(DATA / "klog/formats/dmesg.txt")],  # streamed lines
                                  ["watch", "--json", str(DATA / "klog/formats/dmesg.txt")]])
def test_a_full_disk_is_reported(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "lockdownctl", *args], env=env, stdout=full,
                              stderr=subprocess.PIPE, check=False, timeout=60)
    assert proc.returncode == EXIT_OUTPUT
    assert proc.stderr.decode() == "lockdownctl: error: cannot write the output: No space left on device\n"


def test_a_closed_pipe_is_not_an_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(f"'{sys.executable}' -m lockdownctl explain | head -c 10", shell=True, env=env,
                          capture_output=True, check=False, timeout=60)
    assert proc.returncode == 0 and proc.stderr == b"" and len(proc.stdout) == 10


def test_the_parser_types_are_what_run_expects() -> None:
    # run() reads attributes only; both parsers must give the same names.
    fast = parse(lambda p: _add_verb(p, "explain"), ["msr"])
    slow = verb_parser("explain").parse_args(["msr"])
    assert fast is not None and isinstance(slow, argparse.Namespace)
    assert sorted(vars(fast)) == sorted(vars(slow))
