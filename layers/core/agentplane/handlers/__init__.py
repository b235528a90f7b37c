"""Lambda entry points built from the layer.

`http` serves a FastAPI app through Mangum; `jobs` runs the scheduled and asynchronous
jobs without importing the web stack; `loop` is the one event loop of the process that
both run on. Import the module a function needs: this package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
