"""The SQL store, the source of truth: cases, photos, faces (with embeddings), candidates, audit.

SQLAlchemy 2 over SQLite by default; any SQLAlchemy URL works (PostgreSQL included). Tables::

    cases ─┬─< photos ─< faces          a case has photos; a photo has detected faces
           └─< candidates >─ cases      a candidate pairs a found case with a missing case
               candidates ─< candidate_decisions   who moved it to which status, when, why
    users                                staff and admin accounts (argon2 password hashes)
    agencies                             the agencies an admin keeps (the intake form's list)
    api_keys                             machine clients (police systems): role, agency, hash
    webhooks ─< outbox_events            agencies' endpoints; events waiting for delivery
    audit_events                         append-only: who did what to which ids, never names
    removed_faces                        ids of deleted faces, so every server's index drops them
    locks                                rows a writer locks to take turns (``Store.lock_faces``)
    batch_jobs                           where an interrupted re-embedding stands

``audit_events`` refuses UPDATE and DELETE at the database level (triggers), so no code path,
ours or a careless one, can rewrite history.

Embeddings are stored as 128 little-endian float32 values (512 bytes) in ``faces.embedding``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import (
    DDL,
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    update,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from reunite.database import engine_for
from reunite.errors import Conflict, InvalidField
from reunite.migrations import migrate

CaseKind = Literal["missing", "found"]
Sex = Literal["female", "male", "unknown"]
CaseStatus = Literal["open", "matched", "closed"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite drops the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a UTC-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


NEVER_REUSED_IDS: dict[str, Any] = {"sqlite_autoincrement": True}
"""SQLite would otherwise hand a deleted row's id to the next row; the index and the audit log
identify faces and cases by id, so an id must never mean two things."""


class CaseRow(Base):
    """One person: reported ``missing``, or ``found`` (unidentified, at a rescue center)."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("agency", "external_ref", name="uq_cases_agency_external_ref"),
        CheckConstraint("kind IN ('missing', 'found')", name="ck_cases_kind"),
        CheckConstraint("sex IN ('female', 'male', 'unknown')", name="ck_cases_sex"),
        CheckConstraint("status IN ('open', 'matched', 'closed')", name="ck_cases_status"),
        Index("ix_cases_kind_status", "kind", "status"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(7))
    agency: Mapped[str | None] = mapped_column(String(64))
    external_ref: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    sex: Mapped[str] = mapped_column(String(7), default="unknown")
    birth_date: Mapped[date | None] = mapped_column(Date)
    birth_year_min: Mapped[int | None] = mapped_column(Integer)
    birth_year_max: Mapped[int | None] = mapped_column(Integer)
    date_missing: Mapped[date | None] = mapped_column(Date)
    date_found: Mapped[date | None] = mapped_column(Date)
    place: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(7), default="open")
    matched_by_rules: Mapped[str | None] = mapped_column(String(64))
    """The matching rules (``matching.rules_version``) the case's faces were last matched by;
    None before any match. ``reunite rematch`` skips cases already matched by today's rules."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


class PhotoRow(Base):
    """A photo of a case. The file lives once on disk, named by the SHA-256 of its bytes."""

    __tablename__ = "photos"
    __table_args__ = (
        UniqueConstraint("case_id", "sha256", name="uq_photos_case_sha256"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    taken_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


PHOTO_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def photo_file_name(sha256: str, fmt: str) -> str:
    """Where a photo's bytes (SHA-256, hex; format as stored) are kept, relative to the photos
    folder: ``ab/ab….jpg``. One file per content, shared by the rows with those bytes."""
    return f"{sha256[:2]}/{sha256}.{PHOTO_EXTENSIONS[fmt]}"


class FaceRow(Base):
    """A face in a photo; box in pixels of the upright original (top, right, bottom, left)."""

    __tablename__ = "faces"
    __table_args__ = (Index("ix_faces_kind_model", "kind", "model"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(7))
    top: Mapped[int] = mapped_column(Integer)
    right: Mapped[int] = mapped_column(Integer)
    bottom: Mapped[int] = mapped_column(Integer)
    left: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    model: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(128))
    face_width_px: Mapped[int] = mapped_column(Integer)
    sharpness: Mapped[float] = mapped_column(Float)
    face_choice: Mapped[str | None] = mapped_column(String(8))
    """How the face was chosen among several in its photo: ``largest`` or ``central`` (by the
    import's ``--face``); None when it was the photo's only face or a person chose it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    @property
    def vector(self) -> np.ndarray:
        return embedding_vector(self.embedding)


class RemovedFaceRow(Base):
    """A face deleted from the store: servers sharing the store read these (in ``id`` order)
    to drop the face from their own indexes (``Reunite.sync_index``). Ids only, no biometrics."""

    __tablename__ = "removed_faces"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(7))
    removed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class LockRow(Base):
    """A named row that writers lock (``UPDATE``) to take turns across processes and machines."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)


FACES_LOCK = "faces"


class BatchJobRow(Base):
    """Where an interrupted batch job (``reunite reindex``) stands, written in the same
    transaction as its work, so that a rerun resumes exactly there."""

    __tablename__ = "batch_jobs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[str] = mapped_column(String(256))
    """What the job was asked to do; a rerun with other settings starts over."""
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    """The last item (face id) done; items are done in increasing order."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class CandidateRow(Base):
    """A found case paired with a missing case by their closest faces, for a person to review."""

    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("found_case_id", "missing_case_id", name="uq_candidates_pair"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected')", name="ck_candidates_status"
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    found_case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    missing_case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    found_face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    missing_face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    distance: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    """The normalised score of ``distance`` in its search (``reunite.matching``); None where
    the search had too small a cohort, or for candidates proposed before scores existed."""
    rank: Mapped[int | None] = mapped_column(Integer)
    """1 for the nearest case in the search that proposed (or last updated) this candidate."""
    status: Mapped[str] = mapped_column(String(9), default="pending")
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When ``reunite rematch`` found that today's rules would no longer propose this pending
    candidate (kept and flagged, never deleted); None while the rules still propose it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


class CandidateDecisionRow(Base):
    """One change of a candidate's status: from, to, who, when, an optional note, which faces."""

    __tablename__ = "candidate_decisions"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str] = mapped_column(String(9))
    to_status: Mapped[str] = mapped_column(String(9))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    found_face_id: Mapped[int] = mapped_column(Integer, index=True)
    missing_face_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    undoes_id: Mapped[int | None] = mapped_column(Integer)
    """The decision this one undid (a staff member's undo within the undo window), else None."""


