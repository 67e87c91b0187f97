"""Rule profiles: the shipped ones load and match RULES.md; a bad profile file names the key at fault."""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from pathlib import Path

import pytest

from ekinerja.config.loader import ConfigError
from ekinerja.config.rules import RuleProfile, load_profile, shipped_profiles
from ekinerja.store.scoring import Punch, Scorer

SHIPPED = ["pergub-sumut-11-2017", "perma-3-2020", "permentan-68-2012"]

# RULES.md, "Holiday calendar and Ramadan", as written there.
RULES_2025 = """01-01 LN, 01-27 LN, 01-28 CB, 01-29 LN, 03-28 CB, 03-29 LN, 03-31 LN, 04-01 LN, 04-02 CB,
04-03 CB, 04-04 CB, 04-07 CB, 04-18 LN, 04-20 LN, 05-01 LN, 05-12 LN, 05-13 CB, 05-29 LN, 05-30 CB,
06-01 LN, 06-06 LN, 06-09 CB, 06-27 LN, 08-17 LN, 08-18 CB, 09-05 LN, 12-25 LN, 12-26 CB."""
RULES_2026 = """01-01 LN, 01-16 LN, 02-16 CB, 02-17 LN, 03-18 CB, 03-19 LN, 03-20 CB, 03-21 LN, 03-22 LN,
03-23 CB, 03-24 CB, 04-03 LN, 04-05 LN, 05-01 LN, 05-14 LN, 05-15 CB, 05-27 LN, 05-28 CB, 05-31 LN,
06-01 LN, 06-16 LN, 08-17 LN, 08-25 LN, 12-24 CB, 12-25 LN."""
RAMADAN = {(date(2025, 3, 1), date(2025, 3, 30)), (date(2026, 2, 19), date(2026, 3, 20))}
OWN_REGULATION = {
    "perma-3-2020": "Peraturan Mahkamah Agung Nomor 3 Tahun 2020",
    "permentan-68-2012": "Peraturan Menteri Pertanian Nomor 68/Permentan/OT.140/11/2012",
    "pergub-sumut-11-2017": "Peraturan Gubernur Sumatera Utara Nomor 11 Tahun 2017",
}


def rules_calendar() -> dict[date, str]:
    out = {}
    for year, text in ((2025, RULES_2025), (2026, RULES_2026)):
        for entry in text.rstrip(".").replace("\n", " ").split(", "):
            month_day, kind = entry.split()
            month, day = month_day.split("-")
            out[date(year, int(month), int(day))] = kind
    return out


def test_the_shipped_profiles_are_listed() -> None:
    assert shipped_profiles() == SHIPPED
    files = resources.files("ekinerja.config") / "rules"
    assert sorted(p.name for p in files.iterdir() if p.name.endswith(".toml")) == [f"{n}.toml" for n in SHIPPED]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_names_its_legal_basis(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    basis = " | ".join(profile.legal_basis)
    assert OWN_REGULATION[name] in basis
    assert "Peraturan Presiden Nomor 21 Tahun 2023" in basis
    assert "Pasal 22" in basis  # Permenkoinfra 10/2025: missing record = TL4 / PSW4
    assert profile.timezone == "Asia/Jakarta"
    assert (profile.lateness.missing_band, profile.early_leave.missing_band) == (4, 4)
    assert profile.tpp.monthly_cap_percent == 100


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_has_the_rules_md_calendar(name: str) -> None:
    profile = load_profile(name)
    assert {h.date: h.kind for h in profile.holidays} == rules_calendar()
    assert len(rules_calendar()) == 28 + 25
    assert {(o.start, o.end) for o in profile.overrides} == RAMADAN
    assert profile.holiday_years() == {2025, 2026}


@pytest.mark.parametrize(
    ("name", "cuts", "tk_bands", "tk_cut", "applies_to", "share"),
    [
        ("perma-3-2020", [0.5, 1, 1.25, 1.5], [], 2.5, "whole", 100),
        ("permentan-68-2012", [0.5, 1, 1.5, 2], [], 4, "whole", 100),
        ("pergub-sumut-11-2017", [0.5, 1, 0, 0], [3, 4], 2.5, "attendance_share", 40),
    ],
)
def test_shipped_figures(
    name: str, cuts: list[float], tk_bands: list[int], tk_cut: float, applies_to: str, share: float
) -> None:
    profile = load_profile(name)
    for rules in (profile.lateness, profile.early_leave):
        assert [band.from_minutes for band in rules.bands] == [1, 31, 61, 91]
        assert [band.cut_percent for band in rules.bands] == cuts
        assert [i for i, band in enumerate(rules.bands, 1) if band.counts_as_tk] == tk_bands
    assert profile.absence.tk_cut_percent == tk_cut
    assert (profile.tpp.applies_to, profile.tpp.attendance_share_percent) == (applies_to, share)
    assert set(profile.leave) == {"CT", "CS", "CB", "CM", "CAP", "CLTN", "DL", "TB", "PD", "I"}
    assert [code for code, rule in profile.leave.items() if rule.no_tpp] == ["CLTN"]
    assert profile.makeup.enabled is False


def test_load_by_path_and_relative_to_a_base_dir(tmp_path: Path) -> None:
    source = resources.files("ekinerja.config") / "rules" / "perma-3-2020.toml"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "mine.toml").write_text(source.read_text(encoding="utf-8").replace("perma-3-2020", "mine"))
    assert load_profile("rules/mine.toml", base_dir=tmp_path).name == "mine"
    assert load_profile(str(tmp_path / "rules" / "mine.toml")).name == "mine"


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="unknown rule profile 'perma-2020'; shipped: pergub-sumut-11-2017, perma"):
        load_profile("perma-2020")


