"""Connection input and output models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from agentplane.models import InputModel, Name, OutputModel

Provider = Literal["hermes", "openrouter", "nous", "custom"]
ConnectionStatus = Literal["active", "inactive", "error"]

# The same rule as the table's check on base_url.
_HTTP_URL = re.compile(r"https?://\S+")


def _http_url(value: str) -> str:
    if not _HTTP_URL.fullmatch(value):
        raise PydanticCustomError("http_url", "must be an http:// or https:// URL without spaces")
    return value


BaseUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_http_url)
]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _custom_needs_base_url(value: str | None, info: ValidationInfo) -> str | None:
    if value is None and info.data.get("provider") == "custom":
        raise PydanticCustomError(
            "required_for_custom", "base_url is required when provider is 'custom'"
        )
    return value


class ConnectionCreate(InputModel):
    """A new connection of the caller's to a model provider."""

    name: Name
    provider: Provider
    # Declared after provider: its validator reads the validated provider.
    base_url: Annotated[BaseUrl | None, Field(validate_default=True)] = None
    model: ModelName
    status: ConnectionStatus = "active"

    @field_validator("base_url")
    @classmethod
    def base_url_for_custom(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A custom provider has no default endpoint."""
        return _custom_needs_base_url(value, info)


class ConnectionUpdate(InputModel):
    """Fields of a connection that can change.

    Setting provider to 'custom' with `base_url: null` is refused here; the other ways to
    leave a custom connection without a URL are refused by the table's check.
    """

    name: Name | None = None
    provider: Provider | None = None
    base_url: BaseUrl | None = None
    model: ModelName | None = None
    status: ConnectionStatus | None = None

    @field_validator("base_url")
    @classmethod
    def base_url_for_custom(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A custom provider has no default endpoint."""
        return _custom_needs_base_url(value, info)


class Connection(OutputModel):
    """A connection to a model provider."""

    id: UUID
    user_id: UUID
    name: str
    provider: Provider
    base_url: str | None
    model: str
    status: ConnectionStatus
    created_at: datetime
    updated_at: datetime
