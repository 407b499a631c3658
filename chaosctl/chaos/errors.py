"""Errors specific to injecting and clearing faults (exit 1: the action did not take effect)."""

from __future__ import annotations

from chaosctl.errors import ChaosctlError, ExitCode


class InjectionFailedError(ChaosctlError):
    """A fault could not be applied (service unreachable, refused, or not visible afterwards).

    Nothing is left half-set: the injector undoes what it started before raising this.
    """

    exit_code = ExitCode.UNHEALTHY
