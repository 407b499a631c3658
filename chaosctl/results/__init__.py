"""The `--json` contracts: one pydantic model per shape a command prints.

These models are the documented shapes. The CLI validates what it prints through them
(`dump`) except on `health`'s hot path, which builds plain dataclasses mirroring them
(chaosctl/health.py; tests/unit/test_health_report.py keeps the two identical);
`--help` and README render their shapes from them (`chaosctl.cli.shapes`), and
tests/unit/test_json_contracts.py pins each one against a checked-in JSON schema, so a
shape changes only on purpose. The core may build them directly; nothing here imports
chaosctl beyond this package, so any layer can.

One submodule per command group: defining a pydantic model costs about 1-4 ms on the
2-core machine, and `chaosctl health` must not pay for the forty models of the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

# Bumped when a documented shape changes incompatibly (a field removed, renamed or retyped).
SCHEMA_VERSION = 1


class Result(BaseModel):
    """A JSON contract: unknown fields are refused, so a new one is a deliberate change."""

    model_config = ConfigDict(extra="forbid", defer_build=True, serialize_by_alias=True)


class OpenResult(Result):
    """A contract that documents some fields and lets others through (e.g. fault params)."""

    model_config = ConfigDict(extra="allow", defer_build=True, serialize_by_alias=True)


@dataclass(frozen=True)
class Keys:
    """`Annotated[dict[str, X], Keys("NAME")]`: what the keys of a JSON object are, for docs."""

    name: str


def dump(model: type[BaseModel], data: Any) -> Any:
    """`data` (a dict, or a list of dicts) validated against `model`, as JSON-able data."""
    if isinstance(data, list):
        return [model.model_validate(item).model_dump(mode="json", fallback=str)
                for item in data]
    return model.model_validate(data).model_dump(mode="json", fallback=str)
