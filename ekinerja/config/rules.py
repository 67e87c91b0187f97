"""Rule profiles: the attendance regulations of one agency or region, as data (``config/rules/*.toml``).

A profile says which hours apply on which dates (weekly schedules, overrides such as Ramadan, the
holiday calendar), how lateness (TL), early leave (PSW) and absence (TK) are cut, which leave codes
exist, and how the monthly cut reaches the TPP. The scoring core (``ekinerja.store.scoring``) reads
nothing else. Regulations change: correct the TOML file, not the code.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from ekinerja.config.common import Section, ZoneName
from ekinerja.config.loader import ConfigError, load_model

__all__ = [
    "SHIPPED_DIR",
    "Band",
    "BandRules",
    "Holiday",
    "Hours",
    "LeaveRule",
    "Makeup",
    "Override",
    "RuleProfile",
    "Schedule",
    "TppRules",
    "Week",
    "load_profile",
    "shipped_profiles",
]

SHIPPED_DIR = Path(__file__).parent / "rules"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_clock(value: object) -> object:
    """``"07:30"`` -> ``time(7, 30)``; a TOML local time passes through unchanged."""
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match is None:
            raise ValueError("must be a time HH:MM, e.g. 07:30")
        return time(int(match.group(1)), int(match.group(2)))
    return value


def _parse_range(value: object) -> object:
    """``"12:00-13:00"`` -> ``(time(12), time(13))``; anything else is left to the type check."""
    if not isinstance(value, str):
        return value
    if value.count("-") != 1:
        raise ValueError("must be a range HH:MM-HH:MM, e.g. 12:00-13:00")
    return tuple(_parse_clock(part) for part in value.split("-"))


def _check_range(value: tuple[time, time]) -> tuple[time, time]:
    if value[1] <= value[0]:
        raise ValueError(f"range {value[0]:%H:%M}-{value[1]:%H:%M} ends before it starts")
    return value


ClockTime = Annotated[time, BeforeValidator(_parse_clock)]
TimeRange = Annotated[tuple[time, time], BeforeValidator(_parse_range), AfterValidator(_check_range)]
Percent = Annotated[float, Field(ge=0, le=100)]


class Hours(Section):
    """Working hours of one weekday: ``{ start = "07:30", end = "16:00", breaks = ["12:00-13:00"] }``."""

    start: ClockTime = Field(description="Start of work, HH:MM local time; minutes late count from here.")
    end: ClockTime = Field(description="End of work, HH:MM; minutes of early leave count back from here.")
    breaks: list[TimeRange] = Field(
        default_factory=list, description='Breaks as "HH:MM-HH:MM", inside start..end, in order, not overlapping.'
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} must be after start {self.start:%H:%M} (no overnight shifts)")
        previous_end = self.start
        for begin, finish in self.breaks:
            if begin < previous_end or finish > self.end:
                raise ValueError(
                    f"break {begin:%H:%M}-{finish:%H:%M} must lie inside the working hours, after the previous break"
                )
            previous_end = finish
        return self


def _hours(start: str, end: str, *breaks: str) -> Hours:
    return Hours.model_validate({"start": start, "end": end, "breaks": list(breaks)})


class Week(Section):
    """Hours per weekday; a weekday left out is not a working day."""

    mon: Hours | None = Field(default=None, description="Monday's hours; omit when Monday is not worked.")
    tue: Hours | None = Field(default=None, description="Tuesday's hours; omit when not worked.")
    wed: Hours | None = Field(default=None, description="Wednesday's hours; omit when not worked.")
    thu: Hours | None = Field(default=None, description="Thursday's hours; omit when not worked.")
    fri: Hours | None = Field(default=None, description="Friday's hours; omit when not worked.")
    sat: Hours | None = Field(default=None, description="Saturday's hours (six-day units); omit when not worked.")
    sun: Hours | None = Field(default=None, description="Sunday's hours; omit when not worked.")

    def by_weekday(self) -> tuple[Hours | None, ...]:
        """The seven days' hours, Monday first (``date.weekday()`` order)."""
        return tuple(getattr(self, name) for name in WEEKDAYS)

    @model_validator(mode="after")
    def _some_day(self) -> Self:
        if not any(self.by_weekday()):
            raise ValueError("a week needs at least one working day")
        return self


def _kemenpanrb_five_day() -> Week:
    # KemenPANRB's own schedule (Permen PANRB 6/2018), 37.5 hours.
    day = _hours("07:30", "16:00", "12:00-13:00")
    return Week(mon=day, tue=day, wed=day, thu=day, fri=_hours("07:30", "16:30", "11:30-13:00"))


