"""Model building blocks shared by every domain's input and output models."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Description = Annotated[str, Field(max_length=4000)]
LongText = Annotated[str, Field(max_length=100_000)]
# A JSON object in a request (every value JSON; strings and numbers checked by InputModel)
# and the same object read back from a jsonb column.
JsonObjectIn = dict[str, JsonValue]
JsonObject = dict[str, Any]


H = TypeVar("H", bound=Hashable)


def distinct(values: list[H]) -> list[H]:
    """A list validator: no item twice (422, rule `unique`)."""
    seen: set[H] = set()
    for value in values:
        if value in seen:
            raise PydanticCustomError(
                "unique", "must not list {value} twice", {"value": str(value)}
            )
        seen.add(value)
    return values


def _storable(value: Any) -> None:
    # PostgreSQL text and jsonb hold neither NUL characters nor lone UTF-16 surrogates
    # (valid in JSON, not in UTF-8); refuse them here, field by field, not as a 500.
    if isinstance(value, SecretStr):
        # A secret is checked like any text; the messages never quote the value.
        _storable(value.get_secret_value())
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    elif isinstance(value, float) and not math.isfinite(value):
        # Python's JSON accepts NaN, Infinity and 1e400; jsonb does not.
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item)
    elif isinstance(value, BaseModel):
        for item in value.__dict__.values():
            _storable(item)


class InputModel(BaseModel):
    """A request body: unknown fields are refused (422), so nobody sets `id` or `user_id`.

    Every string in it, however deeply nested, must be storable text.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: Any) -> Any:
        _storable(value)
        return value


class OutputModel(BaseModel):
    """A response body, built from a database row."""

    model_config = ConfigDict(from_attributes=True)
