"""The card UIDs a gateway's readers should greet as known: the registry's, and its own mappings."""

from __future__ import annotations

from sqlalchemy import Engine, select, union

from ekinerja.store.db import employees, subject_mappings


def known_card_uids(engine: Engine, gateway_id: str) -> list[str]:
    """Every card UID that resolves to an employee for ``gateway_id``, sorted."""
    registry = select(employees.c.card_uid.label("uid")).where(employees.c.card_uid.is_not(None))
    mapped = select(subject_mappings.c.subject_value.label("uid")).where(
        subject_mappings.c.gateway_id == gateway_id, subject_mappings.c.subject_kind == "card_uid"
    )
    with engine.connect() as conn:
        return sorted({uid for (uid,) in conn.execute(union(registry, mapped)) if uid})
