"""Read playbook YAML files into models, with errors that name the file, the line and the fix.

YAML is parsed twice from the same text: once into plain data for pydantic, once into nodes,
from which a map of field path -> line is built, so a pydantic error location such as
("remediate", 2, "params", "replicas") becomes "payment-degradation.yaml:41".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from chaosctl.errors import PlaybookError
from chaosctl.playbook.model import Playbook

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a playbook file."""

    file: str
    line: int | None
    path: str  # field path like remediate[1].params.replicas ("" for the whole file)
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class PlaybookValidationError(PlaybookError):
    """One or more problems in playbook files; str() lists every one, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(f"invalid playbook ({len(problems)} problem"
                         f"{'s' if len(problems) != 1 else ''}):\n  {lines}")


def line_map(text: str) -> dict[Loc, int]:
    """Field path -> 1-based line of its value, for every mapping key and list item."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Loc, int] = {}

    def walk(node: Any, path: Loc) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, key.value))
                # A missing-field error points at its parent; an extra key at the key itself.
                lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return lines


def locate(loc: Loc, lines: dict[Loc, int], tags: bool = True) -> tuple[str, int | None]:
    """Map a pydantic loc to (display path, line of the nearest existing node).

    pydantic puts the tag of a discriminated union into the loc right after the list index
    or field holding the union; such a tag is not a YAML key and is skipped (tags=False for
    a loc built by hand from real keys).
    """
    matched: Loc = ()
    shown: list[Any] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if tags and part in _UNION_TAGS and (isinstance(prev, int) or prev in _UNION_FIELDS):
            continue
        shown.append(part)
        candidate = (*matched, part)
        if candidate in lines and len(matched) == len(shown) - 1:
            matched = candidate
    text = ""
    for part in shown:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text, lines.get(matched, lines.get((), None))


# pydantic puts the tag of a discriminated union into the loc; it is not a YAML key.
_UNION_TAGS = {"action", "if", "query", "chaos_key", "health", "load_test", "any", "all",
               "not"}
_UNION_FIELDS = {"detect", "if", "not", "condition"}

_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or fix its spelling",
    "literal_error": "use one of the listed values",
    "float_parsing": "write a number",
    "int_parsing": "write a whole number",
    "unknown_condition": "see `chaosctl playbooks show payment-degradation` for examples",
    "unknown_step": "see `chaosctl playbooks show payment-degradation` for examples",
}


def problems_from_validation(exc: Any, file: str, lines: dict[Loc, int],
                             prefix: Loc = ()) -> list[Problem]:
    """pydantic ValidationError -> problems with file:line, field path and a fix."""
    problems = []
    for err in exc.errors():
        loc = (*prefix, *err.get("loc", ()))
        path, line = locate(loc, lines)
        message = err.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        fix = _FIXES.get(err.get("type", ""))
        if err.get("type") == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        if fix:
            message = f"{message} ({fix})"
        problems.append(Problem(file, line, path, message))
    return problems


@dataclass
class LoadedPlaybook:
    """A validated model plus where it came from (for later, cross-file checks)."""

    playbook: Any
    file: str
    lines: dict[Loc, int]


def load_file(path: Path) -> LoadedPlaybook:
    """Parse and structurally validate one file; PlaybookValidationError on any problem."""
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlaybookValidationError([Problem(file, None, "", f"cannot read: {exc.strerror}")]) \
            from exc
    try:
        data = yaml.safe_load(text)
        lines = line_map(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise PlaybookValidationError([Problem(
            file, line, "", f"not valid YAML: {reason} (check indentation and quoting)")]) from exc
    if not isinstance(data, dict):
        raise PlaybookValidationError([Problem(
            file, 1, "", "a playbook is a YAML mapping with name, title, severity, runbook, "
            "detect, diagnose, remediate and verify")])
    try:
        model = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookValidationError(problems_from_validation(exc, file, lines)) from exc
    return LoadedPlaybook(model, file, lines)
