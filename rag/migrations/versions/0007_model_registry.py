"""The embedder model registry (issue 14): model versions, per-model chunk vectors, the model that
embedded each chunk, and job kinds for tuning and re-embedding.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "embedder_models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("embedder_models.id"), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("method", sa.String(100), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("trained_on", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("generation", sa.String(100), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("promoted_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "chunk_vectors",
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("embedder_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("chunk_id", BigId, sa.ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True, index=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("embedder_id", sa.Integer(), nullable=True))  # None: version 1
    with op.batch_alter_table("ingestion_jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="ingest"))
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("done", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingestion_jobs") as batch:
        for name in ("result", "total", "done", "params", "kind"):
            batch.drop_column(name)
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("embedder_id")
    op.drop_table("chunk_vectors")
    op.drop_table("embedder_models")
