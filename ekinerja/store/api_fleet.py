"""Fleet endpoints: gateways report their status, the central IT team reads every gateway's.

- ``PUT /v1/gateway-report``: a gateway's status (devices, backlog, alerts), with its bearer token.
- ``GET /v1/gateways``: every gateway's last report, when it came and whether it is stale (client token).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from ekinerja.store.api_deps import Reader, State, client_host
from ekinerja.store.api_deps import gateway_id as calling_gateway
from ekinerja.store.fleet import STALE_AFTER, Fleet, ReportTooLarge, fleet, keep_report
from ekinerja.sync.contract import GatewayReport

log = logging.getLogger("ekinerja.store")

router = APIRouter(prefix="/v1", tags=["fleet"])

_REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown bearer token"},
    403: {"description": "the report's gateway_id is not the token's gateway"},
    413: {"description": "request body too large, or the report too large for the store's database"},
    503: {"description": "database unavailable; retry later"},
}


@router.put("/gateway-report", status_code=204, response_class=Response, responses=_REPORT_ERRORS)
def put_gateway_report(
    request: Request, report: GatewayReport, state: State, gateway_id: Annotated[str, Depends(calling_gateway)]
) -> Response:
    """Keep a gateway's status as its last one; a gateway reports only for itself."""
    if report.gateway_id != gateway_id:
        log.warning(
            "refused a status report from %s: token of %s, report of %s",
            client_host(request),
            gateway_id,
            report.gateway_id,
        )
        state.metrics.refused.labels("403").inc()
        raise HTTPException(403, f"this token belongs to gateway {gateway_id!r}, not {report.gateway_id!r}")
    try:
        keep_report(state.engine, report, datetime.now(UTC))
    except ReportTooLarge as exc:
        log.warning("refused a status report from gateway %s: %s", gateway_id, exc)
        raise HTTPException(413, str(exc)) from None
    return Response(status_code=204)


@router.get("/gateways", response_model=Fleet, responses={401: {"description": "missing or unknown client token"}})
def get_gateways(
    state: State,
    _client: Reader,
    stale_minutes: Annotated[
        float, Query(gt=0, le=10080, description="a gateway not heard from for this long is stale")
    ] = STALE_AFTER.total_seconds() / 60,
) -> Response:
    """Every gateway that has reported, by id: its last report, when it came, and whether it is stale."""
    gateways = fleet(state.engine, stale_after=timedelta(minutes=stale_minutes))
    answer = Fleet(stale_after_minutes=stale_minutes, gateways=gateways)
    # Built from validated reports: serialize directly instead of letting FastAPI validate them again.
    return Response(answer.model_dump_json(), media_type="application/json")
