"""Sample batches, registry rows and tokens that several store tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from ekinerja.config.store import StoreConfig
from ekinerja.store.db import punches
from ekinerja.sync.contract import Batch, PunchEvent, Source, Subject, Verify
from ekinerja.sync.contract import Punch as PunchKind

GATEWAY = {"Authorization": "Bearer gateway-token-opd-1"}
ADMIN = {"Authorization": "Bearer admin-token-bkd"}
CORE = {"Authorization": "Bearer reader-token-core"}
CONFIG = StoreConfig.model_validate(
    {
        "gateways": [{"id": "opd-1", "token": "gateway-token-opd-1"}],
        "clients": [
            {"id": "bkd-admin", "token": "admin-token-bkd", "can_write": True},
            {"id": "ekinerja-core", "token": "reader-token-core"},
        ],
    }
)
ANI, BUDI, CITRA = "198503142010012003", "199001012015031001", "197912312005022002"
EMPLOYEES = f"""nip,name,unit,zk_user_id,card_uid,active_from,tpp_base
{ANI},Ani Lestari,Bagian Umum,1001,,2025-01-01,"5.000.000"
{BUDI},Budi Santoso,Bagian Umum,,04A1B2C3,2025-01-01,
{CITRA},Citra Dewi,Bidang Aset,1003,,2025-01-01,4000000
"""


START = datetime(2026, 1, 5, 7, 0)


def make_event(n: int, gateway: str = "opd-a", **changes: Any) -> PunchEvent:
    """Punch number ``n``: a fingerprint at a ZK terminal (every third one a card, no serial)."""
    card = n % 3 == 2
    fields: dict[str, Any] = {
        "gateway_id": gateway,
        "device_id": "pintu-depan",
        "device_serial": None if card else "CKPJ201960123",
        "source": Source.PCSC if card else Source.ZK,
        "verify": Verify.CARD if card else Verify.FINGERPRINT,
        "subject": Subject(card_uid="04A1B2C3") if card else Subject(zk_user_id=str(1000 + n)),
        "punch": PunchKind.IN,
        "device_time": START + timedelta(minutes=n),
        "timezone": "Asia/Jakarta",
        "captured_at": datetime(2026, 1, 5, 1, 0, 0, 123456, tzinfo=UTC),
        "clock_skew_s": None if card else 12.25,
        "correct_skew": not card,
    }
    return PunchEvent.create(**(fields | changes))


def batch_json(events: list[PunchEvent], gateway: str = "opd-a") -> Any:
    """The JSON body a gateway would POST."""
    return Batch(gateway_id=gateway, sent_at=datetime.now(UTC), events=events).model_dump(mode="json")


def stored_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(punches)).scalar_one())


def csv_post(client: TestClient, path: str, text: str, headers: dict[str, str] = ADMIN) -> Any:
    return client.post(path, content=text.encode(), headers=headers | {"Content-Type": "text/csv"})
