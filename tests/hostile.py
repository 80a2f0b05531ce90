"""Test helper: a corpus of hostile and odd upload files, made at test time from real photos
or from scratch (nothing but this code is committed), and the checks on the answers to them.

Each maker returns the bytes of one file. ``CORPUS`` lists them all with what the API must
answer when the file is sent as a case photo (``enroll``) and as a search photo (``search``):
``ACCEPTED`` (the photo is used; its face must match the source photo) or the status and
problem ``code`` of a clean refusal. ``tests/api/test_hostile_files.py`` sends every one.

Made from ``tests.images`` where that already has the piece (the PNG bomb header, a cut file,
the EXIF-rotated photo, 16-bit gray).
"""

from __future__ import annotations

import functools
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import sqlalchemy
from PIL import Image

from reunite.config import Settings
from tests import images

SOURCE = "obama.jpg"
"""The real photo most specimens are made from (../shared/faces/samples)."""

SOURCE_FACE = (142, 617, 409, 349)
"""dlib's box of the one face in ``SOURCE``: top, right, bottom, left (268 px wide)."""


def _rgb(photo: bytes) -> Image.Image:
    return Image.open(io.BytesIO(photo)).convert("RGB")


# ------------------------------------------------------------------------ not images at all


def zero_bytes() -> bytes:
    return b""


def random_bytes(size: int = 64 * 1024, seed: int = 8) -> bytes:
    """Noise that starts with no known file signature."""
    data = random.Random(seed).randbytes(size)
    return b"\x00" + data[1:]  # no image format begins with a NUL byte


def plain_text() -> bytes:
    return "A letter, not a photo. 这不是照片。\n".encode() * 50


def html() -> bytes:
    return (
        b"<!DOCTYPE html><html><head><title>photo.jpg</title></head>"
        b"<body><img src=x onerror=alert(1)><script>alert(2)</script></body></html>\n"
    )


