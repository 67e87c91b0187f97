"""The gateway's configuration (``gateway.toml``)."""

from __future__ import annotations

import codecs
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from ekinerja.config.common import ListenAddressOrAnyPort, Section, ZoneName, resolve_path, without_credentials
from ekinerja.config.tls import ca_file_problem
from ekinerja.sync.contract import MAX_BATCH_EVENTS, Identifier, Punch


class GatewaySection(Section):
    """``[gateway]``: who this gateway is and where it keeps its data."""

    id: Identifier = Field(description="This gateway's id; the store knows it by this id and its token.")
    data_dir: Path = Field(
        default=Path("data/gateway"),
        validate_default=True,  # the default is relative to the config file too
        description="Folder for the punch buffer; relative paths are relative to the config file.",
    )
    timezone: ZoneName = Field(
        default="Asia/Jakarta",
        description="IANA zone of the office (WIB Asia/Jakarta, WITA Asia/Makassar, WIT Asia/Jayapura).",
    )
    keep_acknowledged_days: float = Field(
        default=30,
        ge=0,
        le=3650,
        description="Days an event the store acknowledged stays in the buffer before it is pruned.",
    )

    @field_validator("data_dir")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


class StoreClientSection(Section):
    """``[store]``: the central store this gateway pushes to."""

    url: str = Field(
        pattern=r"^https?://[^\s/]+", description="Base URL of the store, e.g. https://absensi.example.go.id"
    )
    token: str = Field(
        min_length=8,
        description="Bearer token of this gateway; write ${ENV_NAME} to read it from the environment.",
    )
    push_interval_s: float = Field(default=5.0, gt=0, le=3600, description="Seconds between pushes of the buffer.")
    batch_size: int = Field(default=1000, ge=1, le=MAX_BATCH_EVENTS, description="Events per POST.")
    timeout_s: float = Field(default=15.0, gt=0, le=300, description="HTTP timeout for one request.")
    max_backoff_s: float = Field(
        default=300.0, gt=0, le=3600, description="Longest wait between retries while the store is down."
    )
    cards_refresh_s: float = Field(
        default=300.0,
        ge=10,
        le=86400,
        description="With card readers: seconds between fetches of the registry's card list (for 'unknown card').",
    )
    report_interval_s: float = Field(
        default=60.0,
        ge=10,
        le=3600,
        description=(
            "Seconds between status reports to the store (devices, backlog, alerts) for the central IT team's "
            "fleet view; a device going on- or offline is reported within seconds anyway."
        ),
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificate (PEM) the store's HTTPS certificate must chain to; the system's CAs without it.",
    )

    @field_validator("ca_file")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _usable_ca(self) -> Self:
        if self.ca_file is None:
            return self
        if not self.url.startswith("https://"):
            raise ValueError("ca_file is set but url is not https://: set the store's https:// address")
        problem = ca_file_problem(self.ca_file)
        if problem is not None:
            raise ValueError(f"ca_file {str(self.ca_file)!r}: {problem}")
        return self

    def plain_http_to_remote(self) -> bool:
        """True when the token and punches would cross a network unencrypted (http:// to another machine)."""
        host = urlsplit(self.url).hostname or ""
        return self.url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1")

    def shown_url(self) -> str:
        """The URL without any user:password part, for logs and screens."""
        return without_credentials(self.url)


