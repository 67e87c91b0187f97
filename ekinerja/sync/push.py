"""Pushing buffered punches to the store: the HTTP client and the drain loop.

An event leaves the pending state only on the store's per-event answer; an event the store
refuses is set aside with the reason, so one bad event never blocks the queue.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import TypeAdapter, ValidationError

from ekinerja.backoff import Backoff
from ekinerja.config.common import without_credentials
from ekinerja.sync.contract import CONTRACT_VERSION, BatchResult, GatewayReport, KnownCards, Outcome, PunchEvent

log = logging.getLogger("ekinerja.sync.push")


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the batch stays pending and is retried later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """How long the store asked to be left alone (its Retry-After), if it said."""


class StoreRefused(Exception):
    """The store refused this gateway (token, gateway id): an operator must fix the config."""


class PendingLike(Protocol):
    """What the drain loop needs of a buffered event."""

    @property
    def seq(self) -> int:
        """The event's position in the buffer."""

    @property
    def event_id(self) -> str:
        """The event's id."""

    @property
    def event(self) -> PunchEvent:
        """The event itself."""


class BufferLike(Protocol):
    """The buffer operations the drain loop uses (gateway.buffer.Buffer provides them)."""

    def pending(self, limit: int, after: int = 0) -> list[Any]:
        """The oldest pending events after position ``after``."""

    def acknowledge(self, seqs: list[int]) -> int:
        """Mark events (by position) as stored by the store."""

    def reject(self, reasons: dict[int, str]) -> int:
        """Set aside events (by position) the store refused."""


@dataclass
class PushOutcome:
    """The store's verdict on one batch, by event id."""

    stored: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    accepted: int = 0
    duplicate: int = 0


@dataclass
class DrainReport:
    """What one drain pass did."""

    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    seconds: float = 0.0
    error: str | None = None
    retry_after_s: float | None = None  # the store asked for this much quiet (503 or 429 with Retry-After)


_EVENT_LOC = re.compile(r"^\d+$")
# One serializer call for the whole batch is several times faster than one per event.
_EVENT_LIST = TypeAdapter(list[PunchEvent])


