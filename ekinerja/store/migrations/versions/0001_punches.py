"""The punches table: every raw punch the store accepted, in feed order.

Revision ID: 0001
Revises:
Create Date: 2026-01-05

Must run on SQLite, PostgreSQL and MariaDB: give every String a length and every index a name.
The types are spelled out here rather than imported from ``db.py``, so this revision stays what it
was when later revisions change the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant() -> sa.DateTime:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create ``punches`` with its unique ``event_id`` and its ``occurred_at`` index."""
    op.create_table(
        "punches",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
            comment="feed position",
        ),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("device_serial", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("verify", sa.String(16), nullable=False),
        sa.Column("subject_kind", sa.String(16), nullable=False, comment="zk_user_id or card_uid"),
        sa.Column("subject_value", sa.String(32), nullable=False),
        sa.Column("punch", sa.String(16), nullable=False),
        sa.Column("device_time", _instant(), nullable=False, comment="naive device wall clock, in timezone"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("occurred_at", _instant(), nullable=False, comment="UTC"),
        sa.Column("clock_skew_s", sa.Double(), nullable=True),
        sa.Column("captured_at", _instant(), nullable=False, comment="UTC"),
        sa.Column("received_at", _instant(), nullable=False, comment="UTC"),
        sa.PrimaryKeyConstraint("seq", name="pk_punches"),
        sqlite_autoincrement=True,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("uq_punches_event_id", "punches", ["event_id"], unique=True)
    op.create_index("ix_punches_occurred_at", "punches", ["occurred_at"])


def downgrade() -> None:
    """Drop ``punches`` and everything in it."""
    op.drop_index("ix_punches_occurred_at", table_name="punches")
    op.drop_index("uq_punches_event_id", table_name="punches")
    op.drop_table("punches")