def svg() -> bytes:
    """A vector drawing of a face (Pillow cannot read SVG; nor do we)."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
        b'<circle cx="200" cy="200" r="150" fill="#e0b090"/>'
        b'<circle cx="150" cy="160" r="15"/><circle cx="250" cy="160" r="15"/>'
        b'<path d="M140 260 Q200 310 260 260" stroke="black" fill="none"/></svg>\n'
    )


# ------------------------------------------------------------------------- broken images


def truncated_jpeg(photo: bytes) -> bytes:
    """A valid JPEG cut in the middle of its scan data."""
    return images.truncated(photo)


def truncated_png(photo: bytes) -> bytes:
    """A valid PNG of the photo cut in the middle of its image data."""
    return images.truncated(images.encoded(_rgb(photo), "PNG"))


def png_bomb() -> bytes:
    """A PNG of about 100 bytes whose IHDR declares 100000 x 100000 RGB pixels (30 GB)."""
    return images.png_header_only(100_000, 100_000)


def one_pixel() -> bytes:
    return images.one_pixel_png()


# ------------------------------------------------------------ real photos, in odd encodings


def cmyk_jpeg(photo: bytes) -> bytes:
    return images.encoded(_rgb(photo).convert("CMYK"), "JPEG", quality=92)


def png16_rgb(photo: bytes) -> bytes:
    """48 bits a pixel (16 per channel), written with OpenCV (Pillow cannot write it)."""
    bgr16 = np.asarray(_rgb(photo))[..., ::-1].astype(np.uint16) * 257
    ok, data = cv2.imencode(".png", bgr16)
    assert ok
    return data.tobytes()


def png16_gray(photo: bytes) -> bytes:
    return images.sixteen_bit_gray_png(photo)[0]


def palette_png(photo: bytes) -> bytes:
    """256 colours, no transparency."""
    return images.encoded(_rgb(photo).quantize(256), "PNG")


def grayscale_jpeg(photo: bytes) -> bytes:
    return images.encoded(_rgb(photo).convert("L"), "JPEG", quality=92)


def rgba_png(photo: bytes) -> bytes:
    """The photo with a fully transparent border and a half-transparent band below the chin
    (laid on white when decoded; the face itself is untouched)."""
    image = _rgb(photo).convert("RGBA")
    alpha = np.full((image.height, image.width), 255, dtype=np.uint8)
    alpha[:40, :] = alpha[-40:, :] = alpha[:, :40] = alpha[:, -40:] = 0
    alpha[SOURCE_FACE[2] + 20 : SOURCE_FACE[2] + 60, :] = 128
    image.putalpha(Image.fromarray(alpha))
    return images.encoded(image, "PNG")


def exif_rotated(photo: bytes) -> bytes:
    """The pixels turned 90 degrees, with EXIF Orientation 6 saying how to turn them upright."""
    return images.rotated_with_exif(photo)


def huge_photo(photo: bytes, max_pixels: int) -> bytes:
    """A valid JPEG of just under ``max_pixels`` pixels: the photo enlarged (at most 2x) in the
    middle of a grey canvas of that size.

    Not the photo enlarged to fill it all: at 6x (40 MP), dlib finds a second, false 130 px
    face in the texture of the shirt, and the photo would be refused as ``multiple_faces``.
    """
    image = _rgb(photo)
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    width, height = int(image.width * scale), int(image.height * scale)
    while width * height > max_pixels:
        width -= 1
    enlarged = image.resize(
        (int(image.width * min(scale, 2.0)) - 1, int(image.height * min(scale, 2.0)) - 1),
        Image.Resampling.LANCZOS,
    )
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(enlarged, ((width - enlarged.width) // 2, (height - enlarged.height) // 2))
    return images.encoded(canvas, "JPEG", quality=85)


def over_the_pixel_limit(photo: bytes, max_pixels: int) -> bytes:
    """The photo enlarged to one row over ``max_pixels`` pixels."""
    image = _rgb(photo)
    width = int(image.width * (max_pixels / (image.width * image.height)) ** 0.5) + 1
    height = max_pixels // width + 1
    big = cv2.resize(np.asarray(image), (width, height), interpolation=cv2.INTER_NEAREST)
    return images.encoded(Image.fromarray(big), "JPEG", quality=60)


# ----------------------------------------------------------------------- several frames


def _frames(photo: bytes) -> list[Image.Image]:
    image = _rgb(photo).resize((455, 568))
    return [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image.convert("L")]


def animated_gif(photo: bytes) -> bytes:
    first, *rest = _frames(photo)
    return images.encoded(first, "GIF", save_all=True, append_images=rest, duration=200, loop=0)


def animated_webp(photo: bytes) -> bytes:
    first, *rest = _frames(photo)
    return images.encoded(first, "WEBP", save_all=True, append_images=rest, duration=200)


# ------------------------------------------------------------------------- many faces


CROWD_TILE_PX = 260
"""Each face of ``crowd`` is about 137 px wide: found on the reduced detection copy (at the
default ``REUNITE_MIN_FACE_PX=100``), so no slower retry at full size is needed."""


def crowd(photo: bytes, faces: int = 50, columns: int = 10) -> bytes:
    """The source face cut out (with a margin) and tiled ``faces`` times in a grid."""
    top, right, bottom, left = SOURCE_FACE
    image = np.asarray(_rgb(photo))
    crop = image[max(0, top - 140) : bottom + 110, max(0, left - 120) : right + 120]
    tile = cv2.resize(crop, (CROWD_TILE_PX, CROWD_TILE_PX), interpolation=cv2.INTER_AREA)
    rows = -(-faces // columns)
    sheet = np.full((rows * CROWD_TILE_PX, columns * CROWD_TILE_PX, 3), 255, dtype=np.uint8)
    for i in range(faces):
        row, column = divmod(i, columns)
        y, x = row * CROWD_TILE_PX, column * CROWD_TILE_PX
        sheet[y : y + CROWD_TILE_PX, x : x + CROWD_TILE_PX] = tile
    return images.encoded(Image.fromarray(sheet), "JPEG", quality=90)


# ---------------------------------------------------------------------------- the corpus


ACCEPTED = (200, None)
"""The photo is used: enrolled (201) or searched (200)."""


@dataclass(frozen=True)
class Specimen:
    """One hostile file: how to make it from the source photo's bytes and the pixel limit,
    the answer expected from the enroll and the search endpoints, and (when accepted) how
    close its face lands to the source photo's (L2 distance; 0.55 is a match)."""

    name: str
    make: Callable[[bytes, int], bytes]
    enroll: tuple[int, str | None]
    search: tuple[int, str | None]
    distance: float = 0.12

    @property
    def refused(self) -> bool:
        return self.enroll != ACCEPTED


def _same(status: int, code: str) -> tuple[tuple[int, str], tuple[int, str]]:
    return (status, code), (status, code)