def _six_day() -> Week:
    # 37.5 hours over six days with Perpres 21/2023's 07.30 start and 60/90-minute breaks; the unit head sets
    # the real times, so profiles should state them.
    day = _hours("07:30", "15:00", "12:00-13:00")
    return Week(
        mon=day, tue=day, wed=day, thu=day, fri=_hours("07:30", "15:00", "11:30-13:00"), sat=_hours("07:30", "13:00")
    )


class Schedule(Section):
    """``[schedule]``: the regular weeks of five-day and six-day units."""

    five_day: Week = Field(default_factory=_kemenpanrb_five_day, description="Week of five-day units.")
    six_day: Week = Field(default_factory=_six_day, description="Week of six-day (direct public service) units.")


class Override(Section):
    """``[[overrides]]``: a date range with its own weeks (Ramadan), both ends inclusive."""

    name: str = Field(min_length=1, description="What the range is, e.g. Ramadan 1447 H.")
    start: date = Field(description="First day of the range, e.g. 2026-02-19.")
    end: date = Field(description="Last day of the range (inclusive).")
    five_day: Week = Field(description="Week of five-day units during the range.")
    six_day: Week = Field(description="Week of six-day units during the range.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Holiday(Section):
    """``[[holidays]]``: a national holiday (LN) or cuti bersama (CB); not a working day."""

    date: dt.date = Field(description="The day, e.g. 2026-03-21.")
    kind: Literal["LN", "CB"] = Field(description="LN = libur nasional, CB = cuti bersama.")
    name: str = Field(default="", description="What it is, e.g. Hari Raya Idul Fitri 1447 H.")


class Band(Section):
    """One TL or PSW band: it applies from ``from_minutes`` up to the next band's start."""

    from_minutes: int = Field(ge=1, le=1440, description="Whole minutes late (or early) where the band starts.")
    cut_percent: Percent = Field(default=0.0, description="Cut for a day in this band, in percent.")
    counts_as_tk: bool = Field(
        default=False, description="The day counts as absent (TK) instead: the TK cut applies, not this band's."
    )


class BandRules(Section):
    """``[lateness]`` or ``[early_leave]``: the bands TL1..TL4 or PSW1..PSW4."""

    bands: list[Band] = Field(
        min_length=1, max_length=4, description="Bands in ascending order; the first is band 1, the last open-ended."
    )
    missing_band: int = Field(
        default=4,
        ge=0,
        le=4,
        description="Band a missing record counts as (no clock-in for TL, no clock-out for PSW); 0 = no cut.",
    )

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        starts = [band.from_minutes for band in self.bands]
        if any(later <= earlier for earlier, later in itertools.pairwise(starts)):
            raise ValueError(f"bands must start at ascending minutes (got {starts})")
        if self.missing_band > len(self.bands):
            raise ValueError(
                f"missing_band {self.missing_band} names a band that is not defined ({len(self.bands)} bands)"
            )
        return self


class Absence(Section):
    """``[absence]``: a working day with no record and no leave code (TK)."""

    tk_cut_percent: Percent = Field(description="Cut per TK day, in percent, e.g. 2.5 (BKN Perban 5/2020).")


class LeaveRule(Section):
    """``[leave.CODE]``: an approved leave or duty code; exempt from TL, PSW and TK."""

    description: str = Field(default="", description="What the code means, e.g. cuti tahunan.")
    cut_percent: Percent = Field(default=0.0, description="Cut per working day on this code (0 = exempt).")
    no_tpp: bool = Field(
        default=False,
        description="No TPP is paid for these days (CLTN): each working day withholds 1/working-days of the "
        "whole TPP, on top of the attendance cut.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.no_tpp and self.cut_percent:
            raise ValueError("give either cut_percent or no_tpp = true, not both")
        return self


def _default_leave() -> dict[str, LeaveRule]:
    names = {
        "CT": "cuti tahunan",
        "CS": "cuti sakit",
        "CB": "cuti besar",
        "CM": "cuti melahirkan",
        "CAP": "cuti alasan penting",
        "DL": "dinas luar",
        "TB": "tugas belajar",
        "PD": "perjalanan dinas",
        "I": "izin",
    }
    rules = {code: LeaveRule(description=text) for code, text in names.items()}
    rules["CLTN"] = LeaveRule(description="cuti di luar tanggungan negara", no_tpp=True)
    return rules


class Makeup(Section):
    """``[makeup]``: lateness made up the same day by leaving at least as much later costs nothing."""

    enabled: bool = Field(default=False, description="Allow making up lateness the same day.")
    max_minutes: int = Field(default=30, ge=1, le=240, description="Longest lateness (minutes) that may be made up.")


class TppRules(Section):
    """``[tpp]``: what the cuts apply to and their caps."""

    applies_to: Literal["whole", "attendance_share"] = Field(
        default="whole", description="whole: cuts apply to the whole TPP; attendance_share: to its attendance part."
    )
    attendance_share_percent: float = Field(
        default=100.0, gt=0, le=100, description="The attendance part of the TPP in percent (Sumut reported 40)."
    )
    monthly_cap_percent: float = Field(default=100.0, gt=0, le=100, description="A month's cut never exceeds this.")
    day_cap_percent: float | None = Field(
        default=None, gt=0, le=100, description="Cap on one day's TL + PSW cut (BKN allows 1-3%); none when omitted."
    )

    @model_validator(mode="after")
    def _share_only_for_share(self) -> Self:
        if self.applies_to == "whole" and self.attendance_share_percent != 100:
            raise ValueError('attendance_share_percent is only used with applies_to = "attendance_share"')
        return self


class RuleProfile(Section):
    """A whole rule profile file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="Short name, e.g. perma-3-2020.")
    title: str = Field(default="", description="Human title of the profile.")
    legal_basis: list[str] = Field(min_length=1, description="The regulations the figures come from.")
    timezone: ZoneName = Field(default="Asia/Jakarta", description="Default IANA zone of the offices.")
    punch_mode: Literal["first_last", "state"] = Field(
        default="first_last",
        description="first_last: the day's first punch is the clock-in and its last the clock-out; "
        "state: the terminal's in/out state decides (a day with an 'unknown' punch falls back to first_last).",
    )
    double_tap_seconds: int = Field(
        default=120, ge=0, le=3600, description="Punches this close to the day's first punch count as one punch."
    )
    schedule: Schedule = Field(default_factory=Schedule, description="The regular weekly schedules.")
    overrides: list[Override] = Field(default_factory=list, description="Date ranges with their own hours.")
    holidays: list[Holiday] = Field(default_factory=list, description="National holidays and cuti bersama.")
    lateness: BandRules = Field(description="TL bands (terlambat masuk).")
    early_leave: BandRules = Field(description="PSW bands (pulang sebelum waktunya).")
    absence: Absence = Field(description="TK (tanpa keterangan) cut.")
    leave: dict[str, LeaveRule] = Field(default_factory=_default_leave, description="Leave and duty codes.")
    makeup: Makeup = Field(default_factory=Makeup, description="Making up lateness the same day.")
    tpp: TppRules = Field(default_factory=TppRules, description="What the cuts apply to, and the caps.")

    @field_validator("holidays")
    @classmethod
    def _unique_dates(cls, value: list[Holiday]) -> list[Holiday]:
        seen: set[date] = set()
        for holiday in value:
            if holiday.date in seen:
                raise ValueError(f"{holiday.date} is listed twice")
            seen.add(holiday.date)
        return value

    @field_validator("overrides")
    @classmethod
    def _no_overlap(cls, value: list[Override]) -> list[Override]:
        ranges = sorted(value, key=lambda o: o.start)
        for earlier, later in itertools.pairwise(ranges):
            if later.start <= earlier.end:
                raise ValueError(f"{earlier.name!r} and {later.name!r} overlap")
        return value

    @field_validator("leave")
    @classmethod
    def _codes(cls, value: dict[str, LeaveRule]) -> dict[str, LeaveRule]:
        for code in value:
            if not re.fullmatch(r"[A-Z][A-Z0-9]{0,15}", code):
                raise ValueError(f"leave code {code!r} must be upper-case letters and digits, e.g. CT")
        return value

    def holiday_years(self) -> frozenset[int]:
        """Years the holiday calendar covers; scoring other years would miss their holidays."""
        return frozenset(h.date.year for h in self.holidays)


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(path.stem for path in SHIPPED_DIR.glob("*.toml"))


def load_profile(name_or_path: str, base_dir: Path | None = None) -> RuleProfile:
    """Load a shipped profile by name (``perma-3-2020``) or a profile file by path.

    Anything containing ``/`` or ending in ``.toml`` is a path, relative to ``base_dir`` when given.
    Problems raise :class:`ConfigError` naming the file and the dotted key.
    """
    if "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return load_model(path, RuleProfile)
    path = SHIPPED_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(shipped_profiles())
        raise ConfigError(
            Path(name_or_path), [f"unknown rule profile {name_or_path!r}; shipped: {known} (or give a .toml path)"]
        )
    return load_model(path, RuleProfile)
