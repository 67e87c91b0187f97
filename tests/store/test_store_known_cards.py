"""``GET /v1/cards``: the card list a gateway's readers greet as known, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ekinerja.config.store import StoreConfig
from ekinerja.store.app import create_app
from ekinerja.store.mappings import add_mapping
from ekinerja.store.registry import import_employees

ANI, BUDI, CITRA = "198503142010012003", "199001012015031001", "197912312005022002"
CONFIG = StoreConfig.model_validate(
    {"gateways": [{"id": "opd-a", "token": "token-of-gateway-a"}, {"id": "opd-b", "token": "token-of-gateway-b"}]}
)


def test_cards_of_the_registry_and_of_the_gateways_own_mappings(engine: Engine) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = (
        "nip,name,unit,zk_user_id,card_uid,active_from,active_to\n"
        f"{ANI},Ani,Umum,1001,04a1b2c3,2025-01-01,\n{BUDI},Budi,Umum,1002,,2025-01-01,\n"
        f"{CITRA},Citra,Umum,1003,04CCCCCC,2020-01-01,2024-12-31\n"  # left: her card no longer greets
    )
    import_employees(engine, rows, "employees.csv", "test", now)
    add_mapping(engine, "opd-a", "kartu", "card_uid", "04112233445566", BUDI, "test")
    add_mapping(engine, "opd-b", "kartu", "card_uid", "04AABBCCDDEEFF001122", BUDI, "test")
    add_mapping(engine, "opd-a", "pintu", "zk_user_id", "77", BUDI, "test")
    add_mapping(engine, "opd-a", "kartu", "card_uid", "04DDDDDD", CITRA, "test")
    with TestClient(create_app(CONFIG, engine=engine)) as client:
        answer = client.get("/v1/cards", headers={"Authorization": "Bearer token-of-gateway-a"})
        assert answer.status_code == 200
        assert answer.json() == {"gateway_id": "opd-a", "card_uids": ["04112233445566", "04A1B2C3"]}
        other = client.get("/v1/cards", headers={"Authorization": "Bearer token-of-gateway-b"}).json()
        assert other["card_uids"] == ["04A1B2C3", "04AABBCCDDEEFF001122"]
        assert client.get("/v1/cards").status_code == 401
        assert client.get("/v1/cards", headers={"Authorization": "Bearer wrong-token-123"}).status_code == 401
