"""One error hierarchy and the CLI exit codes (see design.md, Contracts)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNHEALTHY = 1  # the thing checked is unhealthy, failed, or did not recover
    USAGE = 2  # bad usage, bad input or bad configuration
    INTERRUPTED = 130


class ChaosctlError(Exception):
    """Base of every error chaosctl reports to a user.

    The message must say what was wrong and how to fix it; the CLI prints it as one line.
    """

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ChaosctlError):
    """The configuration file, environment or flags are invalid or missing."""


class InvalidInputError(ChaosctlError):
    """A value given on the command line is out of range or unknown."""


class MissingBinaryError(ChaosctlError):
    """A program the stack needs (redis-server, prometheus) is not installed."""


class PortInUseError(ChaosctlError):
    """A port the stack wants is already taken by another process."""


class StaleStateError(ChaosctlError):
    """The state directory describes processes that no longer exist or do not match."""


class StackNotRunningError(ChaosctlError):
    """A command needs the stack but it is not up."""

    exit_code = ExitCode.UNHEALTHY


class StackStartError(ChaosctlError):
    """A process of the stack failed to start or to become healthy."""

    exit_code = ExitCode.UNHEALTHY


class UnknownServiceError(InvalidInputError):
    """A service name that the stack does not have."""


class PrometheusUnavailableError(ChaosctlError):
    """Prometheus cannot be reached or refused a query."""


class PlaybookError(ChaosctlError):
    """A playbook file is invalid."""


class RemediationLockedError(ChaosctlError):
    """Another remediation holds the lock."""

    exit_code = ExitCode.UNHEALTHY


class StateFileError(ConfigError):
    """A state file chaosctl keeps (run/stack.json) is unreadable or holds invalid values."""
