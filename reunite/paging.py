"""Keyset pagination: a page ends at a row's sort key, and the next page starts after it.

Unlike offsets, a keyset page stays correct while rows are added (a sync client never skips or
repeats a row). A cursor is the last row's sort key; the HTTP layer makes it opaque.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

SortKey = Sequence[tuple[Any, bool]]
"""The ordering: (column, ascending) pairs, the last one unique (the id)."""


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


def key_of(row: Any, names: Sequence[str]) -> list[Any]:
    """A row's sort key, by attribute name."""
    return [getattr(row, name) for name in names]
