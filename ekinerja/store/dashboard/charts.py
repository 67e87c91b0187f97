"""The dashboard's charts, drawn as SVG on the server: no JavaScript, no CDN, so the pages work offline.

Pure functions from data to an SVG string (no I/O, no clock): the same input gives the same bytes.

- ``daily_stacked_bars``: attendance per working day of one month, a stacked bar per day, with a legend.
- ``band_histogram``: counts per late-minutes band (TL1..TL4), bars with their counts.
- ``unit_bars``: one horizontal bar per unit (TK per unit), long names cut with an ellipsis.
- ``trend_lines``: one line per unit over the months of a year, with a legend.

Every word shown comes from the caller (Bahasa Indonesia first, English available); numbers are written by
the caller's ``number`` formatter, by default ``plain_number`` (digits without grouping).

The output is SVG 1.1 for inline use in HTML: a ``viewBox`` and no width or height, so it takes the width
of its container and keeps its proportions; ``role="img"``, ``aria-label`` and a ``<title>`` name it for
screen readers, and every bar or point has its own ``<title>`` (the browser's tooltip) with its value. The
tree is built with ElementTree, which escapes all text (unit names come from users); characters XML cannot
carry at all (control characters) are dropped. No ``id`` is used, so several charts can share a page.

Colours: ``PALETTE`` is the Okabe–Ito palette ("Color Universal Design", Okabe & Ito, 2008), whose hues stay
apart for the common kinds of colour blindness. It is ordered so that neighbours alternate darker and
lighter, which helps on a grey printout; stacked segments are also split by white strokes, and lines differ
in dash pattern (``DASHES``) as well as colour. Yellow comes last: it is faint on white paper. A caller may
pass its own colours, as ``#rgb`` or ``#rrggbb``.
"""

from __future__ import annotations

import calendar
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

NumberFormat = Callable[[float], str]

PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue (dark)
    "#E69F00",  # orange (light)
    "#009E73",  # bluish green (mid)
    "#56B4E9",  # sky blue (light)
    "#D55E00",  # vermillion (mid)
    "#CC79A7",  # reddish purple (mid-light)
    "#000000",  # black
    "#F0E442",  # yellow (faint on white: last)
)
"""Okabe–Ito colours, used in this order when the caller gives none."""

DASHES: tuple[str, ...] = ("", "6 3", "2 3", "8 3 2 3")
"""Stroke patterns of the trend lines, in turn: solid, dashed, dotted, dash-dot (they survive grey print)."""

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 640  # viewBox units; the page scales the whole drawing to its container
FONT = 11
CHAR = 0.68 * FONT  # mean glyph width, a little over DejaVu Sans (Debian's default, about 0.65 em): no font is measured
MARGIN = 8
PLOT_HEIGHT = 220
LEGEND_ROW = 18
SWATCH = 12
ROW = 22  # one unit's row in unit_bars
BAR = 14
GRID = "#D9D9D9"
AXIS = "#404040"
MUTED = "#595959"  # grey text that still prints and reads (7:1 on white)
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_COLOUR = re.compile(r"#(?:[0-9A-Fa-f]{3}){1,2}")


@dataclass(frozen=True)
class Category:
    """One part of the daily stacked bar: the key in each day's counts, its legend label, its colour."""

    key: str
    label: str
    colour: str | None = None  # None: the next colour of PALETTE


@dataclass(frozen=True)
class Series:
    """One line of a trend chart: its legend label, one value per x label (None: no data), its colour."""

    label: str
    values: Sequence[float | None]
    colour: str | None = None  # None: the next colour of PALETTE


@dataclass(frozen=True)
class _Plot:
    """The area inside the axes, and the value drawn at its far edge (the last tick)."""

    left: float
    top: float
    width: float
    height: float
    scale: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def y(self, value: float) -> float:
        """Where ``value`` sits on a vertical axis."""
        return self.bottom - self.height * value / self.scale

    def x(self, value: float) -> float:
        """Where ``value`` sits on a horizontal axis."""
        return self.left + self.width * value / self.scale


# --- public --------------------------------------------------------------------------------------------


def plain_number(value: float) -> str:
    """``value`` as plain digits: whole numbers without a fraction, others to at most two decimals."""
    if float(value).is_integer():
        return str(int(value))
    return _n(value)


