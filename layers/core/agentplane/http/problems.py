"""The one mapping of domain errors (agentplane.errors) to RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic import Field as PydanticField
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentplane.errors import ProblemError, ValidationProblemError
from agentplane.observability import logger

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    """One bad field of a 422."""

    field: str
    # Where the field is: body, query, path or header.
    location: str = PydanticField(alias="in")
    rule: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# Declared on every route, so the OpenAPI document says what errors look like.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response("Bad request"),
    401: _problem_response("Missing or invalid bearer token"),
    403: _problem_response("Your role does not allow this"),
    404: _problem_response("Not found, or not yours to see"),
    409: _problem_response("Conflict with the current state"),
    413: _problem_response("Body too large"),
    422: _problem_response("Invalid fields, each named with its rule"),
    500: _problem_response("Unexpected error"),
    503: _problem_response("The database is unavailable"),
}


def _malformed_json(err: dict[str, Any], document: Any) -> dict[str, Any]:
    """FastAPI reports a body that does not parse at ("body", <offset>): name the body,
    and say where it broke as a line and column a person can find."""
    reason = str(err.get("ctx", {}).get("error", "it does not parse"))
    where = ""
    offset = err.get("loc", ("body",))[-1]
    if isinstance(offset, int) and isinstance(document, str | bytes):
        text = document if isinstance(document, str) else document.decode("utf-8", "replace")
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        where = f" at line {line}, column {column}"
    return {
        "field": "body",
        "in": "body",
        "rule": "json_invalid",
        "message": f"the body is malformed JSON: {reason}{where}",
    }


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            errors.append(_malformed_json(err, exc.body))
            continue
        loc = [str(p) for p in err.get("loc", ())]
        errors.append(
            {
                "field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
                "in": loc[0] if loc else "body",
                "rule": err.get("type", "invalid"),
                "message": err.get("msg", "invalid value"),
            }
        )
    return errors


def problem_response(problem: ProblemError, request: Request) -> JSONResponse:
    """A JSONResponse for a problem, with the right media type."""
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(
        problem.to_problem(instance=request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem+json in one place; never a stack trace."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        if exc.status >= 500:
            logger.error("request failed", extra={"problem": exc.type_slug, "detail": exc.detail})
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(ValidationProblemError(_field_errors(exc)), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        problem = ProblemError(str(exc.detail))
        problem.status = exc.status_code
        problem.title = {404: "Not found", 405: "Method not allowed"}.get(
            exc.status_code, "HTTP error"
        )
        problem.type_slug = {404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "http"
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(ProblemError("an unexpected error occurred"), request)
