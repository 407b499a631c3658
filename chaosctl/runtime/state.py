"""`run/stack.json`: the replica count of each service and the services killed on purpose.

The file is ours, but anyone can edit it, and `up` starts what it says. So it is validated
as a whole before anything is started or stopped: a count of 100000 would otherwise start
processes until the machine runs out of memory. Any problem is a StateFileError (exit 2) that
names the file, the field and the fix; nothing is guessed from a half-valid file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from chaosctl.domain import SERVICES
from chaosctl.errors import StateFileError
from chaosctl.runtime.base import ALL_PROCESSES, MAX_REPLICAS

ReplicaCount = Annotated[StrictInt, Field(ge=1, le=MAX_REPLICAS)]


class StackState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: dict[str, ReplicaCount] = Field(default_factory=dict)
    killed: list[str] = Field(default_factory=list)

    # Names are checked here rather than with Literal keys so the message lists valid ones.
    @field_validator("replicas")
    @classmethod
    def _known_services(cls, v: dict[str, int]) -> dict[str, int]:
        for name in v:
            if name not in SERVICES:
                raise ValueError(f"{name!r} is not a scalable service "
                                 f"(valid: {', '.join(SERVICES)})")
        return v

    @field_validator("killed")
    @classmethod
    def _known_processes(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in ALL_PROCESSES:
                raise ValueError(f"{name!r} is not a process of the stack "
                                 f"(valid: {', '.join(ALL_PROCESSES)})")
        return v


def _fix(path: Path) -> str:
    return (f"remove {path} (every service goes back to 1 replica), then set counts with "
            f"`chaosctl stack scale SERVICE=N` (N in 1-{MAX_REPLICAS})")


def _field_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        shown = f" (got {json.dumps(got)[:40]})" if err["type"] != "value_error" else ""
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}{shown}" if where else message)
    return "; ".join(parts)


def parse_state(raw: bytes, path: Path) -> dict[str, Any]:
    """The state as {"replicas": {name: n}, "killed": [...]}; StateFileError when invalid."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateFileError(f"state file {path} is not UTF-8 text (byte {exc.start})",
                             hint=_fix(path)) from None
    except ValueError as exc:
        raise StateFileError(f"state file {path} is not valid JSON ({exc})",
                             hint=_fix(path)) from None
    if not isinstance(data, dict):
        raise StateFileError(f"state file {path} must hold a JSON object, not "
                             f"{type(data).__name__}", hint=_fix(path))
    try:
        state = StackState.model_validate(data)
    except ValidationError as exc:
        raise StateFileError(f"state file {path} is invalid: {_field_errors(exc)}",
                             hint=_fix(path)) from None
    return state.model_dump()


def load_state(path: Path) -> dict[str, Any]:
    """Read and validate `path`; a missing file is the default state (one of everything)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return StackState().model_dump()
    except OSError as exc:
        raise StateFileError(f"state file {path} cannot be read ({exc.strerror})",
                             hint=_fix(path)) from None
    return parse_state(raw, path)