def axis_ticks(top: float, *, whole: bool = True, most: int = 5) -> list[float]:
    """Ticks from 0 to the first one at or above ``top``, a round step apart (1, 2 or 5 × 10ⁿ).

    At most ``most`` steps; ``whole`` keeps the step at 1 or more (counts have no half people).
    Nothing to show (``top`` 0) still gives a scale, 0 and 1, so no chart divides by zero.
    """
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    rough = top / most
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    if whole:
        step = max(step, 1.0)
    places = max(0, -math.floor(math.log10(step))) + 1  # rounding off float noise such as 0.30000000000000004
    count = math.ceil(round(top / step, 9))
    return [round(i * step, places) for i in range(count + 1)]


def daily_stacked_bars(
    days: Sequence[tuple[date, Mapping[str, float]]],
    categories: Sequence[Category],
    *,
    title: str,
    empty: str,
    x_label: str = "",
    number: NumberFormat = plain_number,
) -> str:
    """Attendance per day of one month: a bar per given day at its day of month, its ``categories`` stacked.

    ``days`` holds (date, {category key: count}); keys not in ``categories`` are not drawn, missing ones
    count 0. Days left out (weekends, holidays) leave a gap, so weeks stay visible. ``title`` names the
    chart for screen readers, ``empty`` is shown when there are no days. Raises ValueError for days of
    more than one month, a day given twice, or a negative or non-finite count.
    """
    if not days or not categories:
        return _empty(title, empty)
    year, month = _month_of(days)
    colours = _colours([c.colour for c in categories])
    stacks = [[_value(counts.get(c.key, 0)) for c in categories] for _day, counts in days]
    totals = [sum(stack) for stack in stacks]
    ticks = axis_ticks(max(totals), whole=_whole([v for stack in stacks for v in stack]))
    root = _svg(title)
    legend = _legend(root, [(c.label, colour, None) for c, colour in zip(categories, colours, strict=True)])
    plot = _column_plot(ticks, number, MARGIN + legend + 8)
    _y_axis(root, plot, ticks, number)
    slot = plot.width / calendar.monthrange(year, month)[1]
    bars = _el(root, "g", class_="bars")
    for (day, _counts), stack in zip(days, stacks, strict=True):
        left = plot.left + slot * (day.day - 1)
        parts = [(c.label, colour, v) for c, colour, v in zip(categories, colours, stack, strict=True)]
        _stack(bars, plot, day, left + slot * 0.15, slot * 0.7, parts, number)
    _x_labels(root, plot, slot, [(plot.left + slot * (d.day - 0.5), str(d.day)) for d, _c in days])
    return _finish(root, _caption(root, plot, x_label))


def band_histogram(
    bands: Mapping[str, float],
    *,
    title: str,
    empty: str,
    colour: str = PALETTE[0],
    x_label: str = "",
    number: NumberFormat = plain_number,
) -> str:
    """Counts per band (e.g. late minutes TL1 1–30, TL2 31–60, TL3 61–90, TL4 >90), one bar each, in the
    mapping's order, its count written above it.

    ``bands`` maps the caller's band label to its count. ``empty`` is shown when there are no bands.
    Raises ValueError for a negative or non-finite count or a colour not written #rgb or #rrggbb.
    """
    if not bands:
        return _empty(title, empty)
    values = [_value(v) for v in bands.values()]
    fill = _colour(colour)
    ticks = axis_ticks(max(values), whole=_whole(values))
    root = _svg(title)
    plot = _column_plot(ticks, number, MARGIN + FONT + 6)  # room for the count over the tallest bar
    _y_axis(root, plot, ticks, number)
    slot = plot.width / len(values)
    bars = _el(root, "g", class_="bars")
    for i, (label, value) in enumerate(zip(bands, values, strict=True)):
        bar = _el(bars, "g", class_="bar")
        _el(bar, "title", f"{label}: {number(value)}")
        top = plot.y(value)
        _el(bar, "rect", x=plot.left + slot * (i + 0.2), y=top, width=slot * 0.6, height=plot.bottom - top, fill=fill)
        _el(bar, "text", number(value), class_="count", x=plot.left + slot * (i + 0.5), y=top - 4, text_anchor="middle")
    _x_labels(root, plot, slot, [(plot.left + slot * (i + 0.5), label) for i, label in enumerate(bands)])
    return _finish(root, _caption(root, plot, x_label))


