"""Domain errors and their one mapping to RFC 9457 problem+json responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic import Field as PydanticField
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentplane.observability import logger

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://agentplane.dev/problems/"


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
    501: _problem_response("Not implemented yet"),
    503: _problem_response("The database is unavailable"),
}


class ProblemError(Exception):
    """Base of every error that becomes a problem+json response."""

    status: int = 500
    type_slug: str = "internal"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The JSON body of this problem."""
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.type_slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestError(ProblemError):
    """The request cannot be understood."""

    status, type_slug, title = 400, "bad-request", "Bad request"


class UnauthorizedError(ProblemError):
    """No valid credentials."""

    status, type_slug, title = 401, "unauthorized", "Unauthorized"


class ForbiddenError(ProblemError):
    """Known caller, act not allowed (only where the row itself is visible)."""

    status, type_slug, title = 403, "forbidden", "Forbidden"


class NotFoundError(ProblemError):
    """No such row, or one the caller may not see."""

    status, type_slug, title = 404, "not-found", "Not found"


class ConflictError(ProblemError):
    """The state of the resource does not allow this."""

    status, type_slug, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(ProblemError):
    """The body is larger than the route accepts."""

    status, type_slug, title = 413, "payload-too-large", "Payload too large"


class ValidationProblemError(ProblemError):
    """The body or parameters break a rule; `errors` names each field."""

    status, type_slug, title = 422, "validation", "Validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail or "the request has invalid fields", errors=errors)


class NotImplementedYetError(ProblemError):
    """The route is part of the contract but its feature has not landed."""

    status, type_slug, title = 501, "not-implemented", "Not implemented"


class ServiceUnavailableError(ProblemError):
    """A dependency (the database) is not reachable."""

    status, type_slug, title = 503, "unavailable", "Service unavailable"


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
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
