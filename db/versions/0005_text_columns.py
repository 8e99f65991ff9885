"""free-text columns become unbounded Text: paths, names, sources, flags, annotators

On PostgreSQL a value longer than a VARCHAR(N) failed (StringDataRightTruncation: a 1,025-character
path, a 101-character annotator, a long rules-file name), and the rerun failed on the same file.
varchar -> text is binary-compatible there: no table rewrite, indexes kept. SQLite never enforced
the lengths, but its declared types are made to match the models too (batch mode: each table is
copied once, with foreign keys off so that dropping the old table cascades nothing).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: (table, column, old length)
COLUMNS = (
    ("images", "rule_source", 200),
    ("images", "detector", 100),
    ("image_paths", "path", 1024),
    ("image_paths", "root", 1024),
    ("image_paths", "relpath", 1024),
    ("faces", "flags", 200),
    ("faces", "detector", 100),
    ("proposals", "source", 200),
    ("decisions", "source", 300),
    ("annotations", "annotator", 100),
    ("annotations", "source", 200),
    ("embeddings", "model", 200),
    ("model_versions", "name", 100),
    ("model_versions", "version", 100),
    ("model_versions", "path", 1024),
    ("review_leases", "annotator", 100),
)


def _alter(to_text: bool) -> None:
    """PostgreSQL: ALTER COLUMN ... TYPE text. SQLite: batch mode copies each table once (run with
    foreign keys off: labeler.store.engine.upgrade turns them off around the migrations)."""
    tables: dict[str, list[tuple[str, int]]] = {}
    for table, column, n in COLUMNS:
        tables.setdefault(table, []).append((column, n))
    for table, cols in tables.items():
        with op.batch_alter_table(table) as b:
            for column, n in cols:
                old, new = (sa.String(n), sa.Text()) if to_text else (sa.Text(), sa.String(n))
                b.alter_column(column, type_=new, existing_type=old, existing_nullable=False)


def upgrade() -> None:
    _alter(True)


def downgrade() -> None:
    _alter(False)