def unit_bars(
    units: Sequence[tuple[str, float]],
    *,
    title: str,
    empty: str,
    colour: str = PALETTE[0],
    label_chars: int = 28,
    number: NumberFormat = plain_number,
) -> str:
    """One horizontal bar per (unit name, value), top to bottom in the order given, its value at its end.

    Names longer than ``label_chars`` (and than fits half the chart) are cut with an ellipsis; the full
    name and value are in the row's ``<title>`` tooltip. ``empty`` is shown when there are no units.
    Raises ValueError for a negative or non-finite value or a colour not written #rgb or #rrggbb.
    """
    if not units:
        return _empty(title, empty)
    values = [_value(v) for _name, v in units]
    fill = _colour(colour)
    ticks = axis_ticks(max(values), whole=_whole(values))
    limit = max(2, min(label_chars, int(WIDTH * 0.45 / CHAR)))  # a long name must not squeeze out the bars
    names = [_truncate(name, limit) for name, _v in units]
    left = MARGIN + max(_text_width(name) for name in names) + 8
    right = MARGIN + _text_width(number(ticks[-1])) + 10  # the value written after the longest bar
    plot = _Plot(left, MARGIN + FONT + 8, WIDTH - left - right, ROW * len(units), ticks[-1])
    root = _svg(title)
    _x_axis(root, plot, ticks, number)
    bars = _el(root, "g", class_="bars")
    for i, ((name, _v), short, value) in enumerate(zip(units, names, values, strict=True)):
        middle = plot.top + ROW * (i + 0.5)
        bar = _el(bars, "g", class_="bar")
        _el(bar, "title", f"{name}: {number(value)}")
        _el(bar, "text", short, class_="label", x=left - 8, y=middle + FONT * 0.35, text_anchor="end")
        _el(bar, "rect", x=left, y=middle - BAR / 2, width=plot.x(value) - left, height=BAR, fill=fill)
        _el(bar, "text", number(value), class_="count", x=plot.x(value) + 4, y=middle + FONT * 0.35)
    return _finish(root, plot.bottom + MARGIN)


def trend_lines(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    empty: str,
    number: NumberFormat = plain_number,
) -> str:
    """One line per series (e.g. per unit) over ``x_labels`` (e.g. the months of a year), with a legend.

    Each series has one value per x label; None is a gap in its line. Every point has a tooltip with
    series, x label and value. X labels are cut to their slot: twelve months fit as "Jan", not "Januari".
    ``empty`` is shown when no series has a value. Raises ValueError for a series of the wrong length,
    a negative or non-finite value, or a colour not written #rgb or #rrggbb.
    """
    for line in series:
        if len(line.values) != len(x_labels):
            raise ValueError(f"trend_lines: {len(line.values)} values for {len(x_labels)} x labels")
    values = [_value(v) for line in series for v in line.values if v is not None]
    if not values:
        return _empty(title, empty)
    colours = _colours([line.colour for line in series])
    dashes = [DASHES[i % len(DASHES)] for i in range(len(series))]
    ticks = axis_ticks(max(values), whole=_whole(values))
    root = _svg(title)
    legend = _legend(root, [(s.label, c, d) for s, c, d in zip(series, colours, dashes, strict=True)])
    plot = _column_plot(ticks, number, MARGIN + legend + 8)
    _y_axis(root, plot, ticks, number)
    slot = plot.width / len(x_labels)
    centres = [plot.left + slot * (i + 0.5) for i in range(len(x_labels))]
    lines = _el(root, "g", class_="lines")
    for line, colour, dash in zip(series, colours, dashes, strict=True):
        _line(lines, plot, line, centres, colour, dash, x_labels, number)
    _x_labels(root, plot, slot, list(zip(centres, x_labels, strict=True)))
    return _finish(root, plot.bottom + FONT + 8 + MARGIN)


# --- checks --------------------------------------------------------------------------------------------