class PushClient:
    """Posts batches to the store's ``/v1/punches`` with the gateway's bearer token."""

    def __init__(
        self, url: str, token: str, gateway_id: str, timeout_s: float = 15.0, ca_file: Path | None = None
    ) -> None:
        self.gateway_id = gateway_id
        self._url = url.rstrip("/") + "/v1/punches"
        self._cards_url = url.rstrip("/") + "/v1/cards"
        self._report_url = url.rstrip("/") + "/v1/gateway-report"
        self._reports_unknown_until: float | None = None  # an older store has no report endpoint: ask again then
        self._refused_reports: set[int] = set()  # how the store refused reports (413, 422), each logged once
        self._shown = without_credentials(self._url)  # what messages and logs may say
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            # Without a CA file, the system's CAs (httpx's default) verify an https:// store.
            verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def push(self, batch: Sequence[PendingLike]) -> PushOutcome:
        """Send one batch; raises StoreUnavailable or StoreRefused when the store did not judge it."""
        sent_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        events = _EVENT_LIST.dump_json([p.event for p in batch], warnings=False).decode()
        body = (
            f'{{"contract_version":{CONTRACT_VERSION},"gateway_id":{json.dumps(self.gateway_id)},'
            f'"sent_at":"{sent_at}","events":{events}}}'
        )
        try:
            response = self._client.post(self._url, content=body.encode())
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"store at {self._shown} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code == 200:
            try:
                result = BatchResult.model_validate_json(response.content)
            except ValidationError:
                # A proxy or captive portal answering in the store's place: nothing was judged.
                raise StoreUnavailable(
                    f"{self._shown} answered 200 without a batch result: {response.text[:120]!r}"
                ) from None
            return _outcome(result, {p.event_id for p in batch})
        if response.status_code in (401, 403):
            raise StoreRefused(
                f"store refused gateway {self.gateway_id!r} ({response.status_code}): {_detail(response)}"
            )
        if response.status_code == 422:
            return _reject_invalid(batch, response)
        raise StoreUnavailable(f"store answered {response.status_code}: {_detail(response)}", _retry_after(response))

    def probe(self) -> str | None:
        """Whether the store answers: None when its ``/healthz`` says 200, else what went wrong."""
        url = self._url.removesuffix("/v1/punches") + "/healthz"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            return f"store at {self._shown} unreachable: {type(exc).__name__}: {exc}"
        return None if response.status_code == 200 else f"store answered /healthz with {response.status_code}"

    def known_cards(self) -> list[str]:
        """The card UIDs the store's registry knows for this gateway; raises StoreUnavailable or StoreRefused."""
        try:
            response = self._client.get(self._cards_url)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"store at {self._shown} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code in (401, 403):
            raise StoreRefused(
                f"store refused gateway {self.gateway_id!r} ({response.status_code}): {_detail(response)}"
            )
        try:
            response.raise_for_status()
            return KnownCards.model_validate_json(response.content).card_uids
        except (httpx.HTTPStatusError, ValidationError):
            raise StoreUnavailable(
                f"{without_credentials(self._cards_url)} answered {response.status_code} without a card list"
            ) from None

    def report(self, report: GatewayReport) -> bool:
        """PUT the gateway's status to the store's fleet view; True when the store kept it.

        Never raises: a report is a courtesy to the central IT team, and an outage is already told
        by the push job. A store without the endpoint (older than this gateway) is asked once an hour.
        """
        if self._reports_unknown_until is not None and time.monotonic() < self._reports_unknown_until:
            return False
        try:
            response = self._client.put(self._report_url, content=report.model_dump_json().encode())
        except httpx.HTTPError as exc:
            log.debug("status report not sent: %s: %s", type(exc).__name__, exc)
            return False
        return self._report_answered(response)

    def _report_answered(self, response: httpx.Response) -> bool:
        status = response.status_code
        if status in (200, 204):
            if self._reports_unknown_until is not None:
                log.info("the store at %s now keeps this gateway's status reports", self._shown_base)
                self._reports_unknown_until = None
            return True
        if status == 404:
            if self._reports_unknown_until is None:
                log.info(
                    "the store at %s has no status report endpoint (it is older than this gateway): the central "
                    "fleet view will not show this gateway until the store is upgraded; asked again every hour",
                    self._shown_base,
                )
            self._reports_unknown_until = time.monotonic() + REPORT_ABSENT_RETRY_S
        elif status in (413, 422) and status not in self._refused_reports:
            # Not an outage, and not told by the push job: the store and this gateway disagree on the
            # report (versions, size). Said once; the reports go on being tried.
            self._refused_reports.add(status)
            log.warning("the store refused this gateway's status report (%d): %s", status, _detail(response))
        else:
            log.debug("status report not kept: the store answered %d: %s", status, _detail(response))
        return False

    @property
    def _shown_base(self) -> str:
        return self._shown.removesuffix("/v1/punches")


REPORT_ABSENT_RETRY_S = 3600.0
"""A store that answered 404 to a status report is asked again after this long."""


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header in seconds (the form the store and proxies send), or None."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() and response.status_code in (429, 503) else None


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:300]
    except ValueError:
        return response.text[:300]


def _outcome(result: BatchResult, sent: set[str]) -> PushOutcome:
    out = PushOutcome(accepted=result.accepted, duplicate=result.duplicate)
    for item in result.results:
        if item.event_id not in sent:  # only what was sent can be acknowledged
            continue
        if item.outcome is Outcome.REJECTED:
            out.rejected[item.event_id] = item.reason or "rejected by the store"
        else:
            out.stored.append(item.event_id)
    return out


def _reject_invalid(batch: Sequence[PendingLike], response: httpx.Response) -> PushOutcome:
    """A 422 names the bad events by position: set those aside so one bad event cannot block the queue."""
    try:
        errors = response.json().get("detail", [])
    except ValueError:
        errors = []
    out = PushOutcome()
    for err in errors if isinstance(errors, list) else []:
        loc = [str(part) for part in err.get("loc", [])]
        if len(loc) >= 3 and loc[:2] == ["body", "events"] and _EVENT_LOC.match(loc[2]):
            index = int(loc[2])
            if index < len(batch):
                out.rejected[batch[index].event_id] = f"{'.'.join(loc[3:])}: {err.get('msg')}"
    if not out.rejected:
        raise StoreUnavailable(f"store found the batch malformed: {_detail(response)}")
    return out


