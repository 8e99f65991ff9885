"""review_leases: a face served to an annotator is leased to them for a while (labeler.store.leases)

One row per face at most: who holds it and until when. Not history (rows are replaced or deleted);
an expired row counts as no lease.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_leases",
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_review_leases_annotator", "review_leases", ["annotator"])


def downgrade() -> None:
    op.drop_index("ix_review_leases_annotator", table_name="review_leases")
    op.drop_table("review_leases")
