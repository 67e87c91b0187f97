"""The dashboard's SVG charts, table-driven: the output is parsed as XML and checked for its structure
(bars, their sizes in proportion to the values, labels, legends, escaping), not only for substrings."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from itertools import pairwise

import pytest

from ekinerja.store.dashboard.charts import (
    CHAR,
    PALETTE,
    WIDTH,
    Category,
    Series,
    axis_ticks,
    band_histogram,
    daily_stacked_bars,
    plain_number,
    trend_lines,
    unit_bars,
)

NS = "{http://www.w3.org/2000/svg}"
TITLE = "Kehadiran Januari 2026"
EMPTY = "Belum ada data"
CATEGORIES = [
    Category("in", "Tepat waktu", "#009E73"),
    Category("late", "Terlambat", "#E69F00"),
    Category("tk", "TK", "#D55E00"),
    Category("leave", "Cuti", "#56B4E9"),
]
BANDS = {"TL1 (1–30)": 12, "TL2 (31–60)": 6, "TL3 (61–90)": 3, "TL4 (>90)": 0}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"]
HOSTILE = "<script>alert(\"x\")</script> & 'Bagian' \x01Umum"
HOSTILE_CLEAN = HOSTILE.replace("\x01", "")  # XML cannot carry control characters, so they are dropped

Chart = Callable[[str, str, str], str]  # (title, empty text, a label from a user) -> svg


def stacked(title: str, empty: str, label: str) -> str:
    days = [(date(2026, 1, 5), {"in": 3, "late": 1}), (date(2026, 1, 6), {"in": 2, "tk": 2})]
    return daily_stacked_bars(days, [Category("in", label), Category("late", "B"), Category("tk", "C")],
                              title=title, empty=empty, x_label=label)  # fmt: skip


def histogram(title: str, empty: str, label: str) -> str:
    return band_histogram({label: 4, "TL2": 2}, title=title, empty=empty, x_label=label)


def units(title: str, empty: str, label: str) -> str:
    return unit_bars([(label, 4), ("Bidang Aset", 2)], title=title, empty=empty)


def trend(title: str, empty: str, label: str) -> str:
    return trend_lines(["Jan", label], [Series(label, [1, 2]), Series("B", [0, None])], title=title, empty=empty)


CHARTS: list[Chart] = [stacked, histogram, units, trend]
EMPTIES: list[Callable[[], str]] = [
    lambda: daily_stacked_bars([], CATEGORIES, title=TITLE, empty=EMPTY),
    lambda: daily_stacked_bars([(date(2026, 1, 5), {"in": 1})], [], title=TITLE, empty=EMPTY),
    lambda: band_histogram({}, title=TITLE, empty=EMPTY),
    lambda: unit_bars([], title=TITLE, empty=EMPTY),
    lambda: trend_lines([], [], title=TITLE, empty=EMPTY),
    lambda: trend_lines(MONTHS, [], title=TITLE, empty=EMPTY),
    lambda: trend_lines(["Jan", "Feb"], [Series("A", [None, None])], title=TITLE, empty=EMPTY),
]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_class(root: ET.Element, name: str, tag: str = "*") -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}" if tag != "*" else tag) if name in e.get("class", "").split()]


def num(element: ET.Element, attribute: str) -> float:
    return float(element.attrib[attribute])


def title_of(element: ET.Element) -> str:
    found = element.find(f"{NS}title")
    assert found is not None and found.text is not None
    return found.text


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{NS}text")]


def proportional(sizes: list[float], values: list[float]) -> None:
    """The sizes are the values times one factor (to the 0.01 the coordinates are written with)."""
    factor = max(sizes) / max(values)
    for size, value in zip(sizes, values, strict=True):
        assert size == pytest.approx(value * factor, abs=0.02)


# --- axis ticks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "whole", "ticks"),
    [
        (0, True, [0, 1]),  # all zeros: still a scale
        (-3, True, [0, 1]),
        (math.nan, True, [0, 1]),
        (1, True, [0, 1]),  # a single value
        (3, True, [0, 1, 2, 3]),
        (7, True, [0, 2, 4, 6, 8]),
        (10, True, [0, 2, 4, 6, 8, 10]),
        (11, True, [0, 5, 10, 15]),
        (38, True, [0, 10, 20, 30, 40]),
        (100000, True, [0, 20000, 40000, 60000, 80000, 100000]),
        (100001, True, [0, 50000, 100000, 150000]),
        (0.3, False, [0, 0.1, 0.2, 0.3]),
        (0.3, True, [0, 1]),  # counts have no fractional step
        (2.5, False, [0, 0.5, 1, 1.5, 2, 2.5]),
    ],
)
def test_axis_ticks(top: float, whole: bool, ticks: list[float]) -> None:
    assert axis_ticks(top, whole=whole) == ticks


@pytest.mark.parametrize("top", [1, 2, 3, 7, 9, 13, 49, 51, 99, 101, 999, 12345, 100000, 987654321, 0.07, 3.3])
def test_axis_ticks_are_round_steps_covering_the_top(top: float) -> None:
    ticks = axis_ticks(top, whole=False)
    step = ticks[1]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in (1, 2, 5)
    assert ticks[0] == 0 and ticks[-1] >= top > ticks[-2]
    assert len(ticks) - 1 <= 5
    assert all(b - a == pytest.approx(step) for a, b in pairwise(ticks))


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (5, "5"), (100000, "100000"), (2.5, "2.5"), (1 / 3, "0.33")])
def test_plain_number(value: float, text: str) -> None:
    assert plain_number(value) == text


# --- every chart: frame, accessibility, escaping, determinism -------------------------------------------


@pytest.mark.parametrize("chart", CHARTS)
def test_frame_is_accessible_scalable_svg(chart: Chart) -> None:
    svg = chart(TITLE, EMPTY, "Bagian Umum")
    root = parse(svg)
    assert root.tag == f"{NS}svg" and root.get("version") == "1.1"
    assert root.get("role") == "img" and root.get("aria-label") == TITLE
    assert title_of(root) == TITLE and root[0].tag == f"{NS}title", "the title comes first"
    x, y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert (x, y, width) == (0, 0, 640) and height > 60
    assert "width" not in root.attrib and "height" not in root.attrib, "the page decides the size"
    assert " id=" not in svg, "no ids: several charts share a page"
    assert chart(TITLE, EMPTY, "Bagian Umum") == svg, "same input, same bytes"
    assert not re.search(r"nan|inf", svg, re.IGNORECASE)


@pytest.mark.parametrize("chart", CHARTS)
def test_text_from_users_is_escaped(chart: Chart) -> None:
    svg = chart(HOSTILE, EMPTY, HOSTILE)
    assert "<script" not in svg.lower() and "\x01" not in svg
    root = parse(svg)  # parses, so the quotes and & are escaped too
    assert root.get("aria-label") == HOSTILE_CLEAN and title_of(root) == HOSTILE_CLEAN
    shown = [t for t in [*texts(root), *(e.text or "" for e in root.iter(f"{NS}title"))] if "script" in t]
    assert len(shown) >= 2, "the label is shown and in a tooltip, as text"
    assert any(HOSTILE_CLEAN in t for t in shown), "at least one tooltip has it whole"
    assert not [e for e in root.iter() if "script" in e.tag], "no element made of it"


@pytest.mark.parametrize("make", EMPTIES)
def test_no_data_gives_a_small_svg_saying_so(make: Callable[[], str]) -> None:
    root = parse(make())
    assert "empty" in root.attrib["class"].split()
    assert root.get("aria-label") == TITLE and title_of(root) == TITLE
    assert texts(root) == [EMPTY]
    assert float(root.attrib["viewBox"].split()[3]) < 60
    assert not list(root.iter(f"{NS}rect")) and not list(root.iter(f"{NS}polyline"))


# --- attendance per day --------------------------------------------------------------------------------

DAYS = [
    (date(2026, 1, 2), {"in": 30, "late": 5, "tk": 1, "leave": 2}),
    (date(2026, 1, 5), {"in": 28, "late": 7, "tk": 0, "leave": 3}),
    (date(2026, 1, 6), {"in": 38}),  # missing categories count 0
    (date(2026, 1, 30), {"in": 20, "late": 10, "tk": 5, "leave": 3, "off": 99}),  # unknown keys not drawn
]


def test_daily_stacked_bars_stack_each_day_in_category_order() -> None:
    root = parse(daily_stacked_bars(DAYS, CATEGORIES, title=TITLE, empty=EMPTY, x_label="Tanggal"))
    bars = by_class(root, "bar", "g")
    assert len(bars) == len(DAYS)
    for bar, (day, counts) in zip(bars, DAYS, strict=True):
        drawn = [c for c in CATEGORIES if counts.get(c.key, 0)]
        segments = by_class(bar, "segment", "rect")
        assert [s.get("fill") for s in segments] == [c.colour for c in drawn], "zero counts are left out"
        assert [title_of(s) for s in segments] == [f"{c.label}: {counts[c.key]} ({day})" for c in drawn]
        proportional([num(s, "height") for s in segments], [counts[c.key] for c in drawn])
        for lower, upper in pairwise(segments):  # bottom-up, touching
            assert num(upper, "y") + num(upper, "height") == pytest.approx(num(lower, "y"), abs=0.02)
        total = sum(counts.get(c.key, 0) for c in CATEGORIES)
        assert title_of(bar) == f"{day.isoformat()}: {total}"
    heights = [sum(num(s, "height") for s in by_class(b, "segment")) for b in bars]
    proportional(heights, [38, 38, 38, 38])


def test_daily_stacked_bars_sit_at_their_day_of_month_with_labels_and_legend() -> None:
    root = parse(daily_stacked_bars(DAYS, CATEGORIES, title=TITLE, empty=EMPTY, x_label="Tanggal"))
    lefts = [min(num(s, "x") for s in by_class(b, "segment")) for b in by_class(root, "bar", "g")]
    slot = (lefts[1] - lefts[0]) / 3  # 2nd to 5th January
    assert lefts[2] - lefts[1] == pytest.approx(slot, abs=0.05)
    assert lefts[3] - lefts[0] == pytest.approx(28 * slot, abs=0.05)
    assert texts(by_class(root, "x-labels")[0]) == ["2", "5", "6", "30"]
    assert "Tanggal" in texts(root)
    legend = by_class(root, "legend")[0]
    assert texts(legend) == [c.label for c in CATEGORIES]
    assert [r.get("fill") for r in legend.iter(f"{NS}rect")] == [c.colour for c in CATEGORIES]
    axis = by_class(root, "axis")[0]
    assert texts(axis) == ["0", "10", "20", "30", "40"]


def test_daily_stacked_bars_use_the_palette_for_categories_without_colour() -> None:
    plain = [Category(c.key, c.label) for c in CATEGORIES]
    root = parse(daily_stacked_bars(DAYS[:1], plain, title=TITLE, empty=EMPTY))
    legend = by_class(root, "legend")[0]
    assert [r.get("fill") for r in legend.iter(f"{NS}rect")] == list(PALETTE[:4])


@pytest.mark.parametrize(
    ("days", "categories", "message"),
    [
        ([(date(2026, 1, 31), {"in": 1}), (date(2026, 2, 2), {"in": 1})], CATEGORIES, "one month"),
        ([(date(2026, 1, 5), {"in": 1}), (date(2026, 1, 5), {"in": 2})], CATEGORIES, "twice"),
        ([(date(2026, 1, 5), {"in": -1})], CATEGORIES, "not negative"),
        ([(date(2026, 1, 5), {"in": math.inf})], CATEGORIES, "finite"),
        ([(date(2026, 1, 5), {"in": 1})], [Category("in", "A", "red")], "#rrggbb"),
        ([(date(2026, 1, 5), {"in": 1})], [Category("in", "A", '#fff" onload="x')], "#rrggbb"),
    ],
)
def test_daily_stacked_bars_refuse_what_they_cannot_draw(
    days: list[tuple[date, dict[str, float]]], categories: list[Category], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        daily_stacked_bars(days, categories, title=TITLE, empty=EMPTY)


# --- late-minutes bands --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bands", "top_tick"),
    [
        (BANDS, "15"),
        ({"TL1": 1}, "1"),  # a single value
        ({"TL1": 0, "TL2": 0, "TL3": 0, "TL4": 0}, "1"),  # all zeros
        ({"TL1": 100000, "TL2": 99999, "TL3": 5, "TL4": 1}, "100000"),  # very large counts
        ({"TL1": 7, "TL2": 123457}, "150000"),
    ],
)
def test_band_histogram_bars_are_proportional_with_counts_and_round_ticks(bands: dict[str, int], top_tick: str) -> None:
    root = parse(band_histogram(bands, title=TITLE, empty=EMPTY, colour="#D55E00"))
    bars = by_class(root, "bar", "g")
    assert [title_of(b) for b in bars] == [f"{label}: {count}" for label, count in bands.items()]
    rects = [b.find(f"{NS}rect") for b in bars]
    assert all(r is not None and r.get("fill") == "#D55E00" for r in rects)
    heights = [num(r, "height") for r in rects if r is not None]
    assert all(h >= 0 for h in heights)
    if max(bands.values()):
        proportional(heights, list(bands.values()))
    else:
        assert heights == [0] * len(bands)
    assert [texts(b)[0] for b in bars] == [str(v) for v in bands.values()], "each bar has its count"
    assert texts(by_class(root, "x-labels")[0]) == list(bands)
    ticks = texts(by_class(root, "axis")[0])
    assert ticks[0] == "0" and ticks[-1] == top_tick and len(ticks) <= 6
    bottoms = {round(num(r, "y") + num(r, "height"), 1) for r in rects if r is not None}
    assert len(bottoms) == 1, "all bars stand on one baseline"


def test_band_histogram_draws_the_tallest_bar_to_the_top_tick_when_it_is_round() -> None:
    root = parse(band_histogram({"TL1": 100000, "TL2": 50000}, title=TITLE, empty=EMPTY))
    lines = list(by_class(root, "axis")[0].iter(f"{NS}line"))
    top_line = min(num(line, "y1") for line in lines)
    rect = by_class(root, "bar", "g")[0].find(f"{NS}rect")
    assert rect is not None and num(rect, "y") == pytest.approx(top_line)


def test_numbers_are_written_by_the_callers_format() -> None:
    def dotted(value: float) -> str:  # Indonesian grouping
        return f"{value:,.0f}".replace(",", ".")

    root = parse(band_histogram({"TL1": 100000}, title=TITLE, empty=EMPTY, number=dotted))
    assert texts(by_class(root, "axis")[0])[-1] == "100.000"
    assert title_of(by_class(root, "bar", "g")[0]) == "TL1: 100.000"


# --- TK per unit ---------------------------------------------------------------------------------------

LONG = "Badan Kepegawaian dan Pengembangan Sumber Daya Manusia Daerah"
HALF = int(WIDTH * 0.45 / CHAR)  # the most characters a unit's name may take: under half the chart


@pytest.mark.parametrize(
    ("names", "label_chars", "shown"),
    [
        (["Bagian Umum"], 28, ["Bagian Umum"]),
        ([LONG], 28, ["Badan Kepegawaian dan Penge…"]),
        ([LONG], 10, ["Badan Kep…"]),
        ([LONG, "Bidang Aset"], 12, ["Badan Kepeg…", "Bidang Aset"]),
        (["Dinas Pendidikan dan Kebudayaan"], 18, ["Dinas Pendidikan…"]),  # no space left before the ellipsis
        ([LONG], 500, [LONG[: HALF - 1].rstrip() + "…"]),  # a name never takes more than about half the chart
    ],
)
def test_unit_bars_cut_long_names_and_keep_them_whole_in_the_tooltip(
    names: list[str], label_chars: int, shown: list[str]
) -> None:
    root = parse(unit_bars([(n, 3) for n in names], title=TITLE, empty=EMPTY, label_chars=label_chars))
    bars = by_class(root, "bar", "g")
    assert [title_of(b) for b in bars] == [f"{n}: 3" for n in names]
    labels = [t.text for b in bars for t in by_class(b, "label", "text")]
    assert labels == shown
    assert all(len(label or "") <= min(label_chars, HALF) for label in labels)


def test_unit_bars_keep_the_given_order_and_widths_are_proportional() -> None:
    data = [("Sekretariat", 2), ("Bidang Aset", 17), ("Bagian Umum", 0), ("Inspektorat", 100000)]
    root = parse(unit_bars(data, title=TITLE, empty=EMPTY, colour="#000"))
    bars = by_class(root, "bar", "g")
    assert [t.text for b in bars for t in by_class(b, "label", "text")] == [n for n, _v in data]
    assert [t.text for b in bars for t in by_class(b, "count", "text")] == [str(v) for _n, v in data]
    rects = [r for b in bars for r in b.iter(f"{NS}rect")]
    assert [r.get("fill") for r in rects] == ["#000"] * 4
    proportional([num(r, "width") for r in rects], [v for _n, v in data])
    tops = [num(r, "y") for r in rects]
    assert tops == sorted(tops), "top to bottom in the order given"
    assert max(num(r, "x") + num(r, "width") for r in rects) < 640


# --- trend per unit ------------------------------------------------------------------------------------


def test_trend_lines_draw_a_line_per_series_with_gaps_markers_and_legend() -> None:
    series = [
        Series("Bagian Umum", [1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0]),
        Series("Bidang Aset", [2, 2, None, 3, 3, 3, None, None, 1, 1, 1, 8], "#CC79A7"),
        Series("Sekretariat", [None] * 11 + [4]),  # a lone value: a marker, no line
    ]
    root = parse(trend_lines(MONTHS, series, title=TITLE, empty=EMPTY))
    groups = by_class(root, "series", "g")
    assert [title_of(g) for g in groups] == [s.label for s in series]
    assert [len(list(g.iter(f"{NS}polyline"))) for g in groups] == [1, 3, 0]
    assert [len(by_class(g, "point", "circle")) for g in groups] == [12, 9, 1]
    assert texts(by_class(root, "legend")[0]) == [s.label for s in series]
    strokes = [line.get("stroke") for line in by_class(root, "legend")[0].iter(f"{NS}line")]
    assert strokes == [PALETTE[0], "#CC79A7", PALETTE[2]]
    dashes = [line.get("stroke-dasharray") for line in by_class(root, "legend")[0].iter(f"{NS}line")]
    assert len(set(dashes)) == 3, "lines differ in dash too, for grey print"
    assert texts(by_class(root, "x-labels")[0]) == MONTHS
    first = by_class(groups[0], "point", "circle")
    assert title_of(first[4]) == "Bagian Umum, Mei: 5"
    baseline = max(num(p, "cy") for p in first)  # the value 0
    proportional([baseline - num(p, "cy") for p in first], [v for v in series[0].values if v is not None])
    xs = [num(p, "cx") for p in first]
    assert all(b - a == pytest.approx(xs[1] - xs[0], abs=0.02) for a, b in pairwise(xs))


def test_trend_lines_with_fractions_get_fractional_ticks() -> None:
    root = parse(trend_lines(["Jan", "Feb"], [Series("A", [0.5, 1.25])], title=TITLE, empty=EMPTY))
    assert texts(by_class(root, "axis")[0]) == ["0", "0.5", "1", "1.5"]


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([Series("A", [1, 2])], "2 values for 3 x labels"),
        ([Series("A", [1, 2, -1])], "not negative"),
        ([Series("A", [1, 2, math.nan])], "finite"),
        ([Series("A", [1, 2, 3], "url(#x)")], "#rrggbb"),
    ],
)
def test_trend_lines_refuse_what_they_cannot_draw(series: list[Series], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        trend_lines(["Jan", "Feb", "Mar"], series, title=TITLE, empty=EMPTY)