def drain(buffer: BufferLike, client: PushClient, batch_size: int) -> DrainReport:
    """Push pending events batch by batch until none are left or the store fails.

    The gateway works while the store does: the next batch is read while one is with the store,
    and a batch's answer is written to the buffer while the next is with the store. A failure
    ends the pass with ``error`` set; every answer received is recorded, and what was read ahead
    simply stays pending.
    """
    report = DrainReport()
    started = time.monotonic()
    answered: tuple[PushOutcome, list[Any]] | None = None  # received, not yet written to the buffer
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="push") as poster:
        batch = buffer.pending(batch_size)
        while batch:
            sending = poster.submit(client.push, batch)
            if answered is not None:
                _record(buffer, *answered, report)
                answered = None
            upcoming = buffer.pending(batch_size, after=batch[-1].seq)
            try:
                outcome = sending.result()
            except (StoreUnavailable, StoreRefused) as exc:
                report.error = str(exc)
                report.retry_after_s = getattr(exc, "retry_after_s", None)
                break
            judged = len(outcome.stored) + len(outcome.rejected)
            if judged == 0:
                report.error = "store answered without judging any event"
                break
            if judged == len(batch):
                answered, batch = (outcome, batch), upcoming
            else:  # after a 422 only the bad events were set aside: the rest of this batch goes again
                _record(buffer, outcome, batch, report)
                batch = buffer.pending(batch_size)
    if answered is not None:
        _record(buffer, *answered, report)
    report.seconds = time.monotonic() - started
    return report


def _record(buffer: BufferLike, outcome: PushOutcome, batch: Sequence[PendingLike], report: DrainReport) -> None:
    seq_of = {p.event_id: p.seq for p in batch}  # the outcome names only events of this batch
    buffer.acknowledge([seq_of[event_id] for event_id in outcome.stored])
    for event_id, reason in outcome.rejected.items():
        log.error("store rejected event %s: %s; kept in the buffer as rejected", event_id, reason)
    buffer.reject({seq_of[event_id]: reason for event_id, reason in outcome.rejected.items()})
    report.batches += 1
    report.accepted += outcome.accepted
    report.duplicate += outcome.duplicate
    report.rejected += len(outcome.rejected)


PROBE_EVERY_S = 60.0
"""With nothing to push, the store's /healthz is asked this often."""


class Pusher:
    """The push job: drains the buffer, backing off while the store is down."""

    def __init__(self, buffer: BufferLike, client: PushClient, batch_size: int, max_backoff_s: float) -> None:
        self.buffer = buffer
        self.client = client
        self.batch_size = batch_size
        self.backoff = Backoff(base_s=1.0, max_s=max_backoff_s)
        self.last_success: datetime | None = None
        self.last_error: str | None = None
        self.unreachable_since: datetime | None = None  # the first failure since the last success
        self.last_contact: datetime | None = None  # the store last answered (a push or a probe)
        self._probed_at = 0.0

    def _answered(self, report: DrainReport) -> None:
        """The store answered (at least one batch, or the probe): any outage is over."""
        if self.last_error:
            log.info("store reachable again; push resumed")
        self.backoff.succeeded()
        self.last_error = None
        self.unreachable_since = None
        self.last_contact = datetime.now(UTC)
        if report.batches:
            self.last_success = self.last_contact

    def _failed(self, report: DrainReport) -> None:
        # A store that says how long it needs is given that, up to the longest backoff.
        delay = self.backoff.failed(at_least_s=min(report.retry_after_s or 0.0, self.backoff.max_s))
        if report.error != self.last_error:
            log.warning("push failed: %s; pending punches stay in the buffer, retry in %.0f s", report.error, delay)
        self.last_error = report.error
        self.unreachable_since = self.unreachable_since or datetime.now(UTC)

    def run_once(self) -> DrainReport | None:
        """One scheduled run; returns None when waiting out a backoff."""
        if not self.backoff.ready():
            return None
        report = drain(self.buffer, self.client, self.batch_size)
        if not report.batches and not report.error and time.monotonic() - self._probed_at >= PROBE_EVERY_S:
            # Nothing to send says nothing of the store: ask it, so an idle night still shows it down.
            self._probed_at = time.monotonic()
            report.error = self.client.probe()
        if report.batches or not report.error:
            self._answered(report)  # before a failure later in the same pass: each outage is its own
        if report.error:
            self._failed(report)
        if report.batches:
            log.info(
                "pushed %d batch(es): %d accepted, %d duplicate, %d rejected",
                report.batches,
                report.accepted,
                report.duplicate,
                report.rejected,
            )
        return report