class ZkDevice(Section):
    """``[[devices]]`` with ``kind = "zk"``: a ZKTeco terminal reached over the network."""

    id: Identifier = Field(description="Name of the device at this gateway, e.g. pintu-utama.")
    kind: Literal["zk"] = Field(description="Device kind; zk for ZKTeco terminals.")
    host: str = Field(min_length=1, description="IP address or host name of the terminal.")
    port: int = Field(default=4370, gt=0, lt=65536, description="ZK protocol port (4370 by default).")
    protocol: Literal["tcp", "udp"] = Field(default="tcp", description="tcp, or udp for older terminals.")
    password: int = Field(default=0, ge=0, le=999999, description="Comm key set on the terminal (0 = none).")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Network timeout for one request.")
    max_backoff_s: float = Field(
        default=300.0,
        ge=1,
        le=3600,
        description="Longest wait between retries of an unreachable terminal (the wait doubles from 2 s).",
    )
    poll_interval_s: float = Field(
        default=60.0,
        ge=1,
        le=86400,
        description=(
            "Seconds between polls of the log; with live = true, between renewals of the live connection, "
            "each of which reads the log for anything the stream missed."
        ),
    )
    live: bool = Field(
        default=False,
        description="Capture punches as they happen over a standing connection, and push them at once.",
    )
    live_silence_s: float = Field(
        default=30.0,
        ge=1,
        le=86400,
        description=(
            "With live = true: a stream without any event for this long is renewed (a restarted terminal "
            "or a dead link sends nothing), reading the log for what it missed."
        ),
    )
    timezone: ZoneName | None = Field(default=None, description="The terminal's zone; the gateway's when omitted.")
    clock_policy: Literal["alert", "correct"] = Field(
        default="alert",
        description=(
            "alert: keep the device's clock and report its skew; correct: occurred_at corrected by the skew, "
            "and the device's clock set to the gateway's once the skew passes clock_threshold_s, at a quiet moment."
        ),
    )
    clock_threshold_s: float = Field(
        default=120.0, ge=1, le=86400, description="Skew (seconds) from which the clock is reported or set."
    )
    quiet_minutes: float = Field(
        default=10.0,
        ge=0,
        le=1440,
        description="correct: set the clock only when no punch was recorded in the last this many minutes.",
    )
    encoding: str = Field(default="UTF-8", description="Text encoding of user names and ids on the terminal.")
    clear_log_at_percent: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description=(
            "Clear the terminal's attendance log once it is this full (percent of its capacity), only when "
            "every record on it was read and acknowledged by the store, and verify it is empty; "
            "off when omitted."
        ),
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. UTF-8, cp1252, gbk)") from None
        return value


class PunchWindowEntry(Section):
    """One entry of ``punch_windows``: what a card tap between two wall-clock times means."""

    start: time = Field(description="Wall-clock time the window opens, HH:MM.")
    end: time = Field(
        description="Wall-clock time the window closes (not included), HH:MM; before start: wraps midnight."
    )
    punch: Punch = Field(
        description="The punch a tap in this window makes: in, out, break_out, break_in, ot_in, ot_out."
    )

    @field_validator("start", "end")
    @classmethod
    def _wall_clock_minute(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("must be a wall-clock time without a UTC offset (the entry's timezone applies)")
        if value.second or value.microsecond:
            raise ValueError("must be HH:MM, without seconds")
        return value

    @field_validator("punch")
    @classmethod
    def _known_punch(cls, value: Punch) -> Punch:
        if value is Punch.UNKNOWN:
            raise ValueError("unknown is what a tap outside every window is already; name in, out, ...")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are the same time: the window would be empty")
        return self


class PcscDevice(Section):
    """``[[devices]]`` with ``kind = "pcsc"``: RFID card readers attached to the gateway (PC/SC, pcscd)."""

    id: Identifier = Field(description="Name of the reader at this gateway, e.g. pintu-samping.")
    kind: Literal["pcsc"] = Field(description="Device kind; pcsc for RFID card readers through pcscd.")
    reader: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description=(
            "The PC/SC reader's name, or a part of it (e.g. ACR122U): every reader whose name contains it is "
            "watched; `pcsc_scan` lists the names. A reader missing at start is waited for."
        ),
    )
    debounce_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="The same card on the same reader within this many seconds of its last punch is one punch.",
    )
    feedback: bool = Field(
        default=True,
        description="Light and beep at the reader (ACR122U-style) once a punch is stored; other readers stay silent.",
    )
    punch_windows: list[PunchWindowEntry] = Field(
        default_factory=list,
        description=(
            'Time windows that make a tap in or out, e.g. {start = "05:00", end = "12:00", punch = "in"}; '
            "the first that holds the time decides; a tap outside them all is unknown."
        ),
    )
    timezone: ZoneName | None = Field(
        default=None, description="Zone of the taps' wall clock; the gateway's when omitted."
    )
    max_backoff_s: float = Field(
        default=5.0, ge=1, le=300, description="Longest wait between attempts to reach pcscd while it is down."
    )


Device = Annotated[ZkDevice | PcscDevice, Field(discriminator="kind")]


