"""Device-scoped mappings: a subject on one device (gateway and device id) belongs to an employee.

Terminals enrol people under their own user numbers; when one office's numbers clash with the
registry's ``zk_user_id``, a mapping for that device says who is who there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from ekinerja.store import audit
from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.db import employees, subject_mappings
from ekinerja.store.punch_input import load_resolver
from ekinerja.store.registry import mark_stale


def add_mapping(engine: Engine, gateway_id: str, device_id: str, kind: str, value: str, nip: str, by: str) -> None:
    """Store the mapping and mark for re-scoring whoever that subject's punches belonged to before and now."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        if conn.execute(select(employees.c.nip).where(employees.c.nip == nip)).first() is None:
            raise CsvRejected("mapping", [f"NIP {nip} is not in the registry"])
        before = load_resolver(conn).nip(gateway_id, device_id, kind, value)
        conn.execute(
            subject_mappings.insert().values(
                gateway_id=gateway_id, device_id=device_id, subject_kind=kind, subject_value=value, nip=nip,
                created_at=now, created_by=by,
            )
        )  # fmt: skip
        affected = {nip} | ({before} if before else set())
        mark_stale(conn, affected)
        detail = {"gateway_id": gateway_id, "device_id": device_id, kind: value, "before": before}
        audit.record(conn, by, now, [audit.Change("mapping.add", nip, detail)])
