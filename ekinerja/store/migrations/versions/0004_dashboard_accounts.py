"""The dashboard's users and sessions, and the status each gateway last reported.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Types are spelled out here rather than imported from ``db.py`` (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _instant() -> sa.DateTime:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create the users, sessions and gateway report tables."""
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, comment="admin, personnel or head"),
        sa.Column("unit", sa.String(200), nullable=True, comment="a head of unit sees this unit only"),
        sa.Column("password_hash", sa.String(200), nullable=False, comment="argon2id"),
        sa.Column("totp_secret", sa.String(64), nullable=False, comment="base32, for the second factor"),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True, comment="a code is good once"),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("locked_until", _instant(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_users"),
        **_MYSQL,
    )
    op.create_table(
        "sessions",
        sa.Column("id_sha256", sa.String(64), nullable=False, comment="the cookie holds the id; only its hash is kept"),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("expires_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("id_sha256", name="pk_sessions"),
        **_MYSQL,
    )
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_table(
        "gateway_reports",
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("received_at", _instant(), nullable=False),
        sa.Column(
            "report",
            sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"),
            nullable=False,
            comment="JSON: the gateway's status as it last sent it",
        ),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_gateway_reports"),
        **_MYSQL,
    )


def downgrade() -> None:
    """Drop what 0004 created: dashboard users must be added again after an upgrade."""
    op.drop_table("gateway_reports")
    op.drop_table("sessions")
    op.drop_table("users")