def _value(value: float) -> float:
    """A count or measure as float; refused when it cannot be drawn from a zero baseline."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"chart values must be finite and not negative, not {value!r}")
    return float(value)


def _whole(values: Sequence[float]) -> bool:
    return all(float(v).is_integer() for v in values)


def _colour(colour: str) -> str:
    # Hex only: a colour lands in an attribute, and anything else (url(), names) is not ours to vouch for.
    if not _COLOUR.fullmatch(colour):
        raise ValueError(f"a chart colour must be written #rgb or #rrggbb, not {colour!r}")
    return colour


def _colours(wanted: Sequence[str | None]) -> list[str]:
    return [PALETTE[i % len(PALETTE)] if c is None else _colour(c) for i, c in enumerate(wanted)]


def _month_of(days: Sequence[tuple[date, Mapping[str, float]]]) -> tuple[int, int]:
    """The one (year, month) of ``days``: the x axis is the day of that month."""
    months = {(day.year, day.month) for day, _counts in days}
    if len(months) != 1:
        raise ValueError(f"daily_stacked_bars: the days must be of one month, not {sorted(months)}")
    if len({day for day, _counts in days}) != len(days):
        raise ValueError("daily_stacked_bars: a day is given twice")
    return months.pop()


# --- drawing -------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """A coordinate with at most two decimals: float noise must not change the bytes."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (escaping the rest is ElementTree's job)."""
    return _NOT_XML.sub("", text)


def _truncate(text: str, limit: int) -> str:
    text = _clean(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text_width(text: str) -> float:
    return len(text) * CHAR


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str | float | None) -> ET.Element:
    """A child element; ``class_`` gives class, ``text_anchor`` gives text-anchor; None leaves it out."""
    attrib = {
        name.rstrip("_").replace("_", "-"): _clean(value) if isinstance(value, str) else _n(value)
        for name, value in attrs.items()
        if value is not None
    }
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = _clean(text)
    return element


def _svg(title: str) -> ET.Element:
    """The root, named for screen readers; its viewBox is set by ``_finish`` once the height is known."""
    root = ET.Element("svg", {"xmlns": SVG_NS, "version": "1.1", "viewBox": "", "class": "chart", "role": "img"})
    root.set("aria-label", _clean(title))
    root.set("font-family", "sans-serif")
    root.set("font-size", str(FONT))
    _el(root, "title", title)
    return root


def _finish(root: ET.Element, height: float) -> str:
    root.set("viewBox", f"0 0 {WIDTH} {_n(height)}")
    return ET.tostring(root, encoding="unicode")


def _empty(title: str, text: str) -> str:
    """A low strip saying there is nothing to draw, in the caller's words."""
    root = _svg(title)
    root.set("class", "chart empty")
    _el(root, "text", text, x=WIDTH / 2, y=28, fill=MUTED, text_anchor="middle")
    return _finish(root, 44)


def _column_plot(ticks: list[float], number: NumberFormat, top: float) -> _Plot:
    """The plot area of a chart with vertical bars: left of it, room for the longest tick label."""
    left = MARGIN + max(_text_width(number(t)) for t in ticks) + 6
    return _Plot(left, top, WIDTH - left - MARGIN, PLOT_HEIGHT, ticks[-1])


def _y_axis(root: ET.Element, plot: _Plot, ticks: list[float], number: NumberFormat) -> None:
    """A grid line at each tick, labelled on the left; the zero line is the darker baseline."""
    axis = _el(root, "g", class_="axis")
    for tick in ticks:
        y = plot.y(tick)
        _el(axis, "line", x1=plot.left, y1=y, x2=plot.left + plot.width, y2=y, stroke=GRID if tick else AXIS)
        _el(axis, "text", number(tick), x=plot.left - 6, y=y + FONT * 0.35, fill=MUTED, text_anchor="end")


def _x_axis(root: ET.Element, plot: _Plot, ticks: list[float], number: NumberFormat) -> None:
    """A vertical grid line at each tick, labelled above the plot; the zero line is the darker baseline."""
    axis = _el(root, "g", class_="axis")
    for tick in ticks:
        x = plot.x(tick)
        _el(axis, "line", x1=x, y1=plot.top, x2=x, y2=plot.bottom, stroke=GRID if tick else AXIS)
        _el(axis, "text", number(tick), x=x, y=plot.top - 6, fill=MUTED, text_anchor="middle")


