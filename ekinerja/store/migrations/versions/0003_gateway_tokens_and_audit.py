"""Gateway tokens kept hashed in the database, and the audit log of changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Types are spelled out here rather than imported from ``db.py`` (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _instant() -> sa.DateTime:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _seq() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the gateway token and audit tables."""
    op.create_table(
        "gateway_tokens",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column(
            "token_sha256", sa.String(64), nullable=False, comment="only the hash is kept; the token is shown once"
        ),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("expires_at", _instant(), nullable=True, comment="set when revoked or replaced; refused from then"),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_tokens"),
        **_MYSQL,
    )
    op.create_index("uq_gateway_tokens_token_sha256", "gateway_tokens", ["token_sha256"], unique=True)
    op.create_index("ix_gateway_tokens_gateway_id", "gateway_tokens", ["gateway_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", _seq(), autoincrement=True, nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column(
            "actor", sa.String(100), nullable=False, comment="the client id, or the operator at the command line"
        ),
        sa.Column("action", sa.String(40), nullable=False, comment="e.g. employee.add, leave.add, gateway.rotate"),
        sa.Column("target", sa.String(200), nullable=False, comment="what was changed: a NIP, a gateway id"),
        sa.Column("detail", sa.Text(), nullable=False, comment="JSON: the values set, or old and new for a change"),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sqlite_autoincrement=True,
        **_MYSQL,
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target"])


def downgrade() -> None:
    """Drop what 0003 created. Tokens made with ``store gateway add`` stop working."""
    op.drop_table("audit_log")
    op.drop_table("gateway_tokens")