CORPUS = [
    Specimen("zero-bytes", lambda p, m: zero_bytes(), *_same(422, "unreadable_image")),
    Specimen("random-bytes", lambda p, m: random_bytes(), *_same(415, "unsupported_image")),
    Specimen("plain-text", lambda p, m: plain_text(), *_same(415, "unsupported_image")),
    Specimen("html", lambda p, m: html(), *_same(415, "unsupported_image")),
    Specimen("svg", lambda p, m: svg(), *_same(415, "unsupported_image")),
    Specimen("truncated-jpeg", lambda p, m: truncated_jpeg(p), *_same(422, "unreadable_image")),
    Specimen("truncated-png", lambda p, m: truncated_png(p), *_same(422, "unreadable_image")),
    Specimen("png-100000x100000", lambda p, m: png_bomb(), *_same(413, "image_too_large")),
    Specimen("1x1", lambda p, m: one_pixel(), *_same(422, "image_too_small")),
    Specimen("cmyk-jpeg", lambda p, m: cmyk_jpeg(p), ACCEPTED, ACCEPTED),
    Specimen("png-16bit-rgb", lambda p, m: png16_rgb(p), ACCEPTED, ACCEPTED),
    Specimen("png-16bit-gray", lambda p, m: png16_gray(p), ACCEPTED, ACCEPTED, distance=0.25),
    Specimen("palette-png", lambda p, m: palette_png(p), ACCEPTED, ACCEPTED),
    Specimen("grayscale-jpeg", lambda p, m: grayscale_jpeg(p), ACCEPTED, ACCEPTED, distance=0.25),
    Specimen("rgba-png", lambda p, m: rgba_png(p), ACCEPTED, ACCEPTED),
    Specimen("animated-gif", lambda p, m: animated_gif(p), *_same(415, "unsupported_image")),
    Specimen("animated-webp", lambda p, m: animated_webp(p), *_same(415, "unsupported_image")),
    Specimen("exif-rotated", lambda p, m: exif_rotated(p), ACCEPTED, ACCEPTED),
    Specimen("huge-under-limit", huge_photo, ACCEPTED, ACCEPTED),
    Specimen("over-pixel-limit", over_the_pixel_limit, *_same(413, "image_too_large")),
    Specimen("50-faces", lambda p, m: crowd(p), (422, "multiple_faces"), ACCEPTED),
]
"""Every specimen. Accepted ones show the source face (50 times in ``50-faces``); without its
colours (gray) it lands about 0.2 from the colour original, re-encoded about 0.1 or closer."""


# ------------------------------------------------------------------------------ the checks

API_DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


@functools.cache
def documented_codes() -> frozenset[str]:
    """The problem ``code``s in the table of errors of docs/api.md."""
    section = API_DOCS.read_text(encoding="utf-8").split("\n## Errors\n", 1)[1]
    section = re.split(r"\n#{2,4} ", section, maxsplit=1)[0]
    return frozenset(re.findall(r"^\| `([a-z_]+)` \| \d{3} \|", section, re.MULTILINE))


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """A clean refusal: ``status``, a problem+json body with a documented ``code``, a detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert code in documented_codes(), f"{code} is not in docs/api.md's table of errors"
    assert body["type"] == f"urn:reunite:error:{code}" and body["detail"]
    return body


STORED_TABLES = ("cases", "photos", "faces", "candidates", "candidate_decisions")


def stored(settings: Settings) -> dict[str, Any]:
    """What the store of ``settings`` holds: row counts, and the photo files (names, sizes).

    Read with a connection of its own, so it works beside a server process as well as in one.
    """
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as db:
            counts = {
                t: db.scalar(sqlalchemy.text(f"SELECT count(*) FROM {t}")) for t in STORED_TABLES
            }
    finally:
        engine.dispose()
    photos = settings.photos_dir
    files = sorted(
        (str(p.relative_to(photos)), p.stat().st_size) for p in photos.rglob("*") if p.is_file()
    )
    return {**counts, "files": files}


def logged_statuses(log: str) -> list[int]:
    """The status of every request in a server's log (its access lines), in order; readiness
    probes left out: ``/readyz`` answers 503 by design while a worker loads its index."""
    pattern = r" reunite\.access \[\w+\] [A-Z]+ (?!/readyz )\S+ (\d{3}) "
    return [int(s) for s in re.findall(pattern, log)]
