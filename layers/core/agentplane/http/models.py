"""Model building blocks shared by every domain's input and output models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Description = Annotated[str, Field(max_length=4000)]
LongText = Annotated[str, Field(max_length=100_000)]


class InputModel(BaseModel):
    """A request body: unknown fields are refused (422), so nobody sets `id` or `user_id`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class OutputModel(BaseModel):
    """A response body, built from a database row."""

    model_config = ConfigDict(from_attributes=True)
