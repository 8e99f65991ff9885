"""videos: a processed video, its sampled frames (each with its own images row), face tracks and
the faces of each track (labeler.store.video)

A ``videos`` row is written in the same transaction as the video's frames, faces and tracks, so a
video without one was not finished (a killed run) and is processed again from the start.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("container", sa.String(16), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("sample_fps", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decoded", sa.Integer(), nullable=False),
        sa.Column("cuts", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "video_frames",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("video_id", sa.Integer(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("t_ms", sa.Float(), nullable=False),
        sa.Column("shot", sa.Integer(), nullable=False),
        sa.Column("why", sa.String(8), nullable=False),
        sa.UniqueConstraint("video_id", "frame_index"),
    )
    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("video_id", sa.Integer(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("track_no", sa.Integer(), nullable=False),
        sa.Column("shot", sa.Integer(), nullable=False),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=False),
        sa.Column("start_ms", sa.Float(), nullable=False),
        sa.Column("end_ms", sa.Float(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("att_label", sa.String(32), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("attention", sa.JSON(), nullable=True),
        sa.Column("segments", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("video_id", "track_no"),
    )
    op.create_table(
        "track_faces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("track_id", sa.Integer(), sa.ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
    )
    op.create_index("ix_track_faces_track", "track_faces", ["track_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_track_faces_track", table_name="track_faces")
    for t in ("track_faces", "tracks", "video_frames", "videos"):
        op.drop_table(t)