def _x_labels(root: ET.Element, plot: _Plot, slot: float, labels: Sequence[tuple[float, str]]) -> None:
    """Labels centred under their slots, cut to the slot's width so neighbours never overlap."""
    group = _el(root, "g", class_="x-labels")
    limit = max(2, int((slot - 6) / CHAR))  # a gap between neighbours: real glyphs vary around CHAR
    for x, label in labels:
        _el(group, "text", _truncate(label, limit), x=x, y=plot.bottom + FONT + 4, text_anchor="middle")


def _caption(root: ET.Element, plot: _Plot, text: str) -> float:
    """The x axis's caption, if any, under its labels; returns the chart's height."""
    bottom = plot.bottom + FONT + 8
    if text:
        bottom += FONT + 6
        _el(root, "text", text, class_="caption", x=plot.left + plot.width / 2, y=bottom, text_anchor="middle")
    return bottom + MARGIN


def _legend(root: ET.Element, items: Sequence[tuple[str, str, str | None]]) -> float:
    """Swatch and label per (label, colour, dash) left to right, wrapping at the chart's width.

    ``dash`` None draws a square (bars), else a line in that pattern (lines). Returns the height used.
    """
    group = _el(root, "g", class_="legend")
    x, y = float(MARGIN), float(MARGIN)
    for label, colour, dash in items:
        text = _truncate(label, 40)
        width = SWATCH + 6 + _text_width(text) + 16
        if x + width > WIDTH - MARGIN and x > MARGIN:
            x, y = MARGIN, y + LEGEND_ROW
        item = _el(group, "g", class_="item")
        if text != label:
            _el(item, "title", label)
        if dash is None:
            _el(item, "rect", x=x, y=y, width=SWATCH, height=SWATCH, fill=colour)
        else:
            middle = y + SWATCH / 2
            _el(item, "line", x1=x, y1=middle, x2=x + SWATCH + 4, y2=middle, stroke=colour, stroke_width=2,
                stroke_dasharray=dash or None)  # fmt: skip
        _el(item, "text", text, x=x + SWATCH + 8, y=y + SWATCH - 2)
        x += width + 4
    return y + LEGEND_ROW - MARGIN


def _stack(
    parent: ET.Element,
    plot: _Plot,
    day: date,
    x: float,
    width: float,
    parts: Sequence[tuple[str, str, float]],
    number: NumberFormat,
) -> None:
    """One day's bar: its (label, colour, count) parts bottom-up in the given order; zero counts are left out."""
    bar = _el(parent, "g", class_="bar")
    _el(bar, "title", f"{day.isoformat()}: {number(sum(count for _l, _c, count in parts))}")
    base = 0.0
    for label, colour, count in parts:
        if count <= 0:
            continue
        top, bottom = plot.y(base + count), plot.y(base)
        segment = _el(bar, "rect", class_="segment", x=x, y=top, width=width, height=bottom - top, fill=colour,
                      stroke="#FFFFFF", stroke_width=0.5)  # fmt: skip
        _el(segment, "title", f"{label}: {number(count)} ({day.isoformat()})")
        base += count


def _line(
    parent: ET.Element,
    plot: _Plot,
    series: Series,
    centres: Sequence[float],
    colour: str,
    dash: str,
    x_labels: Sequence[str],
    number: NumberFormat,
) -> None:
    """One series: a polyline per run of values without a gap, then a marker with a tooltip per value."""
    group = _el(parent, "g", class_="series")
    _el(group, "title", series.label)
    runs: list[list[tuple[float, float]]] = [[]]
    for x, value in zip(centres, series.values, strict=True):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((x, plot.y(value)))
    for run in runs:
        if len(run) > 1:  # a lone value has no line, only its marker
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
            _el(group, "polyline", points=points, fill="none", stroke=colour, stroke_width=2,
                stroke_dasharray=dash or None)  # fmt: skip
    for x, label, value in zip(centres, x_labels, series.values, strict=True):
        if value is not None:
            point = _el(group, "circle", class_="point", cx=x, cy=plot.y(value), r=3, fill=colour, stroke="#FFFFFF")
            _el(point, "title", f"{series.label}, {label}: {number(value)}")
