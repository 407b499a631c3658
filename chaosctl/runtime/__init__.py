"""Runtime backends behind one interface; `get_backend` picks one by name.

`local` (plain processes), `docker` (containers) and `kubernetes` (a cluster); a backend
module is imported only when chosen, so adding one never slows the others down.
"""

from __future__ import annotations

import importlib

from chaosctl.config import Settings
from chaosctl.errors import ConfigError
from chaosctl.runtime.base import Backend

# backend name -> "module:class"
BACKENDS: dict[str, str] = {
    "local": "chaosctl.runtime.local:LocalBackend",
    "docker": "chaosctl.runtime.docker:DockerBackend",
    "kubernetes": "chaosctl.runtime.kubernetes:KubernetesBackend",
}


def get_backend(settings: Settings) -> Backend:
    """The backend named by `settings.backend`; ConfigError listing the valid names otherwise."""
    target = BACKENDS.get(settings.backend)
    if target is None:
        valid = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"unknown backend {settings.backend!r}; valid backends: {valid}",
            hint="set CHAOSCTL_BACKEND or `backend` in the config file",
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(settings)  # type: ignore[no-any-return]
