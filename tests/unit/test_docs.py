"""The man page and the README document every verb and option the parser has."""

from __future__ import annotations

import pytest

from lockdownctl.cli import VERBS, verb_parser
from tests.conftest import REPO

MAN = (REPO / "man" / "lockdownctl.8").read_text()
README = (REPO / "README.md").read_text()


def _roff_plain(text: str) -> str:
    return text.replace("\\-", "-")


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_option_is_documented(verb: str) -> None:
    man = _roff_plain(MAN)
    assert f"lockdownctl {verb}" in man or f".B {verb}" in man
    assert f"lockdownctl {verb}" in README
    parsers = [verb_parser(verb)]
    for parser in parsers:  # the verb and the parsers of its actions (enforce apply, ...)
        for action in parser._actions:
            subparsers = getattr(action, "_name_parser_map", None)  # argparse's sub-command table
            if subparsers:
                parsers.extend(subparsers.values())
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                assert option in man, f"{verb} {option} missing from man/lockdownctl.8"


def test_exit_codes_are_documented() -> None:
    for code in ("0", "1", "2", "3", "4", "5", "70", "74"):
        assert f".B {code}\n" in MAN
    for code in ("5 undecided", "74 the output", "70 internal"):
        assert code in README


def test_every_docs_citation_resolves() -> None:
    """Docstrings cite docs/<file>.md by section ("docs/kernel-facts.md 3.4", "docs/design.md
    section 4"): the file is in the repository and has a heading with that number."""
    import re

    cite = re.compile(r"docs/([\w-]+\.md)(?: (?:section )?(\d+(?:\.\d+)*))?")
    seen = 0
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]:
        for match in cite.finditer(path.read_text()):
            doc = REPO / "docs" / match[1]
            assert doc.is_file(), f"{path}: cites {match[0]}, which is not in docs/"
            if match[2]:
                heading = re.compile(rf"^#+ {re.escape(match[2])}[. ]", re.M)
                assert heading.search(doc.read_text()), f"{path}: cites {match[0]}: no such section"
            seen += 1
    assert seen >= 20  # the walk found the citations (a broken pattern would pass on nothing)
