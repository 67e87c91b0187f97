"""The card UIDs a gateway's readers should greet as known: the registry's, and its own mappings."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, or_, select, union

from ekinerja.store.db import employees, subject_mappings


def known_card_uids(engine: Engine, gateway_id: str, today: date) -> list[str]:
    """Every card UID that resolves, for ``gateway_id``, to an employee still active ``today``; sorted."""
    active = or_(employees.c.active_to.is_(None), employees.c.active_to >= today)
    registry = select(employees.c.card_uid.label("uid")).where(employees.c.card_uid.is_not(None), active)
    mapped = (
        select(subject_mappings.c.subject_value.label("uid"))
        .join(employees, employees.c.nip == subject_mappings.c.nip)
        .where(subject_mappings.c.gateway_id == gateway_id, subject_mappings.c.subject_kind == "card_uid", active)
    )
    with engine.connect() as conn:
        return sorted({uid for (uid,) in conn.execute(union(registry, mapped)) if uid})
