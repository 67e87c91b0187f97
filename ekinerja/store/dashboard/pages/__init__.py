"""The dashboard's pages, one module each; every module lists its ROUTES as (path, endpoint, method)."""

from collections.abc import Callable
from typing import Any

Route = tuple[str, Callable[..., Any], str]
