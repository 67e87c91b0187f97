"""The pure rules of card taps: debounce and punch windows, table-driven."""

from __future__ import annotations

from datetime import time

import pytest

from ekinerja.drivers.card_debounce import Debounce
from ekinerja.drivers.card_reader import matching_readers
from ekinerja.drivers.punch_windows import PunchWindow, punch_at
from ekinerja.sync.contract import Punch

OFFICE = (
    PunchWindow(time(5), time(12), Punch.IN),
    PunchWindow(time(14), time(23), Punch.OUT),
)
NIGHT = (PunchWindow(time(22), time(6), Punch.IN),)


@pytest.mark.parametrize(
    ("at", "windows", "expected"),
    [
        (time(7, 30), OFFICE, Punch.IN),
        (time(5, 0), OFFICE, Punch.IN),  # a window includes its start
        (time(12, 0), OFFICE, Punch.UNKNOWN),  # and excludes its end
        (time(13, 0), OFFICE, Punch.UNKNOWN),  # between windows
        (time(16, 5), OFFICE, Punch.OUT),
        (time(23, 30), OFFICE, Punch.UNKNOWN),
        (time(23, 30), NIGHT, Punch.IN),  # a window across midnight
        (time(2, 0), NIGHT, Punch.IN),
        (time(6, 0), NIGHT, Punch.UNKNOWN),
        (time(9, 0), (), Punch.UNKNOWN),  # no windows: the store takes first and last
        (time(9, 0), (PunchWindow(time(8), time(10), Punch.BREAK_OUT), *OFFICE), Punch.BREAK_OUT),  # first wins
    ],
)
def test_punch_windows(at: time, windows: tuple[PunchWindow, ...], expected: Punch) -> None:
    assert punch_at(at, windows) is expected


@pytest.mark.parametrize(
    ("taps", "expected"),
    [
        # (reader, card, seconds) -> punch or repeat, with a 60 s window
        ([("r1", "A", 0), ("r1", "A", 30)], [True, False]),
        ([("r1", "A", 0), ("r1", "A", 60)], [True, True]),  # the window is open at its start only
        ([("r1", "A", 0), ("r1", "B", 1)], [True, True]),  # another card
        ([("r1", "A", 0), ("r2", "A", 1)], [True, True]),  # the same card at another reader
        # counted from the last punch, not the last tap: a card tapped every 25 s punches every 75 s
        (
            [("r1", "A", 0), ("r1", "A", 25), ("r1", "A", 50), ("r1", "A", 75), ("r1", "A", 100)],
            [True, False, False, True, False],
        ),
    ],
)
def test_debounce(taps: list[tuple[str, str, float]], expected: list[bool]) -> None:
    debounce: Debounce[str] = Debounce(60)
    punched = []
    for reader, card, at in taps:
        repeat = debounce.recent(reader, card, at) is not None
        if not repeat:
            debounce.punched(reader, card, at, "accepted")
        punched.append(not repeat)
    assert punched == expected


def test_a_repeat_is_told_what_its_punch_was_told() -> None:
    debounce: Debounce[str] = Debounce(60)
    debounce.punched("r1", "A", 0, "unknown card")
    debounce.punched("r1", "B", 0, "accepted")
    assert (debounce.recent("r1", "A", 10), debounce.recent("r1", "B", 10)) == ("unknown card", "accepted")
    assert debounce.recent("r1", "A", 61) is None


def test_debounce_forgets_old_cards_on_a_busy_door() -> None:
    debounce: Debounce[str] = Debounce(60)
    for n in range(2000):
        debounce.punched("r1", f"{n:08X}", n * 0.1, "accepted")
    assert len(debounce._last) <= 1025
    assert debounce.recent("r1", f"{1999:08X}", 200.0) == "accepted"


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("Virtual PCD 00 01", ["Virtual PCD 00 01"]),  # an exact name: that reader only
        ("Virtual PCD", ["Virtual PCD 00 00", "Virtual PCD 00 01"]),  # a part: every reader with it
        ("virtual pcd 00 00", ["Virtual PCD 00 00"]),  # a part ignores case
        ("ACR122U", []),
    ],
)
def test_matching_readers(wanted: str, expected: list[str]) -> None:
    assert matching_readers(["Virtual PCD 00 00", "Virtual PCD 00 01"], wanted) == expected
