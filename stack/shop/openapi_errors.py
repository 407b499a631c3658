"""The error responses each service documents in its OpenAPI, with the body ApiError returns.

FastAPI documents only a route's success and its own 422 shape ({"detail": [{loc, msg}]}),
which is not what our handlers send. `document_errors` rewrites the generated schema once:
every error status a route can give is listed, and every error body is `ErrorBody`, so a
client (or the property-based API test) can rely on both.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, Field

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read",
    401: "Admin token missing or wrong",
    403: "Admin endpoint called on a Host that is not loopback",
    404: "No such resource",
    409: "Conflict (an Idempotency-Key still in progress, or not enough stock)",
    413: "Request body over the size limit",
    415: "A body sent without 'Content-Type: application/json'",
    422: "Invalid parameters or body; `detail` names each field",
    429: "Overloaded: retry after the Retry-After seconds",
    502: "A downstream service answered something unusable",
    503: "A downstream service or dependency is unavailable (or failing on purpose: chaos)",
    504: "The request's deadline (X-Deadline) passed",
}

# Success and error statuses of routes whose modules do not declare them in their decorators
# (orders, payments, inventory are owned elsewhere). Keyed by (method, path template); a
# route's own `responses=` wins over these.
ROUTE_RESPONSES: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/orders"): {
        201: "Order completed (or a replay of one: X-Idempotency-Replayed: true)",
        202: "Order recorded, but it failed (status and reason say why)",
        409: ERROR_DESCRIPTIONS[409], 503: ERROR_DESCRIPTIONS[503]},
    ("post", "/status/breakers/{downstream}/reset"): {
        401: ERROR_DESCRIPTIONS[401], 403: ERROR_DESCRIPTIONS[403], 404: "Unknown downstream"},
    ("post", "/payments/charge"): {
        200: "Already charged for this order: the same charge again",
        201: "Charged",
        503: ERROR_DESCRIPTIONS[503], 504: ERROR_DESCRIPTIONS[504]},
    ("post", "/inventory/reserve"): {
        200: "Already reserved for this order: the same reservation again",
        201: "Reserved",
        409: "Not enough stock", 503: ERROR_DESCRIPTIONS[503], 504: ERROR_DESCRIPTIONS[504]},
}
WRITE_METHODS = ("post", "put", "patch")
# Answered by middleware before routing, so any route can give them.
ANY_ROUTE_ERRORS = (413, 504)
UNSHED_PATHS = ("/health", "/metrics")  # LoadShedMiddleware never refuses these


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the parameter or body field, e.g. "
                                   "'items.0.quantity' or 'query.limit'")
    message: str


class ErrorBody(BaseModel):
    """Every error answer of every service."""

    error: str = Field(description="A stable, machine-readable code, e.g. 'invalid_request'")
    detail: str | list[FieldProblem] = Field(
        description="What was wrong and how to fix it; a list of fields for invalid input")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: these statuses, with the shared error body."""
    return {code: {"description": ERROR_DESCRIPTIONS[code], "model": ErrorBody}
            for code in codes}


def _error_schemas() -> dict[str, Any]:
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"ErrorBody": schema, **defs}


def _statuses_for(method: str, path: str, operation: dict[str, Any],
                  every_route_errors: tuple[int, ...]) -> dict[int, str]:
    statuses = {code: ERROR_DESCRIPTIONS[code] for code in ANY_ROUTE_ERRORS}
    if path not in UNSHED_PATHS:
        statuses.update({code: ERROR_DESCRIPTIONS[code] for code in every_route_errors})
    params = operation.get("parameters", [])
    if method in WRITE_METHODS:
        statuses[415] = ERROR_DESCRIPTIONS[415]
    if "requestBody" in operation:
        statuses[400] = ERROR_DESCRIPTIONS[400]
    if params or "requestBody" in operation:
        statuses[422] = ERROR_DESCRIPTIONS[422]
    if any(p.get("in") == "path" for p in params):
        statuses[404] = ERROR_DESCRIPTIONS[404]
    statuses.update(ROUTE_RESPONSES.get((method, path), {}))
    return statuses


def document_errors(openapi: dict[str, Any],
                    every_route_errors: tuple[int, ...] = ()) -> dict[str, Any]:
    """A copy of `openapi` with every route's error statuses, all bodies as ErrorBody."""
    spec = copy.deepcopy(openapi)
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            for code, description in _statuses_for(method, path, operation,
                                                   every_route_errors).items():
                responses.setdefault(str(code), {"description": description})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = copy.deepcopy(error_content)
                    if response.get("description") in (None, "", "Validation Error"):
                        response["description"] = ERROR_DESCRIPTIONS.get(int(code), "Error")
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_error_schemas())
    # FastAPI's own 422 shape is no longer referenced: drop it so nobody codes against it.
    text = repr(spec["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"/{unused}'" not in text:
            schemas.pop(unused, None)
    return spec
