"""The terminals' enrolled users as a CSV the IT team completes and imports into the store's registry.

The columns are the registry's import format (``ekinerja store import-employees``): the terminal
knows the user id and the name, the IT team adds NIP, unit and the first active day. ``devices``
says where each user is enrolled and ``zk_card`` the card number the terminal keeps; the registry
import reports both as ignored columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from ekinerja.drivers.zk_records import DeviceUser

# The registry's columns (ekinerja.store.registry.REQUIRED), then what only the terminals know.
COLUMNS = ("nip", "name", "unit", "zk_user_id", "card_uid", "active_from", "devices", "zk_card")


def users_csv(users_by_device: Mapping[str, Sequence[DeviceUser]]) -> str:
    """One line per user id over all terminals, in user id order (numeric ids by number)."""
    merged: dict[str, tuple[str, list[str], set[int]]] = {}
    for device_id, users in users_by_device.items():
        for user in users:
            name, devices, cards = merged.setdefault(user.user_id, (user.name, [], set()))
            if not name and user.name:
                merged[user.user_id] = (user.name, devices, cards)
            devices.append(device_id)
            if user.card:
                cards.add(user.card)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for user_id in sorted(merged, key=lambda u: (not u.isdigit(), int(u) if u.isdigit() else 0, u)):
        name, devices, cards = merged[user_id]
        writer.writerow(["", name, "", user_id, "", "", " ".join(devices), " ".join(map(str, sorted(cards)))])
    return out.getvalue()