class UserRow(Base):
    """A staff or admin account. Only an argon2 hash of the password is kept."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('staff', 'admin')", name="ck_users_role"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(5))
    display_name: Mapped[str | None] = mapped_column(String(100))
    """How pages name the person ("Anna Li"); None shows the username."""
    disabled: Mapped[bool] = mapped_column(default=False)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    """Sessions carry the epoch they began in; signing out or disabling bumps it, ending them."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class AgencyRow(Base):
    """An agency an admin keeps for the intake form's list: its code (as cases and keys carry
    it) and the name staff read. A retired agency stays for the cases that name it."""

    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    retired: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class WebhookRow(Base):
    """An agency's endpoint for candidate events, with the secret that signs them."""

    __tablename__ = "webhooks"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class OutboxEventRow(Base):
    """A webhook event waiting for delivery (the transactional outbox).

    Written in the same transaction as the change that causes it; marked ``delivered`` only when
    the receiver answers 2xx; ``failed`` after the last attempt (an admin can retry it).
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_outbox_events_status"
        ),
        Index("ix_outbox_events_due", "status", "next_attempt_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(9), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """A machine client's key. Only its SHA-256 is stored; ``prefix`` identifies it in lists."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('staff', 'admin', 'police')", name="ck_api_keys_role"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(6))
    agency: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEventRow(Base):
    """An append-only record: who did what, when, to which ids. Never names, images or vectors."""

    __tablename__ = "audit_events"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


_APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
_APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only' "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
]
for _dialect, _statements in (
    ("sqlite", _APPEND_ONLY_SQLITE),
    ("postgresql", _APPEND_ONLY_POSTGRESQL),
):
    for _statement in _statements:
        _ddl = DDL(_statement).execute_if(dialect=_dialect)  # type: ignore[no-untyped-call]
        event.listen(AuditEventRow.__table__, "after_create", _ddl)


def embedding_bytes(vector: np.ndarray) -> bytes:
    """A 128-d embedding as 512 bytes of little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def embedding_vector(data: bytes) -> np.ndarray:
    """The float32 embedding stored by ``embedding_bytes``."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


EARLIEST_DATE = date(1900, 1, 1)
"""No date of a case or photo may be earlier than this."""


