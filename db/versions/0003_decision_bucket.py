"""decisions.bucket, est_precision, est_lower, est_upper: the auto-accept bucket of a face and the
precision estimate (with its 95% interval) its route was decided on (labeler.audit)

Older rows keep NULL: they were routed on fixed thresholds, with no measured precision.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as b:
        b.add_column(sa.Column("bucket", sa.String(64), nullable=True))
        b.add_column(sa.Column("est_precision", sa.Float(), nullable=True))
        b.add_column(sa.Column("est_lower", sa.Float(), nullable=True))
        b.add_column(sa.Column("est_upper", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as b:
        for c in ("est_upper", "est_lower", "est_precision", "bucket"):
            b.drop_column(c)
