"""The "Perangkat" page: every gateway and terminal the store has heard from, and the gateways registered
(a token in the database or in store.toml) that never reported; it refreshes itself.

Gateways are per office, not per unit, so a head of unit may not see it (403); admins and the
personnel section may.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response

from ekinerja.store.dashboard import fleet_view
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.web import Forbidden, page, signed_in, state
from ekinerja.store.fleet import fleet
from ekinerja.store.gateway_tokens import listing

REFRESH_S = 60


def devices_page(request: Request) -> Response:
    """The fleet: a summary line, then each gateway with its backlog, alerts and devices."""
    session = signed_in(request)
    if not session.user.sees(None):  # only who sees every unit: a gateway serves a whole office
        raise Forbidden(session)
    store = state(request)
    now = datetime.now(UTC)  # aware: the fleet's instants are
    reported = fleet(store.engine, now)
    summary, gateways = fleet_view.view(reported, store.office.zone, now)
    registered = store.auth.gateway_ids | {g.gateway_id for g in listing(store.engine, now.replace(tzinfo=None))}
    silent = fleet_view.never_reported(registered, reported)
    zone = now.astimezone(store.office.zone).strftime("%Z")  # WIB, WITA, WIT
    return page(request, "devices.html", session=session, page="devices", summary=summary, gateways=gateways,
                silent=silent, refresh_s=REFRESH_S, zone=zone, skew_limit=int(fleet_view.SKEW_LIMIT_S),
                log_limit=int(fleet_view.LOG_FULL_PERCENT))  # fmt: skip


ROUTES: list[Route] = [("/perangkat", devices_page, "GET")]
