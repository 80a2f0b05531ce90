"""The names pages show for the ids the store keeps: who did something (an audit or decision
``actor``: ``user:<username>``, ``key:<prefix>``, ``cli``, ``system``) and agencies' names.

Each lookup is one query for a whole page's worth, never one per row. Names go to pages only,
never to logs or audit events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from reunite.store import AgencyRow, ApiKeyRow, Store, UserRow


@dataclass(frozen=True)
class Actor:
    """Who an ``actor`` string names. ``kind``: ``user``, ``key`` or ``other`` (``cli``,
    ``system``, or a user or key no longer stored). ``name``: a user's display name (else the
    username), a key's label (else None), or the actor string itself. ``prefix``: a key's."""

    kind: str
    name: str | None
    prefix: str | None = None


def actors(store: Store, actor_names: Iterable[str]) -> dict[str, Actor]:
    """Each actor string in ``actor_names`` with whom it names: one query for the users and one
    for the keys among them (none when there are none)."""
    wanted = set(actor_names)
    usernames = {a.removeprefix("user:") for a in wanted if a.startswith("user:")}
    prefixes = {a.removeprefix("key:") for a in wanted if a.startswith("key:")}
    users: dict[str, str | None] = {}
    labels: dict[str, str | None] = {}
    with store.transaction() as session:
        if usernames:
            rows = session.execute(
                select(UserRow.username, UserRow.display_name).where(
                    UserRow.username.in_(usernames)
                )
            )
            users = {username: display for username, display in rows}
        if prefixes:
            rows = session.execute(
                select(ApiKeyRow.prefix, ApiKeyRow.label).where(ApiKeyRow.prefix.in_(prefixes))
            )
            labels = {prefix: label for prefix, label in rows}
    found: dict[str, Actor] = {}
    for actor in wanted:
        kind, _, rest = actor.partition(":")
        if kind == "user" and rest in users:
            found[actor] = Actor("user", users[rest] or rest)
        elif kind == "key" and rest in labels:
            found[actor] = Actor("key", labels[rest], prefix=rest)
        else:
            found[actor] = Actor("other", actor)
    return found


def agency_names(store: Store, codes: Iterable[str | None]) -> dict[str, str]:
    """The name staff read for each agency code kept in the agencies table (retired ones
    included: old cases still name them); codes not kept there are left out. One query."""
    wanted = {code for code in codes if code}
    if not wanted:
        return {}
    with store.transaction() as session:
        rows = session.execute(
            select(AgencyRow.code, AgencyRow.name).where(AgencyRow.code.in_(wanted))
        )
        return {code: name for code, name in rows}
