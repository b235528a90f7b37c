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
# Presence, as the seed's front end shows it: `offline` until a turn calls the provider,
# then `online` or `error` by how the last call went (brain/service.py).
ConnectionStatus = Literal["online", "offline", "error"]

# The public endpoint of each named provider: a connection created without a base_url
# gets its provider's (a custom provider has none, so it must say where).
DEFAULT_BASE_URLS: dict[str, str] = {
    "openrouter": "https://openrouter.ai/api/v1",
    "nous": "https://inference-api.nousresearch.com/v1",
    "hermes": "https://inference-api.nousresearch.com/v1",
}

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
    status: ConnectionStatus = "offline"

    @field_validator("base_url")
    @classmethod
    def base_url_for_custom(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A custom provider has no default endpoint."""
        return _custom_needs_base_url(value, info)

    def to_row(self) -> dict[str, object]:
        """The row to insert: a named provider without a base_url gets its endpoint."""
        values = self.model_dump()
        if values["base_url"] is None:
            values["base_url"] = DEFAULT_BASE_URLS[self.provider]
        return values


class ConnectionUpdate(InputModel):
    """Fields of a connection that can change; base_url can change but not be removed."""

    name: Name | None = None
    provider: Provider | None = None
    base_url: BaseUrl | None = None
    model: ModelName | None = None
    status: ConnectionStatus | None = None

    @field_validator("base_url")
    @classmethod
    def base_url_stays(cls, value: str | None) -> str:
        """Every connection has an endpoint: a base_url can change, not become null."""
        if value is None:
            raise PydanticCustomError("required", "a connection's base_url cannot be removed")
        return value


class Connection(OutputModel):
    """A connection to a model provider."""

    id: UUID
    user_id: UUID
    name: str
    provider: Provider
    base_url: str
    model: str
    status: ConnectionStatus
    created_at: datetime
    updated_at: datetime
