"""The declarative base every table registers on, and the column types they share.

``UtcDateTime`` keeps times UTC-aware on both backends; ``NAMING_CONVENTION`` names
every constraint, so migrations can alter them (SQLite batch mode needs names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, Table, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

SLUG_LEN = 64

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so later migrations can alter them (SQLite batch mode needs names)."""


class Named:
    """A name in each language (``name_fi``, ``name_sv``, ``name_en``), each falling back on ``name``,
    the one name every station and group has: the one rule for models and the rows read from them."""

    __slots__ = ()
    if TYPE_CHECKING:
        name: str

    def name_in(self, lang: str) -> str:
        """The name in ``lang`` (fi, sv, en), else ``name``."""
        return getattr(self, f"name_{lang}", None) or self.name


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so naive UTC is
    stored (which also keeps its text comparisons in time order) and UTC is
    attached on the way out. Naive values given to the database are refused:
    guessing a zone is how off-by-two-hours reports happen.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give the database UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON()}
    if TYPE_CHECKING:
        # SQLAlchemy types it FromClause (a mapping may target a join); every model here maps a Table.
        __table__: ClassVar[Table]
