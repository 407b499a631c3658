"""chaosctl: executable incident runbooks for a five-service shop stack."""

__version__ = "0.1.0"
