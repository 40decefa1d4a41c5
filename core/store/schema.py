"""Tables of a workspace (SQLAlchemy Core).

Ids: every table has an integer primary key used inside the engine; users and items also
keep the shop's own ``external_id`` (text) so nothing the shop knows is lost. Item
``categories`` is a ``|``-joined list, first entry = primary category. ``attributes``
columns hold JSON objects of whatever extra columns the source file had.

``events.ts`` is a float: unix seconds, or a plain position when the source only gave an
order (``meta.time_kind`` says which). Bump ``SCHEMA_VERSION`` and add a step in
``workspace._MIGRATIONS`` whenever a table changes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

from sqlalchemy import (
    Column,
    Float,
    LargeBinary,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 3
CATEGORY_SEPARATOR = "|"


@lru_cache(maxsize=4096)
def split_categories(text: Optional[str]) -> tuple[str, ...]:
    """An item's stored categories ("A|B") as the one form the rest of the code uses: names, primary first.
    Kept per text: a shop has few distinct ones, and every served item asks (3% of a served list's time)."""
    return tuple(name for name in (part.strip() for part in (text or "").split(CATEGORY_SEPARATOR)) if name)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String, nullable=False, unique=True),
    Column("attributes", Text, nullable=True),  # JSON object, e.g. {"age": 24, "gender": "M"}
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String, nullable=False, unique=True),
    Column("title", Text, nullable=True),
    Column("categories", Text, nullable=True),  # "Adventure|Comedy", primary first
    Column("attributes", Text, nullable=True),  # JSON object
)

imports = Table(
    "imports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String, nullable=False),  # "events" | "items" | "users"
    Column("source_path", Text, nullable=False),
    Column("source_sha256", String, nullable=False),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_accepted", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("duration_s", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),  # unix seconds
    Column("options", Text, nullable=True),  # JSON: delimiter, encoding, column roles, policy
)
Index("ix_imports_sha", imports.c.source_sha256, imports.c.kind)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("import_id", Integer, ForeignKey("imports.id", ondelete="CASCADE"), nullable=False),
    Column("line", Integer, nullable=False),  # 1-based line in the source file
    Column("column", String, nullable=True),  # column name or number, when one is to blame
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=True),  # the offending line as read
)
Index("ix_rejected_import", rejected_rows.c.import_id, rejected_rows.c.line)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("event_type", String, nullable=False, default="interaction"),
    Column("value", Float, nullable=True),  # rating, price, quantity...
    Column("import_id", Integer, ForeignKey("imports.id"), nullable=True),
    # 1: a dislike (a low rating the import was told to mark): kept and shown, never learned from as an
    # interaction nor held out as a test target (``Workspace.event_arrays`` leaves it out).
    Column("negative", Integer, nullable=False, default=0, server_default="0"),
)
# One user's time-ordered sequence; the rowid breaks ties in file order. The only index on events: one
# by item (release 2 had it) cost a third of SQLite's work for each posted event, and served only
# the per-item counts, which ``core.store.stats`` now takes from a scan.
Index("ix_events_user_ts", events.c.user_id, events.c.ts)

# A run's status; "interrupted" is never stored: it is how a "running" row reads once the process
# training it is gone (``core.runs``). Resumable: stopped by the user, its process gone, or an error.
RESUMABLE = ("cancelled", "interrupted", "failed")

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("model", String, nullable=False),  # "sasrec", "gru", "pop", ...
    Column("status", String, nullable=False),  # "running" | "done" | "cancelled" | "failed"; see RESUMABLE
    Column("config", Text, nullable=False),  # JSON of the config dataclass
    Column("metrics", Text, nullable=True),  # JSON: validation/test metrics, segments
    Column("device", String, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("content_hash", String, nullable=True),  # workspace content the run was trained on
    Column("bundle_path", Text, nullable=True),
)

# Each item's text embedded by a sentence-embedding model (core.text); a cache, refreshed when the
# item's text (text_hash) or the model (name and version) changes. A new table needs no migration:
# opening a workspace creates the tables it lacks.
item_text_vectors = Table(
    "item_text_vectors",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("model", String, nullable=False),  # model name and version, e.g. "all-MiniLM-L6-v2 (gt 0.1.0)"
    Column("text_hash", String, nullable=False),  # sha256 of the text embedded, first 16 hex digits
    Column("vector", LargeBinary, nullable=False),  # float16, unit length
    PrimaryKeyConstraint("item_id", "model"),
)
