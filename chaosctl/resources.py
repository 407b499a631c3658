"""Where the bundled files live: inside an installed wheel, or at the top of a checkout.

A wheel carries `stack/` and `playbooks/` under `chaosctl/_bundled/` (pyproject force-include);
a checkout or an editable install uses the repository's own top-level directories.
"""

from __future__ import annotations

from pathlib import Path

import chaosctl

_PACKAGE_DIR = Path(chaosctl.__file__).resolve().parent


def _bundled(name: str) -> Path:
    inside_wheel = _PACKAGE_DIR / "_bundled" / name
    if inside_wheel.is_dir():
        return inside_wheel
    return _PACKAGE_DIR.parent / name


def stack_dir() -> Path:
    """The directory holding `shop/` (the services) and `prometheus/` (config and rules)."""
    return _bundled("stack")


def playbooks_dir() -> Path:
    """The directory holding one YAML playbook per runbook incident."""
    return _bundled("playbooks")
