"""Layers only point down, imports inside functions included.

import-linter (``lint-imports``, the contract in pyproject.toml) checks the
same layers in CI; this walk also sees what it may not: every ``import`` and
``from ... import`` anywhere in a module's AST, lazy ones in function bodies
included (lockdownctl imports lazily for start-up speed, which hides arrows).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src" / "lockdownctl"

# Top to bottom, from import-linter's contract (one home for the layers); a
# module may import its own layer and any layer below it. The package's own
# __init__ sits on the ground floor.
_CONTRACT = next(c for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
                 if c["type"] == "layers")
LAYERS: list[tuple[str, ...]] = [tuple(m.strip().removeprefix("lockdownctl.") for m in layer.split(":"))
                                 for layer in _CONTRACT["layers"]]
LAYERS[-1] += ("__init__",)
RANK = {name: len(LAYERS) - i for i, names in enumerate(LAYERS) for name in names}


def _module(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, at any depth."""
    module = _module(path, src)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            if node.module is None or node.level:  # from . import x: x may be a module
                out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def _top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "lockdownctl":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        mine = _top(_module(path, src)) or "__init__"
        for line, target in _imports(path, src):
            theirs = _top(target)
            if theirs is None or theirs not in RANK:
                continue
            if RANK[theirs] > RANK[mine]:
                found.append(f"{path.relative_to(src.parent)}:{line}: {_module(path, src)} imports {target} "
                             f"({theirs} is above {mine})")
    return found


def test_every_package_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if p.suffix == ".py" or (p.is_dir() and any(p.glob("*.py")))}
    assert names <= set(RANK), f"give {sorted(names - set(RANK))} a layer in LAYERS and pyproject.toml"


def test_no_upward_imports() -> None:
    assert upward_imports() == []


def test_nothing_below_the_verbs_imports_a_verb() -> None:
    # the status verb's module is gone (state/ holds the document); cli.* are the verbs
    for path in sorted(SRC.rglob("*.py")):
        if _top(_module(path)) in ("cli", "__main__"):
            continue
        for line, target in _imports(path):
            assert not target.startswith(("lockdownctl.cli", "lockdownctl.status")), f"{path}:{line}: {target}"


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    # a lazy upward import (what a linter of top-level imports misses) is found
    src = tmp_path / "lockdownctl"
    (src / "host").mkdir(parents=True)
    (src / "host" / "probe.py").write_text("import os\n\n\ndef f() -> None:\n    from ..cli import status\n")
    (src / "state").mkdir()
    (src / "state" / "x.py").write_text("def g() -> None:\n    from .. import status\n    from ..bpf import engine\n")
    assert upward_imports(src) == [
        "lockdownctl/host/probe.py:5: lockdownctl.host.probe imports lockdownctl.cli (cli is above host)",
        "lockdownctl/host/probe.py:5: lockdownctl.host.probe imports lockdownctl.cli.status (cli is above host)",
        "lockdownctl/state/x.py:3: lockdownctl.state.x imports lockdownctl.bpf (bpf is above state)",
        "lockdownctl/state/x.py:3: lockdownctl.state.x imports lockdownctl.bpf.engine (bpf is above state)",
    ]
