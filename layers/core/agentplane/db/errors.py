"""psycopg errors translated to problems at the edge, by SQLSTATE, never by message text."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg

from agentplane.errors import (
    ConflictError,
    ForbiddenError,
    ProblemError,
    ServiceUnavailableError,
    ValidationProblemError,
)


def translate(exc: psycopg.Error) -> ProblemError | None:
    """The problem a database error means for the caller, or None if it is a bug."""
    diag = exc.diag
    constraint = diag.constraint_name or ""
    column = diag.column_name or ""
    if isinstance(exc, pg.UniqueViolation):
        return ConflictError(f"a row with the same key already exists ({constraint})")
    if isinstance(exc, pg.ForeignKeyViolation):
        return ConflictError(
            "a referenced row does not exist, or is not yours to reference"
            + (f" ({constraint})" if constraint else "")
        )
    if isinstance(exc, pg.CheckViolation):
        if constraint == "organization_members_last_owner":
            return ConflictError("an organization must keep at least one owner")
        field = column or constraint
        return ValidationProblemError(
            [{"field": field, "in": "body", "rule": "check", "message": f"violates {constraint}"}]
        )
    if isinstance(exc, pg.NotNullViolation):
        return ValidationProblemError(
            [{"field": column, "in": "body", "rule": "required", "message": "must not be null"}]
        )
    if isinstance(exc, pg.StringDataRightTruncation | pg.NumericValueOutOfRange):
        return ValidationProblemError(
            [{"field": column, "in": "body", "rule": "range", "message": "value out of range"}]
        )
    if isinstance(exc, pg.InvalidTextRepresentation | pg.InvalidParameterValue):
        return ValidationProblemError(
            [
                {
                    "field": column,
                    "in": "body",
                    "rule": "format",
                    "message": str(diag.message_primary),
                }
            ]
        )
    if isinstance(exc, pg.UntranslatableCharacter | pg.CharacterNotInRepertoire):
        return ValidationProblemError(
            [{"field": column, "in": "body", "rule": "text", "message": "not storable text"}]
        )
    if isinstance(exc, pg.InsufficientPrivilege):
        return ForbiddenError("you may not do this here")
    # Before OperationalError: a deadlock and a serialization failure are ones too.
    if isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected | pg.LockNotAvailable):
        return ConflictError("a concurrent change got there first; retry")
    if isinstance(exc, pg.QueryCanceled | pg.OperationalError):
        return ServiceUnavailableError("the database did not complete the request in time")
    return None
