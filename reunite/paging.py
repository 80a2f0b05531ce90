"""Keyset pagination: a page ends at a row's sort key, and the next page starts after it.

Unlike offsets, a keyset page stays correct while rows are added (a sync client never skips or
repeats a row). A cursor is the last row's sort key; the HTTP layer makes it opaque.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")

SortKey = Sequence[tuple[Any, bool]]
"""The ordering: (column, ascending) pairs, the last one unique (the id)."""

KeyPart = str | Callable[[Any], Any]
"""How a row gives one value of its sort key: an attribute's name, or a function of the row
(for a sort column that is an SQL expression)."""


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a list: its rows, how many match in all, and where the next page starts."""

    items: list[T]
    total: int
    next_after: list[Any] | None
    """The last row's sort key when the page is full (pass it as ``after``), else None."""


def listing(
    session: Session,
    query: Select[T],
    ordering: SortKey,
    names: Sequence[KeyPart],
    *,
    after: Sequence[Any] | None,
    limit: int,
) -> Listing[T]:
    """The page of ``query``'s rows that follows ``after`` (a ``next_after``) in ``ordering``,
    whose values each row gives by ``names`` (see ``KeyPart``); ``total`` counts every row of
    ``query``."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if after is not None:
        query = query.where(after_key(ordering, after))
    rows = list(session.scalars(query.order_by(*order_by(ordering)).limit(limit)))
    next_after = key_of(rows[-1], names) if len(rows) == limit else None
    return Listing(rows, total, next_after)


def after_key(ordering: SortKey, key: Sequence[Any]) -> ColumnElement[bool]:
    """The SQL condition "sorts after ``key``" for ``ordering`` (lexicographic)."""
    if len(key) != len(ordering):
        raise ValueError(f"a cursor of {len(key)} values for {len(ordering)} sort columns")
    terms = []
    for i, ((column, ascending), value) in enumerate(zip(ordering, key, strict=True)):
        beyond = column > value if ascending else column < value
        equal_before = [c == v for (c, _), v in zip(ordering[:i], key[:i], strict=True)]
        terms.append(and_(*equal_before, beyond))
    return or_(*terms)


def order_by(ordering: SortKey) -> list[Any]:
    return [column.asc() if ascending else column.desc() for column, ascending in ordering]


def key_of(row: Any, names: Sequence[KeyPart]) -> list[Any]:
    """A row's sort key, by attribute name or function."""
    return [getattr(row, name) if isinstance(name, str) else name(row) for name in names]
