"""Shared fixtures: real photos from ../shared/faces, real dlib (each photo embedded once per
session), real FAISS, real SQLite in a temporary directory or a real PostgreSQL database of the
test's own, the real ASGI app.

Tests that take ``settings`` (or ``service``, ``app_client``, ``client``) run twice: on SQLite
and on PostgreSQL. The PostgreSQL server is the one ``./run-tests`` starts
(``REUNITE_TEST_POSTGRES_URL``); without it those runs skip, saying so.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reunite import accounts
from reunite.app import create_app
from reunite.config import Settings
from reunite.faces import MODEL_NAME, Face, Pipeline, faces_in_image
from reunite.service import Reunite
from reunite.store import CaseRow, FaceRow, PhotoRow, embedding_bytes
from tests.objectstore import CREDENTIALS, ObjectStore, started_seaweedfs
from tests.objectstore import stop as stop_seaweedfs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("REUNITE_FACES_DIR", PROJECT_ROOT.parent / "shared" / "faces"))


class MemoFinder:
    """The real ``faces_in_image``, remembering its answer per image so dlib runs once a photo."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, tuple[int, ...], Pipeline], list[Face]] = {}
        self.calls = 0

    def __call__(self, pixels: np.ndarray, pipeline: Pipeline) -> list[Face]:
        key = (hashlib.sha1(pixels.tobytes()).hexdigest(), pixels.shape, pipeline)
        if key not in self._answers:
            self.calls += 1
            self._answers[key] = faces_in_image(pixels, pipeline)
        return self._answers[key]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not (FACES_DIR / "samples").is_dir():
        pytest.skip(f"real face photos not found at {FACES_DIR} (set REUNITE_FACES_DIR)")
    return FACES_DIR


@pytest.fixture(scope="session")
def sample(faces_dir: Path):  # type: ignore[no-untyped-def]
    """``sample("obama.jpg")`` -> the bytes of a photo in ../shared/faces/samples."""

    def read(name: str) -> bytes:
        return (faces_dir / "samples" / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def finder() -> MemoFinder:
    return MemoFinder()


ACTOR = "test"


def new_case(service: Reunite, kind: str, **facts: object) -> CaseRow:
    """A new case of ``kind`` with these facts, created by ``ACTOR``."""
    return service.create_case({"kind": kind, **facts}, actor=ACTOR)


def add_synthetic_faces(service: Reunite, case: CaseRow, vectors: Iterable[np.ndarray]) -> None:
    """Faces with these embeddings, written straight to the store under one placeholder photo
    of ``case`` (no image, no detection): for index and search tests at sizes photos cannot
    reach. The index learns of them as of any other process's writes."""
    with service.store.transaction() as session:
        photo = PhotoRow(
            case_id=case.id, sha256="0" * 64, format="JPEG", width=1, height=1, byte_size=1
        )
        session.add(photo)
        session.flush()
        session.add_all(
            FaceRow(
                photo_id=photo.id,
                case_id=case.id,
                kind=case.kind,
                top=0,
                right=1,
                bottom=1,
                left=0,
                embedding=embedding_bytes(vector),
                model=MODEL_NAME,
                pipeline="synthetic",
                face_width_px=1,
                sharpness=0.0,
            )
            for vector in vectors
        )


def settings_in(directory: Path, **overrides: object) -> Settings:
    return Settings(data_dir=directory / "data", index_dir=directory / "index", **overrides)


POSTGRES_URL = os.environ.get("REUNITE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the default SQLite file in the data folder), or a fresh PostgreSQL database."""
    with store_database(request.param) as url:
        yield url


@contextmanager
def store_database(kind: str) -> Iterator[str | None]:
    """For ``kind`` ``sqlite``, None (the default file); for ``postgresql``, a fresh database."""
    if kind == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server: ./run-tests starts one (as root), or set "
                    "REUNITE_TEST_POSTGRES_URL")  # fmt: skip
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"reunite_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real SeaweedFS S3 server for the session (``tests.objectstore``); skips without
    ``weed``. Each test uses its own prefix in its bucket."""
    process, store = started_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield store
    finally:
        stop_seaweedfs(process)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test object store's keys, where boto3 looks for them (the process environment)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return settings_in(tmp_path, database_url=database_url)


@pytest.fixture
def service(settings: Settings, finder: MemoFinder) -> Iterator[Reunite]:
    with Reunite.open(settings, finder=finder) as opened:
        yield opened


def ready_client(app, timeout_s: float = 60.0) -> TestClient:
    """Enter the app's lifespan and wait until its index is loaded (``/readyz``)."""
    import time

    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    deadline = time.monotonic() + timeout_s
    while not app.state.service.ready:
        if time.monotonic() > deadline:
            raise TimeoutError("the index did not load")
        time.sleep(0.01)
    return client


@pytest.fixture
def app_client(settings: Settings, finder: MemoFinder) -> Iterator[TestClient]:
    """The real app through its ASGI stack, ready, with no credentials."""
    client = ready_client(create_app(settings, finder=finder))
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def key_headers(client: TestClient, role: str = "admin", agency: str | None = None) -> dict:
    _, key = accounts.create_api_key(
        client.app.state.service.store, role, agency=agency, actor="test"
    )
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """``app_client`` sending an admin API key on every request."""
    app_client.headers.update(key_headers(app_client))
    return app_client
