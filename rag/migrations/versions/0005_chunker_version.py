"""Which chunker cut each document: a document chunked by an older version is re-chunked on the next
ingest, and re-embedded only where its chunks changed (issue 18).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        # Every document stored before this revision was cut by chunker version 1.
        batch.add_column(sa.Column("chunker_version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("chunker_version")
