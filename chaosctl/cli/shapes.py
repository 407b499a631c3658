"""`--json` shapes for help texts and README, rendered from the result models.

Notation: `str`, `int`, `float`, `bool`, `any`, `null`; `"a|b"` for a fixed set of strings;
`X|null` for an optional value; `[X]` for a list; `{NAME: X}` for an object keyed by NAME;
`{"field": X, ...}` for an object with those fields (`...` : more fields may appear).
Named shapes (`COND`, `STEP`) stand for themselves, defined after the first shape.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from chaosctl.results import Keys

WIDTH = 76  # click indents help by 2; keeps every line of a shape under 80 columns

_SCALARS = {str: "str", int: "int", float: "float", bool: "bool", type(None): "null"}


def _keys_name(metadata: list[Any]) -> str | None:
    return next((m.name for m in metadata if isinstance(m, Keys)), None)


class _Renderer:
    """Renders a type starting at column `col`; a model's continuation lines are indented
    1 + 4 * depth, as the hand-written shapes were."""

    def __init__(self, names: dict[type[BaseModel], str], offset: int = 0) -> None:
        self.names = names
        self.offset = offset

    def type(self, tp: Any, depth: int, col: int, keys: str | None = None,
             top: bool = False) -> str:
        origin = get_origin(tp)
        if origin is Annotated:
            inner, *meta = get_args(tp)
            return self.type(inner, depth, col, _keys_name(meta) or keys)
        if tp in _SCALARS:
            return _SCALARS[tp]
        if tp is Any or tp is object:
            return "any"
        if origin is Literal:
            return '"' + "|".join(str(v) for v in get_args(tp)) + '"'
        if origin in (Union, types.UnionType):
            return "|".join(self.type(arg, depth, col) for arg in get_args(tp))
        if origin is list:
            (item,) = get_args(tp) or (Any,)
            return "[" + self.type(item, depth, col + 1) + "]"
        if origin is dict:
            _, value = get_args(tp) or (str, Any)
            if value is Any:
                return "{}"
            head = "{" + (keys or "str") + ": "
            return head + self.type(value, depth, col + len(head)) + "}"
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not top and tp in self.names:
                return self.names[tp]
            return self.model(tp, depth, col)
        raise TypeError(f"no shape notation for {tp!r}")

    def model(self, model: type[BaseModel], depth: int, col: int,
              indent: int | None = None) -> str:
        """Fields inline when they fit, else as many per line as fit."""
        indent = self.offset + 1 + 4 * depth if indent is None else indent
        fields = [(f'"{field.serialization_alias or field.alias or name}": ', field)
                  for name, field in model.model_fields.items()]
        extra = ["..."] if model.model_config.get("extra") == "allow" else []

        def value(key: str, field: Any, at: int) -> str:
            return self.type(field.annotation, depth + 1, at + len(key),
                             _keys_name(field.metadata))

        inline = "{" + ", ".join([k + value(k, f, col) for k, f in fields] + extra) + "}"
        if "\n" not in inline and col + len(inline) <= WIDTH:
            return inline
        lines: list[str] = []
        current, start = "", col + 1  # the first line goes on after "{"
        for item in [(k, f) for k, f in fields] + [(e, None) for e in extra]:
            key, field = item
            first = value(key, field, start + len(current) + (1 if current else 0)) \
                if field is not None else ""
            piece = key + first + ","
            if current and ("\n" in piece or start + len(current) + 1 + len(piece) > WIDTH):
                lines.append(current)
                current, start = "", indent
                first = value(key, field, start) if field is not None else ""
                piece = key + first + ","
            current = f"{current} {piece}" if current else piece
            if "\n" in piece:
                lines.append(current)
                current, start = "", indent
        if current:
            lines.append(current)
        return "{" + ("\n" + " " * indent).join(lines).rstrip(",") + "}"


def shape(model: Any, names: dict[type[BaseModel], str] | None = None) -> str:
    """The shape of `model` (a result model, or `list[Model]`) in the notation above."""
    return _Renderer(names or {}).type(model, 0, 0, top=True)


def definitions(names: dict[type[BaseModel], str],
                only: tuple[type[BaseModel], ...] | None = None) -> str:
    """`NAME = {...}` for the named shapes (`only` those, when given), in `names` order."""
    out = []
    for model, name in names.items():
        if only is not None and model not in only:
            continue
        prefix = f"{name} = "
        renderer = _Renderer(names, offset=len(prefix))
        out.append(prefix + renderer.model(model, 0, len(prefix)))
    return "\n".join(out)


def help_block(intro: str, model: Any, names: dict[type[BaseModel], str] | None = None,
               external: tuple[type[BaseModel], ...] = ()) -> str:
    """A help paragraph: `intro`, then the shape kept as laid out (click's \\b block), then
    the named shapes it uses but the `external` ones (documented elsewhere)."""
    names = names or {}
    body = shape(model, names)
    used: tuple[type[BaseModel], ...] = ()
    while True:  # a definition may use further names
        text = body + "\n" + definitions(names, used)
        more = tuple(m for m, n in names.items() if m not in used and m not in external
                     and re.search(rf"\b{n}\b", text))
        if not more:
            break
        used += more
    if used:
        body += "\n" + definitions(names, used)
    return f"{intro}\n\n\b\n{body}\n"


def contracts() -> dict[str, tuple[Any, dict[type[BaseModel], str]]]:
    """Every documented `--json` shape: name -> (model, named shapes). README's shape blocks
    and tests/unit/test_json_contracts.py's schema snapshot are both generated from this."""
    from chaosctl.cli.playbook_render import SHAPE_NAMES
    from chaosctl.results import chaos, experiment, gameday, health, playbook, stack

    plain: dict[type[BaseModel], str] = {}
    return {
        "health": (health.HealthReport, plain),
        "stack status": (stack.StackStatusResult, plain),
        "stack up": (stack.StackUpResult, plain),
        "stack down": (list[stack.StoppedEntry], plain),
        "inject": (chaos.InjectResult, plain),
        "chaos status": (chaos.ChaosStatusResult, plain),
        "chaos clear": (chaos.ClearResult, plain),
        "chaos log": (list[chaos.AuditEntry], plain),
        "playbooks list": (list[playbook.PlaybookEntry], plain),
        "playbooks validate": (playbook.ValidateResult, plain),
        "diagnose": (playbook.DiagnoseResult, SHAPE_NAMES),
        "remediate": (playbook.RemediateResult, SHAPE_NAMES),
        "watch round": (playbook.WatchRound, plain),
        "watch event": (playbook.WatchEvent, plain),
        "game-day": (gameday.GameDayResult, plain),
        "experiment": (experiment.ExperimentResult, {experiment.Metrics: "METRICS"}),
    }


# The marker, an opening fence, anything (the old shape), the first line that is a fence.
README_BLOCK = re.compile(
    r"(<!-- json-shape: (?P<name>[a-z -]+) -->\n```\n)(.*?)(^```$)", re.S | re.M)


def readme_block(name: str) -> str:
    """The text README shows between `<!-- json-shape: NAME -->` and the closing fence."""
    from chaosctl.cli.playbook_render import EXTERNAL

    model, names = contracts()[name]
    return help_block("", model, names, EXTERNAL).split("\b\n", 1)[1].rstrip("\n")


def update_readme(text: str) -> str:
    """README text with every json-shape block regenerated from the models."""
    return README_BLOCK.sub(
        lambda m: m.group(1) + readme_block(m.group("name")) + "\n" + m.group(4), text)


if __name__ == "__main__":  # python -m chaosctl.cli.shapes README.md: regenerate its blocks
    import sys
    from pathlib import Path

    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    readme.write_text(update_readme(readme.read_text()))
