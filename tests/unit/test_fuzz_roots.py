"""Every host reader against damaged files: a documented exit code, never a bug.

One root is merged from the real-system fixtures (status roots, the host's
kernel config, every check detector's positive case); each example damages one
of its files (random bytes, a truncation, a flipped byte, an empty file) and
runs the readers' verbs on it. Exit 70 (internal error) is a traceback a user
would have seen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdownctl.errors import EXIT_FEATURE, EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, EXIT_ROOT, EXIT_UNDECIDED
from tests.conftest import DATA, REPO, ROOTS, lockdownctl_inproc

DOCUMENTED = {EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_FEATURE, EXIT_ROOT, EXIT_UNDECIDED}
VERBS = (("status",), ("audit",), ("check", "--level", "confidentiality"), ("explain", "dev_mem"))


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("fuzz-root")
    sources = [ROOTS / "debian12-6.1-sb-integrity", ROOTS / "host-6.18-kconfig-integrity"]
    sources += sorted(p for p in (DATA / "check").glob("*/positive") if p.is_dir())
    for src in sources:
        shutil.copytree(src, root, dirs_exist_ok=True, symlinks=True)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return root, files


def _damage(original: bytes) -> st.SearchStrategy[bytes]:
    n = len(original)
    return st.one_of(
        st.binary(max_size=300),
        st.just(b""),
        st.integers(0, max(n - 1, 0)).map(lambda cut: original[:cut]),
        st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)).map(
            lambda pos_byte: original[: pos_byte[0]] + bytes([pos_byte[1]]) + original[pos_byte[0] + 1 :]),
        st.binary(min_size=1, max_size=40).map(lambda junk: original + junk),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_file_never_breaks_a_reader(merged: tuple[Path, list[str]], data: st.DataObject) -> None:
    root, files = merged
    rel = data.draw(st.sampled_from(files), label="file")
    path = root / rel
    original = path.read_bytes()
    damaged = data.draw(_damage(original), label="content")
    verb = data.draw(st.sampled_from(VERBS), label="verb")
    path.write_bytes(damaged)
    try:
        run = lockdownctl_inproc(*verb, "--json", "--root", str(root))
    finally:
        path.write_bytes(original)
    assert run.code in DOCUMENTED, (rel, run.err)
    envelope = json.loads(run.out)
    assert envelope["exit_code"] == run.code
    if run.code == EXIT_INPUT:  # a malformed file is named, in one line
        assert len(run.err.splitlines()) == 1 and str(root) in run.err, run.err


# Files named on the command line: each verb's own input, damaged the same ways.
FILE_ARGS = (
    ("btf", ("explain", "dev_mem", "--btf", "{f}")),
    ("uki", ("audit", "--uki", "{f}")),
    ("sysctl", ("audit", "--sysctl", "{f}")),
    ("cmdline", ("audit", "--cmdline", "{f}")),
    ("config", ("audit", "--config", "{f}")),
    ("rules", ("audit", "--config", "{config}", "--rules", "{f}")),
    ("policy", ("policy", "validate", "{f}", "--root", "{dir}")),
    ("log", ("watch", "{f}")),
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, host_btf_module: bytes) -> dict[str, Path]:
    top = tmp_path_factory.mktemp("fuzz-files")
    sources = {
        "uki": DATA / "audit/uki/uki-cmdline.efi",
        "sysctl": DATA / "audit/sysctl-host-6.18.txt",
        "cmdline": DATA / "audit/cmdline-host-6.18.txt",
        "config": DATA / "kconfig/config-6.1.0-56-amd64",
        "rules": DATA / "audit/rules-example.yaml",
        "policy": REPO / "examples/laptop.yaml",
        "log": DATA / "klog/formats/dmesg.txt",
    }
    out = {}
    for name, src in sources.items():
        out[name] = top / name
        shutil.copy(src, out[name])
    out["btf"] = top / "btf"
    out["btf"].write_bytes(host_btf_module)
    shutil.copy(sources["config"], top / "config-intact")
    return out


@pytest.fixture(scope="module")
def host_btf_module() -> bytes:
    from tests.conftest import host_btf_bytes

    return host_btf_bytes()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_input_file_never_breaks_a_verb(inputs: dict[str, Path], data: st.DataObject) -> None:
    kind, argv = data.draw(st.sampled_from(FILE_ARGS), label="input")
    path = inputs[kind]
    original = path.read_bytes()
    damaged = data.draw(_damage(original), label="content")
    path.write_bytes(damaged)
    try:
        run = lockdownctl_inproc(*(a.format(f=path, dir=path.parent, config=path.parent / "config-intact")
                                   for a in argv), "--json")
    finally:
        path.write_bytes(original)
    assert run.code in DOCUMENTED, (kind, run.err)
    # watch: JSON lines, envelope last; an error before any event is the error envelope alone
    envelope = run.out.splitlines()[-1] if kind == "log" and run.code != EXIT_INPUT else run.out
    assert json.loads(envelope)["exit_code"] == run.code
    if run.code == EXIT_INPUT:
        assert len(run.err.splitlines()) == 1 and str(path) in run.err, run.err