class WebSection(Section):
    """``[web]``: the gateway's status page, its JSON, /healthz and /metrics."""

    listen: ListenAddressOrAnyPort = Field(
        default="127.0.0.1:8401",
        description="HOST:PORT of the status page; loopback unless the office LAN needs it; port 0 picks a free one.",
    )
    username: str | None = Field(default=None, min_length=1, description="Basic-auth user for the page (optional).")
    password: str | None = Field(
        default=None,
        min_length=8,
        description="Basic-auth password; write ${ENV_NAME} to read it from the environment.",
    )
    refresh_s: float = Field(default=5.0, ge=1, le=3600, description="Seconds between refreshes of the open page.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password for basic auth, or neither")
        return self


class MqttSection(Section):
    """``[mqtt]``: the broker the gateway reports to and takes commands from (optional)."""

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, gt=0, lt=65536, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(default=None, min_length=1, description="Broker user name.")
    password: str | None = Field(
        default=None, description="Broker password; write ${ENV_NAME} to read it from the environment."
    )
    tls: bool = Field(
        default=False,
        description="Connect with TLS, verifying the broker against ca_file (the system's CAs without it).",
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) the broker's certificate must chain to."
    )
    base_topic: str | None = Field(
        default=None,
        pattern=r"^[^#+\s/$][^#+\s/]*(/[^#+\s/]+)*$",
        description="Topic prefix; ekinerja/<gateway id> when omitted. No wildcards, no empty levels, not $-topics.",
    )
    state_interval_s: float = Field(
        default=30.0, ge=1, le=3600, description="Seconds between republishing device state and the gateway summary."
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=600, description="MQTT keepalive; the broker sends the will after 1.5 times this."
    )

    def topic_base(self, gateway_id: str) -> str:
        """The prefix of every topic: ``base_topic``, or ekinerja/<gateway id>."""
        return self.base_topic or f"ekinerja/{gateway_id}"

    @field_validator("ca_file")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false: set tls = true")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {str(self.ca_file)!r} is not a file")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self


class AlertsSection(Section):
    """``[alerts]``: when a condition becomes an alert on the page, over MQTT and in /metrics."""

    device_offline_minutes: float = Field(default=10.0, ge=0, le=10080, description="A device offline this long.")
    clock_skew_s: float = Field(default=120.0, ge=1, le=86400, description="A device clock this many seconds off.")
    log_percent: float = Field(
        default=90.0, gt=0, le=100, description="A terminal log this full (percent of capacity)."
    )
    backlog_minutes: float = Field(
        default=30.0, ge=0, le=10080, description="A punch waiting at the gateway this long."
    )
    store_unreachable_minutes: float = Field(
        default=5.0, ge=0, le=10080, description="The store unreachable this long."
    )
    quarantined: int = Field(default=1, ge=1, description="This many device records quarantined (unreadable).")


class GatewayConfig(Section):
    """The whole ``gateway.toml``."""

    gateway: GatewaySection = Field(description="Who this gateway is and where it keeps its buffer.")
    store: StoreClientSection = Field(description="The central store to push punches to.")
    devices: list[Device] = Field(
        default_factory=list, description="The terminals (kind = zk) and card readers (kind = pcsc) this gateway reads."
    )
    web: WebSection = Field(default_factory=WebSection, description="The status page, /healthz and /metrics.")
    mqtt: MqttSection | None = Field(default=None, description="MQTT status and commands; off when omitted.")
    alerts: AlertsSection = Field(default_factory=AlertsSection, description="Alert thresholds.")

    @model_validator(mode="after")
    def _unique_device_ids(self) -> Self:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"devices: id {device.id!r} is used twice")
            seen.add(device.id)
        return self

    @model_validator(mode="after")
    def _one_entry_per_reader(self) -> Self:
        # Two entries watching one reader would make two punches of every tap.
        readers = self.card_readers
        for n, first in enumerate(readers):
            for second in readers[n + 1 :]:
                a, b = first.reader.casefold(), second.reader.casefold()
                if a in b or b in a:
                    raise ValueError(
                        f"devices: card readers {first.id!r} ({first.reader!r}) and {second.id!r} ({second.reader!r}) "
                        "could watch the same reader; make one name not part of the other"
                    )
        return self

    @property
    def terminals(self) -> list[ZkDevice]:
        """The ZKTeco terminals."""
        return [device for device in self.devices if isinstance(device, ZkDevice)]

    @property
    def card_readers(self) -> list[PcscDevice]:
        """The PC/SC card reader entries."""
        return [device for device in self.devices if isinstance(device, PcscDevice)]

    def device_zone(self, device: ZkDevice | PcscDevice) -> str:
        """The zone a device's wall clock is in."""
        return device.timezone or self.gateway.timezone
