"""The store's HTTP API under schemathesis, driven from its own OpenAPI, on every backend: no 5xx.

Each operation gets generated requests (valid and not) with the right kind of token for it; the
only check is that the store never answers a server error. Derandomized, so CI runs the same cases.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from ekinerja.config.store import StoreConfig
from ekinerja.store.app import create_app

GATEWAY_TOKEN, CLIENT_TOKEN = "fuzz-gateway-token-1", "fuzz-client-token-1"
CONFIG = StoreConfig.model_validate(
    {
        "gateways": [{"id": "opd-a", "token": GATEWAY_TOKEN}],
        "clients": [{"id": "bkd", "token": CLIENT_TOKEN, "can_write": True}],
    }
)
GATEWAY_PATHS = {"/v1/punches", "/v1/cards", "/v1/gateway-report"}
OWN_GATEWAY_BODIES = {"/v1/gateway-report"}


def _fuzz(operation: Any) -> None:
    token = GATEWAY_TOKEN if operation.path in GATEWAY_PATHS else CLIENT_TOKEN

    @given(case=operation.as_strategy())
    @settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        if operation.path in OWN_GATEWAY_BODIES and isinstance(case.body, dict):
            case.body["gateway_id"] = "opd-a"  # the token's gateway: past the 403, down to the database
        case.call_and_validate(checks=[schemathesis.checks.not_a_server_error])

    run()


def test_no_request_makes_a_server_error(engine: Engine) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(CONFIG, engine=engine))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the store's OpenAPI lists its operations"
    for operation in operations:
        _fuzz(operation)
