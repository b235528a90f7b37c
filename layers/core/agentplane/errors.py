"""Domain errors: what went wrong, in terms a caller can act on, without FastAPI.

Each carries the HTTP status and problem type it maps to; `agentplane.http.problems`
turns them into RFC 9457 problem+json responses in one place.
"""

from __future__ import annotations

from typing import Any

TYPE_BASE = "https://agentplane.dev/problems/"


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


class ServiceUnavailableError(ProblemError):
    """A dependency (the database) is not reachable."""

    status, type_slug, title = 503, "unavailable", "Service unavailable"
