"""effort: how long each human decision took

annotations: ``seconds`` (wall time from the face shown to the key press, capped at
``labeler.flow.IDLE_CAP_S``; a grid page's time shared by its faces) and ``effort`` (what kind of
decision: card, card_accept, audit, grid_face, grid_mark). Both nullable: imports, older rows and
callers that do not time themselves leave them NULL.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotations") as b:
        b.add_column(sa.Column("seconds", sa.Float(), nullable=True))
        b.add_column(sa.Column("effort", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("annotations") as b:
        b.drop_column("effort")
        b.drop_column("seconds")
