import io

import numpy as np
import pytest
from PIL import Image

from reunite import errors, imaging
from reunite.imaging import decoded_image
from tests import images

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}


def decode(data: bytes, **limits: int):
    return decoded_image(data, **{**LIMITS, **limits})


def test_jpeg_decodes_to_upright_rgb8_with_its_hash(sample):
    data = sample("obama.jpg")
    image = decode(data)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (1137, 910, 3)
    assert image.format == "JPEG" and image.media_type == "image/jpeg"
    assert len(image.sha256) == 64 and image.byte_size == len(data)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda s: b"", errors.UnreadableImage),
        (lambda s: b"this is a text file, not a photo\n" * 10, errors.UnsupportedImage),
        (lambda s: b"<html><body>hello</body></html>", errors.UnsupportedImage),
        (lambda s: images.truncated(s("obama.jpg")), errors.UnreadableImage),
        (lambda s: images.truncated(s("32bit.png")), errors.UnreadableImage),
        (lambda s: images.one_pixel_png(), errors.ImageTooSmall),
        (lambda s: images.png_header_only(100_000, 100_000), errors.ImageTooLarge),
        (lambda s: images.png_header_only(8_000, 6_000), errors.ImageTooLarge),
        (lambda s: images.encoded(Image.new("RGB", (64, 64)), "GIF"), errors.UnsupportedImage),
        (lambda s: images.encoded(Image.new("RGB", (64, 64)), "BMP"), errors.UnsupportedImage),
    ],
    ids=[
        "empty",
        "text",
        "html",
        "truncated-jpeg",
        "truncated-png",
        "1x1",
        "100000x100000-header",
        "48MP-header",
        "gif",
        "bmp",
    ],
)
def test_bad_files_raise_the_matching_error(sample, make, error):
    with pytest.raises(error) as raised:
        decode(make(sample))
    assert raised.value.message  # a sentence a person can act on


def test_files_over_the_byte_limit_are_refused_before_decoding(sample):
    with pytest.raises(errors.ImageTooLarge, match="limit is 1000 bytes"):
        decode(sample("obama.jpg"), max_bytes=1000)


def test_animated_webp_is_refused():
    frames = [Image.new("RGB", (64, 64), (i * 60, 0, 0)) for i in range(3)]
    data = images.encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(errors.UnsupportedImage, match="Animated"):
        decode(data)


def test_exif_orientation_is_applied(sample):
    upright = decode(sample("obama.jpg")).pixels
    turned = decode(images.rotated_with_exif(sample("obama.jpg"))).pixels
    assert turned.shape == upright.shape
    assert np.abs(turned.astype(int) - upright.astype(int)).mean() < 4  # JPEG re-encoding only


def test_transparent_pixels_are_laid_on_white(sample):
    photo = Image.open(io.BytesIO(sample("obama_small.jpg"))).convert("RGBA")
    alpha = np.full((photo.height, photo.width), 255, dtype=np.uint8)
    alpha[:, : photo.width // 4] = 0  # the left quarter fully transparent
    photo.putalpha(Image.fromarray(alpha))
    pixels = decode(images.encoded(photo, "PNG")).pixels
    assert (pixels[:, : photo.width // 4] == 255).all()
    opaque = np.asarray(photo.convert("RGB"))[:, photo.width // 4 :]
    assert (pixels[:, photo.width // 4 :] == opaque).all()


def test_palette_with_transparency_is_laid_on_white(sample):
    photo = Image.open(io.BytesIO(sample("obama_small.jpg"))).convert("RGB").quantize(64)
    photo.info["transparency"] = 0
    data = images.encoded(photo, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    pixels = decode(data).pixels
    index = np.asarray(photo)
    assert (pixels[index == 0] == 255).all() and (index == 0).any()


def test_malformed_exif_fields_do_not_stop_the_orientation(sample):
    source = Image.open(io.BytesIO(sample("obama_small.jpg"))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "x"
    # Retag the text "Make" field as XResolution, which must be a rational number.
    raw = exif.tobytes().replace(b"\x01\x0f\x00\x02", b"\x01\x1a\x00\x02")
    pixels = decode(images.encoded(source.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=raw))
    assert pixels.pixels.shape == (source.height, source.width, 3)


def test_sixteen_bit_gray_becomes_eight_bit_rgb(sample):
    data, gray8 = images.sixteen_bit_gray_png(sample("obama_small.jpg"))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pixels = decode(data).pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (*gray8.shape, 3)
    assert np.abs(pixels[..., 0].astype(int) - gray8).max() <= 1


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "LA"])
def test_other_modes_become_rgb(sample, mode):
    source = Image.open(io.BytesIO(sample("obama_small.jpg"))).convert(mode)
    fmt = "JPEG" if mode in {"L", "CMYK"} else "PNG"
    pixels = decode(images.encoded(source, fmt)).pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (source.height, source.width, 3)
    assert pixels.std() > 10  # a real picture, not a blank


def test_a_flat_or_featureless_image_is_refused_before_detection():
    rng = np.random.default_rng(0)
    flat = np.zeros((5000, 8000, 3), dtype=np.uint8)
    noise = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    for pixels in (flat, noise, np.full((50, 50, 3), 200, dtype=np.uint8)):
        with pytest.raises(errors.FeaturelessImage) as refused:
            imaging.check_detail(pixels)
        assert isinstance(refused.value, errors.NoFaceFound)
        assert refused.value.details["detail_level"] < imaging.MIN_DETAIL


def test_no_sample_or_lfw_photo_is_taken_for_featureless(faces_dir):
    paths = sorted((faces_dir / "lfw").glob("*/*.jpg"))[::20][:200]
    paths += [p for p in (faces_dir / "samples").iterdir() if p.suffix in {".jpg", ".jpeg", ".png"}]
    assert len(paths) > 200
    levels = [imaging.detail_level(decode(p.read_bytes()).pixels) for p in paths]
    assert min(levels) > 4 * imaging.MIN_DETAIL


def test_declared_pixels_reads_the_header_only():
    assert imaging.declared_pixels(images.png_header_only(8_000, 6_000)) == 48_000_000
    assert imaging.declared_pixels(b"not an image") == 0
    assert imaging.declared_pixels(b"") == 0