class CaseFacts(BaseModel):
    """What is known of the person: the fields every case record carries, whoever sends it."""

    name: str | None = Field(None, max_length=200)
    sex: Sex = "unknown"
    birth_date: date | None = None
    birth_year_min: int | None = Field(None, ge=1900, le=2100)
    birth_year_max: int | None = Field(None, ge=1900, le=2100)
    date_missing: date | None = None
    date_found: date | None = None
    place: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=5000)
    contact: str | None = Field(None, max_length=500)


class CaseFields(CaseFacts):
    """The facts of a case, as a person or an agency supplies them (validated)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: CaseKind
    agency: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    external_ref: str | None = Field(None, min_length=1, max_length=128)
    status: CaseStatus = "open"

    @field_validator("agency", "external_ref", "name", "place", "description", "contact")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value or None  # blank means unknown

    @field_validator("birth_date", "date_missing", "date_found")
    @classmethod
    def _plausible_date(cls, value: date | None) -> date | None:
        if value is not None and value < EARLIEST_DATE:
            raise ValueError(f"must be on or after {EARLIEST_DATE.isoformat()}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CaseFields:
        if self.kind == "missing" and self.date_found:
            raise ValueError("a missing case has date_missing, not date_found")
        if self.kind == "found" and self.date_missing:
            raise ValueError("a found case has date_found, not date_missing")
        low, high = self.birth_year_min, self.birth_year_max
        if low is not None and high is not None and low > high:
            raise ValueError("birth_year_min is after birth_year_max")
        if self.birth_date and (
            (low is not None and self.birth_date.year < low)
            or (high is not None and self.birth_date.year > high)
        ):
            raise ValueError("birth_date is outside birth_year_min..birth_year_max")
        event = self.date_missing or self.date_found
        if self.birth_date and event and self.birth_date > event:
            raise ValueError("birth_date is after the date missing or found")
        today = date.today()
        for label in ("birth_date", "date_missing", "date_found"):
            value = getattr(self, label)
            if value and value > today:
                raise ValueError(f"{label} is in the future")
        return self


def validated_case_fields(data: dict[str, Any]) -> CaseFields:
    """``CaseFields`` from a dict, raising ``InvalidField`` with every problem listed.

    Also: an ``external_ref`` needs an ``agency`` (it is unique per agency). That rule is
    checked here, not in the model, so the API can parse a police key's body first and fill in
    the key's agency before it applies."""
    try:
        fields = CaseFields.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or None, "message": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(
            f"{p['field']}: {p['message']}" if p["field"] else str(p["message"]) for p in problems
        )
        raise InvalidField(f"Invalid case: {summary}", errors=problems) from exc
    if fields.external_ref and not fields.agency:
        message = "external_ref needs an agency: it is unique per agency"
        raise InvalidField(
            f"Invalid case: {message}", errors=[{"field": "agency", "message": message}]
        )
    return fields


class Store:
    """An engine and a session factory for one database URL; migrates the schema to this
    version's at start (``migrate``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engine_for(url)
        self.revision = migrate(self.engine)
        """The schema's Alembic revision."""
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @staticmethod
    def lock_faces(session: Session) -> None:
        """Hold the faces lock until ``session``'s transaction ends.

        Every transaction that adds or deletes faces takes it first, so such transactions run
        one at a time across all processes sharing the store. Face ids and ``removed_faces`` ids
        are therefore committed in increasing order, which lets a server catch up with
        ``WHERE id > last seen``, and a new face is matched against every face committed
        before it. (SQLite allows one writer anyway; on PostgreSQL this is a row lock.)
        """
        session.execute(update(LockRow).where(LockRow.name == FACES_LOCK).values(name=FACES_LOCK))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        A constraint violation (two requests racing to create the same thing, or a write the
        database refuses, such as changing the audit log) becomes ``Conflict``. A value the
        database cannot hold (on PostgreSQL: text with a NUL character, an id over 2**31 - 1)
        becomes ``InvalidField``.
        """
        try:
            with self._sessions() as session, session.begin():
                yield session
        except IntegrityError as exc:
            raise Conflict(
                "The change clashes with what is stored (perhaps another request made the same "
                "change at the same moment). Reload and try again."
            ) from exc
        except DataError as exc:
            raise InvalidField(
                "A value in the request cannot be stored or looked up: a number out of range, "
                "or text with a NUL character."
            ) from exc

    def close(self) -> None:
        self.engine.dispose()
