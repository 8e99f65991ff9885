"""initial schema: images, paths, faces, proposals, decisions, annotations, embeddings, models, settings

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("rule_state", sa.String(16), nullable=False),
        sa.Column("rule_label", sa.String(32), nullable=True),
        sa.Column("rule_words", sa.Text, nullable=False),
        sa.Column("rule_source", sa.String(200), nullable=False),
        sa.Column("detected", sa.Boolean, nullable=False),
        sa.Column("detector", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_images_status", "images", ["status"])
    op.create_index("ix_images_rule_state", "images", ["rule_state"])
    op.create_table(
        "image_paths",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False, unique=True),
        sa.Column("root", sa.String(1024), nullable=False),
        sa.Column("relpath", sa.String(1024), nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_image_paths_image_id", "image_paths", ["image_id"])
    op.create_table(
        "faces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("x2", sa.Float, nullable=False),
        sa.Column("y2", sa.Float, nullable=False),
        sa.Column("det_score", sa.Float, nullable=False),
        sa.Column("landmarks", sa.JSON, nullable=True),
        sa.Column("whole_image", sa.Boolean, nullable=False),
        sa.Column("quality", sa.JSON, nullable=True),
        sa.Column("flags", sa.String(200), nullable=False),
        sa.Column("detector", sa.String(100), nullable=False),
        sa.Column("crop", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("image_id", "idx"),
    )
    op.create_index("ix_faces_image_id", "faces", ["image_id"])
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("prob", sa.Float, nullable=True),
        sa.Column("probs", sa.JSON, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_proposals_face_kind", "proposals", ["face_id", "source_kind", "id"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=True),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_decisions_face", "decisions", ["face_id", "id"])
    op.create_index("ix_decisions_image", "decisions", ["image_id", "id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON, nullable=True),
        sa.Column("undoes_id", sa.Integer, sa.ForeignKey("annotations.id"), nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_annotations_face", "annotations", ["face_id", "id"])
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("face_id", "model"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for t in ("settings", "model_versions", "embeddings", "annotations", "decisions", "proposals", "faces", "image_paths", "images"):
        op.drop_table(t)
