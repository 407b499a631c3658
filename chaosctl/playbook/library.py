"""Loading and validating playbooks as a whole, before any step runs.

Structure comes from the pydantic model (loader.py); on top of it this module checks what the
model alone cannot: every action exists in the registry and its params fit the action's
model, diagnose steps are read-only, `inhibited_by` names existing playbooks, names are unique
and match the file name, and every PromQL expression parses (promtool, else Prometheus).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chaosctl.errors import PlaybookError
from chaosctl.playbook.loader import (
    LoadedPlaybook,
    Loc,
    PlaybookValidationError,
    Problem,
    load_file,
    locate,
    problems_from_validation,
)
from chaosctl.playbook.model import (
    ActionStep,
    AllCondition,
    AnyCondition,
    BranchStep,
    NotCondition,
    Playbook,
    PromCondition,
)
from chaosctl.playbook.promql import validate_promql
from chaosctl.playbook.registry import registry
from chaosctl.resources import playbooks_dir


def playbook_files(directory: Path | None = None) -> list[Path]:
    directory = directory or playbooks_dir()
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def _conditions(cond: Any, loc: Loc) -> list[tuple[Loc, PromCondition]]:
    if isinstance(cond, PromCondition):
        return [(loc, cond)]
    if isinstance(cond, AnyCondition):
        return [x for i, c in enumerate(cond.any) for x in _conditions(c, (*loc, "any", i))]
    if isinstance(cond, AllCondition):
        return [x for i, c in enumerate(cond.all) for x in _conditions(c, (*loc, "all", i))]
    if isinstance(cond, NotCondition):
        return _conditions(cond.not_, (*loc, "not"))
    return []


def _steps(steps: list[Any], loc: Loc) -> list[tuple[Loc, Any]]:
    found: list[tuple[Loc, Any]] = []
    for i, step in enumerate(steps):
        found.append(((*loc, i), step))
        if isinstance(step, BranchStep):
            found += _steps(step.then, (*loc, i, "then"))
            found += _steps(step.else_, (*loc, i, "else"))
    return found


def check_actions(lp: LoadedPlaybook) -> tuple[list[Problem], list[tuple[Loc, PromCondition]]]:
    """Registry checks for every step; also returns the PromQL conditions found in params."""
    actions = registry()
    pb: Playbook = lp.playbook
    problems: list[Problem] = []
    promql: list[tuple[Loc, PromCondition]] = []
    for phase in ("diagnose", "remediate"):
        for loc, step in _steps(getattr(pb, phase), (phase,)):
            if isinstance(step, BranchStep):
                promql += _conditions(step.if_, (*loc, "if"))
                continue
            assert isinstance(step, ActionStep)
            spec = actions.get(step.action)
            path, line = locate((*loc, "action"), lp.lines, tags=False)
            if spec is None:
                problems.append(Problem(lp.file, line, path, (
                    f"unknown action {step.action!r}; valid actions: "
                    f"{', '.join(sorted(actions))}")))
                continue
            if phase == "diagnose" and spec.mutating:
                problems.append(Problem(lp.file, line, path, (
                    f"action {step.action!r} changes the stack; diagnose steps must be read-only "
                    "(move it to remediate)")))
            try:
                params = spec.params.model_validate(step.params)
            except ValidationError as exc:
                problems += [
                    Problem(p.file, p.line, p.path, f"{step.action}: {p.message}")
                    for p in problems_from_validation(exc, lp.file, lp.lines, (*loc, "params"))
                ]
                continue
            condition = getattr(params, "condition", None)
            if condition is not None:
                promql += _conditions(condition, (*loc, "params", "condition"))
    return problems, promql


def promql_conditions(lp: LoadedPlaybook) -> list[tuple[Loc, PromCondition]]:
    pb: Playbook = lp.playbook
    found = _conditions(pb.detect, ("detect",))
    for i, cond in enumerate(pb.verify.conditions):
        found += _conditions(cond, ("verify", "conditions", i))
    return found


@dataclass
class Catalog:
    """Validated playbooks by name."""

    playbooks: dict[str, LoadedPlaybook]

    def names(self) -> list[str]:
        return sorted(self.playbooks)

    def get(self, name: str) -> Playbook:
        loaded = self.playbooks.get(name)
        if loaded is None:
            raise PlaybookError(f"unknown playbook {name!r}; available: {', '.join(self.names())}",
                                hint="see `chaosctl playbooks list`")
        return loaded.playbook  # type: ignore[no-any-return]

    def all(self) -> list[Playbook]:
        return [self.playbooks[n].playbook for n in self.names()]

    def select(self, names: list[str] | None) -> list[Playbook]:
        return [self.get(n) for n in names] if names else self.all()


def load_catalog(paths: list[Path] | None = None, *, check_promql: bool = True,
                 prometheus_url: str | None = None, known_names: set[str] | None = None) -> Catalog:
    """Load and validate playbooks (all of playbooks/ by default) as a whole.

    Raises PlaybookValidationError listing every problem in every file; nothing is returned
    (and so nothing can run) unless all of them are valid.
    """
    files = paths if paths is not None else playbook_files()
    if not files:
        raise PlaybookError("no playbook files found",
                            hint="playbooks are *.yaml files in the playbooks/ directory")
    problems: list[Problem] = []
    loaded: dict[str, LoadedPlaybook] = {}
    exprs: list[tuple[LoadedPlaybook, Loc, PromCondition]] = []
    for path in files:
        try:
            lp = load_file(path)
        except PlaybookValidationError as exc:
            problems += exc.problems
            continue
        name = lp.playbook.name
        name_path, name_line = locate(("name",), lp.lines, tags=False)
        if name in loaded:
            problems.append(Problem(lp.file, name_line, name_path,
                                    f"playbook {name!r} is also defined in {loaded[name].file}"))
        if Path(path).stem != name:
            problems.append(Problem(lp.file, name_line, name_path,
                                    f"name {name!r} does not match the file name; rename the "
                                    f"file to {name}.yaml or change the name"))
        action_problems, params_promql = check_actions(lp)
        problems += action_problems
        exprs += [(lp, loc, c) for loc, c in promql_conditions(lp) + params_promql]
        loaded.setdefault(name, lp)
    names = set(loaded) | (known_names or set())
    if known_names is None and paths is not None:
        # Validating a few files: inhibitions may name the shipped playbooks too.
        names |= {p.stem for p in playbook_files()}
    for lp in loaded.values():
        for i, other in enumerate(lp.playbook.inhibited_by):
            if other not in names:
                path, line = locate(("inhibited_by", i), lp.lines, tags=False)
                problems.append(Problem(lp.file, line, path, (
                    f"inhibited_by names unknown playbook {other!r}; known: "
                    f"{', '.join(sorted(names))}")))
    if check_promql and exprs:
        errors = validate_promql([c.promql() for _, _, c in exprs], prometheus_url)
        for index, error in sorted(errors.items()):
            lp, loc, cond = exprs[index]
            path, line = locate((*loc, "query"), lp.lines, tags=False)
            problems.append(Problem(lp.file, line, path,
                                    f"bad PromQL {cond.query.strip()!r}: {error}"))
    if problems:
        raise PlaybookValidationError(problems)
    return Catalog(loaded)
