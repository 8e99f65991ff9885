"""image_paths: unique on a sha256 of the path (``path_key``), not on the path itself

PostgreSQL's btree entries are limited to ~2,700 bytes, so a unique index on the path text refused a
long path that does not compress (the row failed, and the rerun failed on the same file). The key is
64 hex characters whatever the path; ``path`` stays unbounded Text without an index (lookups by path
go through the key; prefix filters scan, as they did on PostgreSQL's default collation anyway).

Revision ID: 0006
Revises: 0005
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: SQLite's inline UNIQUE on image_paths.path has no name: batch mode names it by this convention
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _key(path: str) -> str:
    # the same rule as labeler.store.images.path_key (a migration must not import the package)
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("image_paths", sa.Column("path_key", sa.String(64), nullable=True))
    table = sa.table("image_paths", sa.column("id", sa.Integer), sa.column("path", sa.Text),
                     sa.column("path_key", sa.String(64)))
    rows = bind.execute(sa.select(table.c.id, table.c.path)).all()
    for i in range(0, len(rows), 500):
        part = rows[i:i + 500]
        bind.execute(table.update().where(table.c.id == sa.bindparam("pid")).values(path_key=sa.bindparam("k")),
                     [{"pid": pid, "k": _key(p)} for pid, p in part])
    if bind.dialect.name == "postgresql":
        op.drop_constraint("image_paths_path_key", "image_paths", type_="unique")
        op.alter_column("image_paths", "path_key", nullable=False)
        op.create_unique_constraint("uq_image_paths_path_key", "image_paths", ["path_key"])
    else:
        with op.batch_alter_table("image_paths", naming_convention=NAMING) as b:
            b.drop_constraint("uq_image_paths_path", type_="unique")
            b.alter_column("path_key", existing_type=sa.String(64), nullable=False)
            b.create_unique_constraint("uq_image_paths_path_key", ["path_key"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint("uq_image_paths_path_key", "image_paths", type_="unique")
        op.create_unique_constraint("image_paths_path_key", "image_paths", ["path"])
        op.drop_column("image_paths", "path_key")
    else:
        with op.batch_alter_table("image_paths") as b:
            b.drop_constraint("uq_image_paths_path_key", type_="unique")
            b.create_unique_constraint("uq_image_paths_path", ["path"])
            b.drop_column("path_key")
