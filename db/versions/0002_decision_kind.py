"""decisions.kind: why a decision was made, as a closed set (the review queue filters on it)

Existing rows get their kind from the reason text that route() wrote before the column existed.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: kind -> LIKE patterns on the reason text of route() before 0002 (checked in this order)
_REVIEW = (
    ("disagree", ("rule says %",)),
    ("ambiguous", ("ambiguous name%",)),
    ("multi_face", ("multi-face image (%",)),
    ("low_confidence", ("no keyword; model unsure%", "no model proposal%")),
    ("agree_low", ("rule (% and model agree on %",)),
    ("quality", ("quality:%",)),
)
_AUTO = (
    ("agree", ("rule (% and model agree: %",)),
    ("multi_face_agree", ("multi-face image: model %",)),
    ("model_confident", ("model confident: %",)),
)


def upgrade() -> None:
    op.add_column("decisions", sa.Column("kind", sa.String(32), nullable=False, server_default=""))
    d = sa.table("decisions", sa.column("route", sa.String), sa.column("reason", sa.Text), sa.column("kind", sa.String))
    for route, kinds in (("review", _REVIEW), ("auto", _AUTO)):
        for kind, pats in kinds:
            op.execute(
                d.update()
                .where(d.c.route == route, d.c.kind == "", sa.or_(*[d.c.reason.like(p) for p in pats]))
                .values(kind=kind)
            )
    op.execute(d.update().where(d.c.route.in_(("no_face", "broken"))).values(kind=d.c.route))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as b:
        b.drop_column("kind")
