"""YAML files users write (enforcer policies, audit rules): parsed to nodes,
with every syntax error as one line naming the file and line."""

from __future__ import annotations

import yaml

from .errors import InputError

# libyaml's parser where PyYAML was built with it: the pure-Python one takes
# seconds on a file of megabytes (a 20 MB comment: 5 s against 0.06 s). Both
# give the same node tree with the same line marks.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text: str, path: str) -> yaml.Node | None:
    """The document's node tree (None for an empty document), with the marks
    that let callers name the line of every later complaint."""
    try:
        return yaml.compose(text, Loader=LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise InputError(f"{path}:{_clamp(line, text)}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (NUL, most C0 controls)
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise InputError(f"{path}:{_clamp(line, text)}: not valid YAML: character U+{char:04X} "
                         "is not allowed") from None
    except yaml.YAMLError as exc:  # anything else PyYAML raises: still one line
        raise InputError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def _clamp(line: int, text: str) -> int:
    # An error found at the end of the stream (an unclosed bracket) is marked
    # on the line after the last one: name the last line, which exists.
    last = text.count("\n") + (0 if text.endswith("\n") else 1)
    return max(1, min(line, last))
