"""The registry, leave and manual attendance, the monthly scores and the feed of re-scored days.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Types are spelled out here rather than imported from ``db.py`` (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _instant() -> sa.DateTime:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _seq() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _zero() -> sa.TextClause:
    return sa.text("0")


def upgrade() -> None:
    """Create the registry, entry, score and change tables; index punches by subject instead of by time."""
    op.create_table(
        "employees",
        sa.Column("nip", sa.String(18), nullable=False, comment="NIP, 18 digits"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(200), nullable=False),
        sa.Column(
            "zk_user_id", sa.String(24), nullable=True, comment="user id on every ZK terminal, unless mapped per device"
        ),
        sa.Column("card_uid", sa.String(20), nullable=True, comment="RFID card UID, upper-case hex"),
        sa.Column("six_day", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("tpp_base", sa.Numeric(15, 2), nullable=True, comment="monthly TPP in rupiah"),
        sa.Column("active_from", sa.Date(), nullable=False),
        sa.Column("active_to", sa.Date(), nullable=True),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("nip", name="pk_employees"),
        **_MYSQL,
    )
    op.create_index("uq_employees_zk_user_id", "employees", ["zk_user_id"], unique=True)
    op.create_index("uq_employees_card_uid", "employees", ["card_uid"], unique=True)
    op.create_index("ix_employees_unit", "employees", ["unit"])
    op.create_table(
        "subject_mappings",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_value", sa.String(32), nullable=False),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subject_mappings"),
        **_MYSQL,
    )
    op.create_index(
        "uq_subject_mappings_subject",
        "subject_mappings",
        ["gateway_id", "device_id", "subject_kind", "subject_value"],
        unique=True,
    )
    _entries()
    _scores()
    _feed_locks()
    # Scoring reads through the subject index; nothing reads by time alone any more, and every
    # index costs each ingest.
    op.drop_index("ix_punches_occurred_at", table_name="punches")
    op.create_index(
        "ix_punches_subject",
        "punches",
        ["subject_kind", "subject_value", "occurred_at", "punch", "gateway_id", "device_id"],
    )


def _entries() -> None:
    op.create_table(
        "leave_entries",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("approved_by", sa.String(100), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leave_entries"),
        **_MYSQL,
    )
    op.create_index("ix_leave_entries_nip_first_day", "leave_entries", ["nip", "first_day"])
    op.create_table(
        "manual_entries",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False, comment="office wall clock"),
        sa.Column("punch", sa.String(16), nullable=False, comment="in or out"),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("approved_by", sa.String(100), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_manual_entries"),
        **_MYSQL,
    )
    op.create_index("ix_manual_entries_nip_at", "manual_entries", ["nip", "at"])


def _scores() -> None:
    op.create_table(
        "attendance_months",
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("month", sa.Date(), nullable=False, comment="first day of the month"),
        sa.Column("stale", sa.Boolean(), nullable=False, comment="an input changed since it was scored"),
        sa.Column("stale_at", _instant(), nullable=True, comment="when an input last changed"),
        sa.Column("version", sa.Integer(), nullable=False, server_default=_zero(), comment="input changes so far"),
        sa.Column("scored_with", sa.String(64), nullable=True, comment="fingerprint of the rule profile and zone"),
        sa.Column("scored_through", sa.Date(), nullable=True, comment="the last day scored"),
        sa.Column("days", sa.Text(), nullable=True, comment="the day scores, JSON"),
        sa.Column("working_days", sa.Integer(), nullable=False, server_default=_zero()),
        *[sa.Column(f"tl{n}", sa.Integer(), nullable=False, server_default=_zero()) for n in range(1, 5)],
        *[sa.Column(f"psw{n}", sa.Integer(), nullable=False, server_default=_zero()) for n in range(1, 5)],
        sa.Column("tk_days", sa.Integer(), nullable=False, server_default=_zero()),
        sa.Column("leave_days", sa.Integer(), nullable=False, server_default=_zero()),
        sa.Column("cut_percent", sa.Double(), nullable=False, server_default=_zero()),
        sa.Column("cut_amount", sa.Numeric(15, 2), nullable=True),
        sa.Column("scored_at", _instant(), nullable=True),
        sa.PrimaryKeyConstraint("nip", "month", name="pk_attendance_months"),
        **_MYSQL,
    )
    op.create_index("ix_attendance_months_month_stale", "attendance_months", ["month", "stale"])
    op.create_table(
        "day_changes",
        sa.Column("seq", _seq(), autoincrement=True, nullable=False, comment="change feed position"),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("changed_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_day_changes"),
        sqlite_autoincrement=True,
        **_MYSQL,
    )


def _feed_locks() -> None:
    locks = op.create_table(
        "feed_locks",
        sa.Column("name", sa.String(32), nullable=False, comment="a feed whose writers take turns"),
        sa.PrimaryKeyConstraint("name", name="pk_feed_locks"),
        **_MYSQL,
    )
    op.bulk_insert(locks, [{"name": "day_changes"}])


def downgrade() -> None:
    """Drop what 0002 created; the punches stay."""
    op.drop_index("ix_punches_subject", table_name="punches")
    op.create_index("ix_punches_occurred_at", "punches", ["occurred_at"])
    for table in (
        "feed_locks",
        "day_changes",
        "attendance_months",
        "manual_entries",
        "leave_entries",
        "subject_mappings",
    ):
        op.drop_table(table)
    op.drop_table("employees")
