"""The bundled shop stack: five FastAPI services sharing one resilience package."""