MINIMAL = """
name = "kecil"
legal_basis = ["Peraturan Contoh Nomor 1 Tahun 2025"]

[lateness]
bands = [{ from_minutes = 1, cut_percent = 0.5 }, { from_minutes = 31, cut_percent = 1 }]
missing_band = 2

[early_leave]
bands = [{ from_minutes = 1, cut_percent = 0.5 }]
missing_band = 1

[absence]
tk_cut_percent = 2.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


def test_a_minimal_profile_runs_on_defaults(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, MINIMAL)))
    scorer = Scorer(profile)
    hours = scorer.hours_for(date(2025, 11, 7), six_day=False)
    assert hours is not None and (hours.start.isoformat(), hours.end.isoformat()) == ("07:30:00", "16:30:00")
    day = date(2025, 11, 4)
    score = scorer.score_day(day, [Punch(datetime(2025, 11, 4, 9, 0), "in")])  # late 90, no clock-out
    assert (score.tl, score.psw, score.cut_percent) == (2, 1, 1.5)
    assert scorer.score_day(day, [], leave="CLTN").cut_percent == 0.0


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('name = "kecil"\n', ""), "name: required key is missing"),
        (
            lambda t: t.replace('legal_basis = ["Peraturan Contoh Nomor 1 Tahun 2025"]', "legal_basis = []"),
            "legal_basis",
        ),
        (lambda t: t.replace("bands = [{", "bandz = [{", 1), "lateness.bandz: unknown key"),
        (lambda t: t + '[schedule.five_day]\nmon = { start = "7.30", end = "16:00" }\n', "schedule.five_day.mon.start"),
        (
            lambda t: t + '[schedule.five_day]\nmon = { start = "16:00", end = "07:30" }\n',
            "schedule.five_day.mon: Value error, end 07:30 must be after start 16:00",
        ),
        (
            lambda t: t + '[schedule.five_day]\nmon = { start = "07:30", end = "16:00", breaks = ["13:00-12:00"] }\n',
            "schedule.five_day.mon.breaks[0]: Value error, range 13:00-12:00 ends before it starts",
        ),
        (
            lambda t: t + '[schedule.five_day]\nmon = { start = "07:30", end = "16:00", breaks = ["06:00-07:00"] }\n',
            "schedule.five_day.mon: Value error, break 06:00-07:00 must lie inside",
        ),
        (
            lambda t: t + "[schedule.five_day]\n",
            "schedule.five_day: Value error, a week needs at least one working day",
        ),
        (
            lambda t: t.replace("{ from_minutes = 31", "{ from_minutes = 1"),
            "lateness: Value error, bands must start at ascending minutes (got [1, 1])",
        ),
        (lambda t: t.replace("missing_band = 1", "missing_band = 3"), "early_leave: Value error, missing_band 3"),
        (lambda t: t.replace("cut_percent = 0.5 }]", "cut_percent = 150 }]"), "early_leave.bands[0].cut_percent"),
        (
            lambda t: 'holidays = [{ date = 2025-01-01, kind = "LN" }, { date = 2025-01-01, kind = "CB" }]\n' + t,
            "holidays: Value error, 2025-01-01 is listed twice",
        ),
        (lambda t: 'holidays = [{ date = 2025-01-01, kind = "XX" }]\n' + t, "holidays[0].kind"),
        (
            lambda t: t + OVERRIDE.format(start="2025-03-30", end="2025-03-01"),
            "overrides[0]: Value error, end 2025-03-01 is before start 2025-03-30",
        ),
        (
            lambda t: (
                t
                + OVERRIDE.format(start="2025-03-01", end="2025-03-30")
                + OVERRIDE.format(start="2025-03-30", end="2025-04-02")
            ),
            "overrides: Value error, 'R' and 'R' overlap",
        ),
        (lambda t: t + "[leave.ct]\n", "leave: Value error, leave code 'ct' must be upper-case"),
        (lambda t: t + "[leave.CLTN]\nno_tpp = true\ncut_percent = 5\n", "leave.CLTN: Value error, give either"),
        (lambda t: t + "[tpp]\nattendance_share_percent = 40\n", "tpp: Value error, attendance_share_percent is only"),
        (lambda t: t + '[tpp]\napplies_to = "share"\n', "tpp.applies_to"),
        (lambda t: t + "[makeup]\nenabled = true\nmax_minutes = 0\n", "makeup.max_minutes"),
        (lambda t: 'timezone = "WIB"\n' + t, "timezone: Value error, unknown IANA time zone 'WIB'"),
        (lambda t: 'punch_mode = "auto"\n' + t, "punch_mode"),
        (lambda t: t.replace("[absence]", "[absence]\n[absence]"), "invalid TOML"),
    ],
)
def test_bad_profiles_name_the_key(tmp_path: Path, edit: object, expected: str) -> None:
    path = write(tmp_path, edit(MINIMAL))  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    message = info.value.render()
    assert str(path) in message
    assert expected in message


OVERRIDE = """
[[overrides]]
name = "R"
start = {start}
end = {end}
five_day = {{ mon = {{ start = "08:00", end = "15:00" }} }}
six_day = {{ mon = {{ start = "08:00", end = "14:00" }} }}
"""


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_profile("nothing-here.toml", base_dir=tmp_path)


def test_profile_model_round_trips() -> None:
    profile = load_profile("pergub-sumut-11-2017")
    assert RuleProfile.model_validate(profile.model_dump()) == profile
