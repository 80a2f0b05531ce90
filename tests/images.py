"""Test helper: odd and hostile image files, generated from real photos or from scratch."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that declares ``width`` x ``height`` RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def truncated(data: bytes) -> bytes:
    """The first half of a file."""
    return data[: len(data) // 2]


def one_pixel_png() -> bytes:
    return encoded(Image.new("RGB", (1, 1), (128, 128, 128)), "PNG")


def no_face_jpeg(photo: bytes) -> bytes:
    """The bottom third of a real photo (clothes, background): real pixels, no face."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    width, height = image.size
    return encoded(image.crop((0, height * 2 // 3, width, height)), "JPEG")


def rotated_with_exif(photo: bytes) -> bytes:
    """The photo's pixels turned 90 degrees, with EXIF orientation 6 saying how to turn them back.

    Orientation 6 means "rotate 90 degrees clockwise to display"; so the stored pixels are the
    upright photo turned 90 degrees counter-clockwise.
    """
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(stored, "JPEG", exif=exif.tobytes(), quality=95)


def sixteen_bit_gray_png(photo: bytes) -> tuple[bytes, np.ndarray]:
    """A 16-bit grayscale PNG of the photo, and the 8-bit gray it was made from."""
    gray8 = np.asarray(Image.open(io.BytesIO(photo)).convert("L"), dtype=np.uint16)
    gray16 = gray8 * 257
    return encoded(Image.fromarray(gray16.astype(np.uint16)), "PNG"), gray8.astype(np.uint8)
