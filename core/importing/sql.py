"""A query on a database (any SQLAlchemy URL) as an import source, read in chunks.

The rows are streamed (a server-side cursor where the driver has one, as PostgreSQL's does), a
chunk at a time, so memory is bounded by the chunk, not the result; progress and cancel are
checked between chunks. A query's result is no file: the same query later may hold new rows,
so it is never "already imported"; events it repeats are skipped as repeats instead. Drivers
other than SQLite's come from extras: ``pip install 'nextpick-studio[sql]'`` for PostgreSQL.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from core.importing.errors import CsvImportError, query_name
from core.importing.sniffing import unique_names
from core.importing.tables import TableBlock, TypedSource, preview_rows, text_table

_PREVIEW_ROWS = 20
DRIVER_HINT = "Install the database drivers: pip install 'nextpick-studio[sql]' (PostgreSQL)."


@dataclass(frozen=True)
class SqlQuery:
    """Rows to import: ``query`` (any SELECT) run on the database at ``url``
    (``postgresql://user:password@host/db``, ``sqlite:///shop.db``)."""

    url: str
    query: str

    @property
    def label(self) -> str:
        """The URL without its password: what reports, errors and the import history show."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return self.url.split("@")[-1]


class SqlSource(TypedSource):
    """The result of one query, previewed when opened and streamed when imported."""

    def __init__(self, spec: SqlQuery) -> None:
        self.spec = spec
        self.label = spec.label
        self.engine = _engine(spec, self.label)
        self.name = query_name(self.label)
        self.rows_expected = None
        self.identity = f"sql:{uuid.uuid4().hex}"
        with self._result(_PREVIEW_ROWS) as (columns, chunks):
            first = next(chunks, [])
        self.columns, self._renamed = unique_names(columns)  # a join's two "id" columns: id, id_2
        self.preview = preview_rows(_arrow(first, self.columns))

    @property
    def renamed(self) -> dict[str, str]:
        return self._renamed

    def settings(self) -> dict:
        return {"format": "sql", "query": self.spec.query, "columns": self.columns}

    def read(self, chunk_rows: int, columns: Optional[Sequence[str]] = None) -> Iterator[TableBlock]:
        """The rows in chunks of ``chunk_rows``; only ``columns`` are kept when given."""
        done = 0
        with self._result(chunk_rows) as (names, chunks):
            if unique_names(names)[0] != self.columns:
                raise CsvImportError(self.label, None, None, "the query's columns changed since it was previewed "
                                     f"({', '.join(self.columns)} then, {', '.join(names)} now)")
            for rows in chunks:
                table = _arrow(rows, self.columns)
                yield TableBlock(text_table(table.select(list(columns)) if columns else table), done + 1, None, done)
                done += len(rows)

    @contextmanager
    def _result(self, chunk_rows: int) -> Iterator[tuple[list[str], Iterator[list]]]:
        """(column names, the rows in lists of ``chunk_rows``) of the query, streamed; database
        errors become a CsvImportError naming the database and what it said."""
        try:
            with self.engine.connect() as conn:
                result = _execute(conn, self.spec, self.label, chunk_rows)
                yield list(result.keys()), _chunks(result, chunk_rows, self.label)
        except SQLAlchemyError as exc:
            raise _database_error(self.label, exc) from None
        finally:
            self.engine.dispose()  # no connection is kept open between the preview and the import


def _engine(spec: SqlQuery, label: str) -> Engine:
    """The database's engine; a bare ``postgresql://`` means psycopg 3 (the [sql] extra's driver)
    on every SQLAlchemy 2.x, whose older releases meant psycopg2."""
    try:
        url = make_url(spec.url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url)
    except ArgumentError as exc:
        raise CsvImportError(label, None, None, f"not a database URL: {exc}",
                             "Write it as dialect://user:password@host:port/database, "
                             "e.g. postgresql://shop@localhost/shop or sqlite:///shop.db.") from None
    except (NoSuchModuleError, ImportError) as exc:
        raise CsvImportError(label, None, None, f"no driver for this database here ({exc})", DRIVER_HINT) from None


def _execute(conn: Connection, spec: SqlQuery, label: str, chunk_rows: int):
    """The query's result, streamed. An import only reads: on PostgreSQL the transaction is read
    only, so a statement that writes is refused; anywhere, nothing it did is committed."""
    if not spec.query.strip():
        raise CsvImportError(label, None, None, "no query given", "Give a SELECT that returns the events' columns.")
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(postgresql_readonly=True)
    result = conn.execution_options(yield_per=chunk_rows).execute(text(spec.query))
    if not result.returns_rows:
        raise CsvImportError(label, None, None, "the query returns no rows", "Give a SELECT.")
    return result


def _chunks(result, chunk_rows: int, label: str) -> Iterator[list]:
    try:
        for rows in result.partitions(chunk_rows):
            yield rows
    except SQLAlchemyError as exc:
        raise _database_error(label, exc) from None


def _database_error(label: str, exc: SQLAlchemyError) -> CsvImportError:
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return CsvImportError(label, None, None, f"the database refused: {said[0] if said else type(exc).__name__}",
                          "Check the URL, that the database is running, and the query.")


def _arrow(rows: list, names: list[str]) -> pa.Table:
    """Database rows as an Arrow table, each column's type inferred from its values (a column
    mixing types, or of a type Arrow does not know, as text)."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    return pa.table({name: _column(values) for name, values in zip(names, columns)})


def _column(values: tuple) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
