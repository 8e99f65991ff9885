"""cleaning measurements: perceptual hashes, text, non-photo score, near-duplicate groups

images: ``phash`` (64-bit DCT hash as a signed BIGINT; NULL = not measured yet, which is what the
backfill looks for), ``text_share`` (share of the image covered by text boxes), ``nonphoto`` (score in
[0, 1]) and ``dup_group`` (id of the smallest image of its near-duplicate group, itself when alone).
faces: ``phash`` of the face crop and ``text_near`` (text overlaps or borders the face).
All nullable: older rows keep NULL until ``labeler clean`` measures them.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as b:
        b.add_column(sa.Column("phash", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("text_share", sa.Float(), nullable=True))
        b.add_column(sa.Column("nonphoto", sa.Float(), nullable=True))
        b.add_column(sa.Column("dup_group", sa.Integer(), nullable=True))
        b.create_index("ix_images_dup_group", ["dup_group"])
    with op.batch_alter_table("faces") as b:
        b.add_column(sa.Column("phash", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("text_near", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as b:
        b.drop_column("text_near")
        b.drop_column("phash")
    with op.batch_alter_table("images") as b:
        b.drop_index("ix_images_dup_group")
        for c in ("dup_group", "nonphoto", "text_share", "phash"):
            b.drop_column(c)
