"""Settings, read once from ``REUNITE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from reunite.webhook_targets import Network

MODEL_DIR = Path(__file__).resolve().parent / "model"
"""The model card (README.md) and the shipped calibration, inside the installed package."""
SHIPPED_CALIBRATION_PATH = MODEL_DIR / "calibration.json"
"""The calibration fitted on LFW (scripts/calibrate_lfw.py), used unless another is set."""

DEFAULT_MIN_FACE_PX = 100
"""Faces narrower than this, pixels, give poor embeddings anyway (see reunite/model/README.md)."""


MIN_COHORT_SIZE = 30
"""Fewest cases of the other kind a search needs for a cohort (``reunite.matching``); below it
scores are None."""


class Settings(BaseSettings):
    """All run-time settings. Every field can be set as ``REUNITE_<FIELD_NAME>``.

    A relative ``data_dir``, ``index_dir`` or ``calibration_path`` is made absolute once, against
    the working directory when the settings are read; the shipped calibration is found inside
    the package, wherever the service starts.
    """

    model_config = SettingsConfigDict(
        env_prefix="REUNITE_", env_file=None, extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        Path("data"),
        description="SQLite file (default store) and photos/. A relative path is made absolute "
        "against the working directory at start.",
    )
    index_dir: Path = Field(
        Path("index"),
        description="Persisted FAISS index and its manifest. A relative path is made absolute "
        "against the working directory at start.",
    )
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL; default sqlite:///<data_dir>/reunite.db."
    )
    photo_store: str = Field(
        "",
        description="Where photo files are kept: empty for the folder <data_dir>/photos, or "
        "s3://bucket/prefix for an S3-compatible bucket (credentials from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, never from settings). Face crops stay in <data_dir>/crops.",
    )
    s3_endpoint_url: str = Field(
        "",
        description="URL of the S3-compatible server of an s3:// photo store (MinIO, SeaweedFS, "
        "Ceph...); empty for AWS itself.",
    )
    s3_region: str = Field(
        "", description="Region of an s3:// photo store; empty: boto3's default."
    )
    s3_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Connect and read timeout of each photo store request."
    )

    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest photo file, bytes.")
    max_pixels: int = Field(
        40_000_000, gt=0, description="Largest photo, width*height pixels (decompression guard)."
    )
    max_photos_in_flight: int = Field(
        0,
        ge=0,
        le=1024,
        description="Photos one worker process decodes and searches at once (API and pages); "
        "past it a request is refused at once with 503 and Retry-After. 0: 8 per CPU core, "
        "at least 16 (detection runs one photo at a time per process; the others wait their "
        "turn, 0.15-1 s each for a phone photo). One slot is always kept for small photos.",
    )
    max_pixels_in_flight: int = Field(
        60_000_000,
        ge=2,
        description="Decoded pixels (width*height) one worker process holds at once, summed over "
        "the photos in flight; past it a request gets 503 and Retry-After. Memory is about "
        "40 MB per megapixel in flight (a 40 MP photo without a face: 1.5 GB at its peak); "
        "one photo of REUNITE_MAX_PIXELS is always let in when no other large photo is.",
    )
    small_photo_pixels: int = Field(
        12_000_000,
        ge=1,
        description="Photos up to this many pixels count as small: this share of "
        "REUNITE_MAX_PIXELS_IN_FLIGHT (and one slot) is kept for them, so a flood of large "
        "photos cannot starve a small search. Must be under REUNITE_MAX_PIXELS_IN_FLIGHT.",
    )

    tolerance: float = Field(
        0.55,
        gt=0,
        le=2,
        description="Largest L2 distance (dlib space) kept as a candidate. 0.55, not dlib's "
        "0.6: on LFW 1:N it keeps 94-99% of true matches in the list while a stranger's search "
        "shows 2.6-3.4 candidates instead of 9 (reunite/model/README.md).",
    )
    top_k: int = Field(10, ge=1, le=200, description="Candidate cases returned per face.")
    case_scoring: Literal["mean", "closest"] = Field(
        "mean",
        description="A case scores by the mean of its faces' embeddings, or by its closest face.",
    )

    cohort_size: int = Field(
        100,
        ge=0,
        le=1000,
        description="How many of a probe's nearest cases of the other kind form its cohort, "
        "against which each candidate's distance is normalised (a per-search Z-norm; see "
        "docs/matching.md): 0 (scores off), or 30 to 1000. A gallery of fewer than 30 cases of "
        "the other kind has no cohort either.",
    )
    min_score: float = Field(
        2.3,
        ge=-10,
        le=20,
        description="Least normalised score a candidate needs to be proposed (besides being "
        "within tolerance): how many standard deviations its distance is below the mean of the "
        "probe's cohort. Cross-age pairs (photo_age_gap_years apart) need only the tolerance.",
    )
    calibration_path: Path = Field(
        # A factory: the absolute path differs per machine, so references show no default.
        default_factory=lambda: SHIPPED_CALIBRATION_PATH,
        description="Maps a candidate's distance and score to the chance it is the person (see "
        "docs/matching.md and `reunite calibrate`). Default: the "
        "calibration shipped inside the package, beside its model card "
        "(reunite/model/calibration.json), wherever the service starts. A relative path is made "
        "absolute against the working directory at start.",
    )
    cross_age_tolerance: float = Field(
        0.7,
        gt=0,
        le=2,
        description="Tolerance for pairs whose photos are photo_age_gap_years apart in age.",
    )

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where dlib runs: CUDA when available (auto), or forced."
    )
    detector: Literal["hog", "cnn"] | None = Field(
        None,
        description="dlib face detector: 'hog' or 'cnn'. Unset: 'cnn' on CUDA, else 'hog' (the "
        "CNN detector takes seconds a photo on a CPU).",
    )
    min_face_px: int = Field(
        DEFAULT_MIN_FACE_PX,
        ge=0,
        le=2000,
        description="Narrowest face to find, pixels of the photo: detection runs on a copy "
        "reduced as far as that allows (embeddings always use the full photo). 0: detect on "
        "the full photo, down to the detector's limit (40 px), several times slower.",
    )
    upsample_times: int = Field(
        1, ge=0, le=3, description="Times dlib upsamples the image to find smaller faces."
    )
    num_jitters: int = Field(
        1, ge=1, le=100, description="Re-samplings averaged per embedding (cost grows linearly)."
    )

    approximate_min_faces: int = Field(
        200_000,
        ge=1000,
        description="From this many faces of a kind, search it with an approximate (HNSW) index.",
    )
    approximate_target_recall: float = Field(
        0.99, gt=0.5, le=1.0, description="recall@10 against exact search that HNSW must reach."
    )
    index_save_every: int = Field(
        200, ge=1, description="Save the index after this many face additions or removals."
    )
    index_sync_interval_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="Seconds between a server's checks for faces added or removed by other "
        "processes and for a newer index build on disk.",
    )

    age_margin_years: int = Field(
        5, ge=0, le=50, description="Slack, in years, before an age difference is flagged."
    )
    found_before_missing_days: int = Field(
        30, ge=0, description="Days a person may be found before the report and not be flagged."
    )

    photo_age_gap_years: int = Field(
        10, ge=1, le=100, description="Age gap between the two photos, years, that is flagged."
    )
    undo_window_s: int = Field(
        120,
        ge=0,
        le=3600,
        description="Seconds a staff member may undo their own decision on a candidate. 0: no "
        "undo.",
    )
    timezone: str = Field(
        "UTC",
        validation_alias=AliasChoices("REUNITE_TIMEZONE", "REUNITE_DISPLAY_TIMEZONE"),
        description="Time zone the staff pages show times in, with its name (e.g. "
        "Asia/Shanghai). `REUNITE_DISPLAY_TIMEZONE`, its old name, is still read but deprecated.",
    )

    environment: Literal["production", "development"] = Field(
        "production",
        description="'production' refuses unsafe settings at start (a weak secret key); "
        "'development' only warns.",
    )
    secret_key: str | None = Field(
        None,
        description="Signs session cookies: 32 characters or more, random. Default: a random "
        "key made once and kept in <data_dir>/secret_key (mode 0600).",
    )
    min_password_length: int = Field(
        10,
        ge=8,
        le=256,
        description="Fewest characters a new staff password may have (`reunite users create`, "
        "`reunite users reset-password`); common passwords are refused whatever their length.",
    )
    session_max_age_s: int = Field(8 * 3600, ge=60, description="Staff session lifetime, seconds.")
    secure_cookies: bool = Field(
        False, description="Send session cookies over HTTPS only (set behind TLS)."
    )

    rate_limit_per_minute: int = Field(
        600, ge=1, description="Requests a minute allowed to one API key or user, sustained."
    )
    rate_limit_burst: int = Field(60, ge=1, description="Requests allowed at once above that.")
    sign_in_attempts_per_minute: int = Field(
        10, ge=1, description="Sign-in attempts a minute per client address."
    )
    sign_in_max_pause_s: float = Field(
        300.0,
        ge=1,
        le=86400,
        description="Longest pause of a username after repeated wrong passwords, seconds (the "
        "pauses double from 2 s after 5 wrong passwords; a device that has signed in as the "
        "user before is never paused).",
    )
    max_json_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest JSON request body, bytes (photos excepted)."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds a client has to send a request's headers once it starts (or once "
        "it connects); then its connection is answered 408 and closed.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds the server waits for the next part of a request body; a client "
        "that sends nothing for that long is answered 408, and what it sent is freed.",
    )
    min_body_bytes_per_s: float = Field(
        1024.0,
        ge=0,
        description="Slowest average rate a request body may come at, bytes a second, once "
        "REUNITE_BODY_RATE_GRACE_S have passed; a slower body is answered 408 and what it sent "
        "is freed (else a byte every few seconds holds an upload place for ever). 1 kB/s "
        "passes a 20 MB photo over a poor 2G link (about 30 kB/s) with room to spare. 0: off.",
    )
    body_rate_grace_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds a request body may take before REUNITE_MIN_BODY_BYTES_PER_S "
        "applies (a slow start: a phone waking its radio, a TCP connection ramping up).",
    )
    max_uploads_per_client: int = Field(
        4,
        ge=1,
        le=1000,
        description="Bodies over 1 MiB (or of unknown length) one API key or user may be "
        "sending at once, across all worker processes of the server on this machine (counted "
        "by locked files under <data_dir>/uploads-in-flight, which must be on a local file "
        "system); one more is answered 429 before it is read.",
    )
    max_connections: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Open connections one worker process serves at once; a request on a "
        "connection past it is answered 503. Keeps a flood of connections from using up the "
        "process's file descriptors (often 1024), which photos, the database and spooled "
        "uploads need too.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="'json' writes one JSON object per log line, with the request id."
    )

    webhook_poll_interval_s: float = Field(
        2.0, gt=0, description="How often the webhook worker looks for events to deliver."
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Per delivery attempt, seconds.")
    webhook_backoff_base_s: float = Field(
        5.0, gt=0, description="Wait after the first failed attempt; doubles each time."
    )
    webhook_backoff_max_s: float = Field(600.0, gt=0, description="Longest wait between tries.")
    webhook_allowed_networks: str = Field(
        "",
        description="Networks webhooks may be sent to beyond public addresses, comma-separated "
        "(e.g. '127.0.0.1/32' for a receiver on this machine, '10.2.0.0/16' for one inside the "
        "deployment). Loopback, private, link-local (cloud metadata) and other non-public "
        "addresses are refused otherwise, at registration and at every delivery.",
    )
    webhook_max_attempts: int = Field(
        50, ge=1, description="Attempts before an event is marked failed (admins can retry)."
    )

    retention_days: int = Field(
        365,
        ge=0,
        le=36500,
        description="Days after a case is closed before `reunite purge` erases its photos, face "
        "crops and embeddings (the record and decisions stay). 0: never.",
    )

    host: str = Field(
        "127.0.0.1",
        description="Address `reunite serve` listens on (`--host`). Keep 127.0.0.1 unless a "
        "TLS-terminating proxy is in front (the service has no TLS of its own).",
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port `reunite serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes, each searching on its own core. More than one: "
        "forked from one supervisor that loaded dlib's models, whose memory they share; they "
        "map one saved index (held once), each keeping in memory of its own only the changes "
        "since the last save and the saved faces' ids (about 55 MB per million faces).",
    )

    @field_validator("data_dir", "index_dir", "calibration_path")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        """The path made absolute once, against the working directory now (``..`` folded)."""
        return Path(os.path.abspath(path))

    @field_validator("cohort_size")
    @classmethod
    def _cohort_size(cls, size: int) -> int:
        """0, or at least 30: a smaller cohort would silently mean no scores."""
        if 0 < size < MIN_COHORT_SIZE:
            raise ValueError(f"cohort_size must be 0 (scores off) or at least {MIN_COHORT_SIZE}")
        return size

    @field_validator("photo_store")
    @classmethod
    def _photo_store(cls, value: str) -> str:
        from reunite.photo_files import parsed_s3_url

        if value:
            parsed_s3_url(value)  # a ValueError says what is wrong
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        from reunite.webhook_targets import allowed_networks

        allowed_networks(value)  # a ValueError names the entry
        return value

    @property
    def webhook_networks(self) -> tuple[Network, ...]:
        """``webhook_allowed_networks`` as networks."""
        from reunite.webhook_targets import allowed_networks

        return allowed_networks(self.webhook_allowed_networks)

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in use: ``database_url`` or SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'reunite.db').as_posix()}"
