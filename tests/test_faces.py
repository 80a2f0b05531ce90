"""Face detection and embedding on the real sample photos."""

import cv2
import face_recognition
import numpy as np
import pytest

from reunite.faces import (
    Box,
    Pipeline,
    box_overlap,
    boxes_in_tiles,
    face_at_box,
    faces_in_image,
)
from reunite.imaging import decoded_image
from tests.conftest import FACES_DIR


def pixels_of(sample, name):
    return decoded_image(sample(name), max_bytes=10**8, max_pixels=10**8).pixels


def test_faces_are_ordered_left_to_right_with_128_d_embeddings(sample):
    faces = faces_in_image(pixels_of(sample, "two_people.jpg"), Pipeline())
    assert len(faces) == 2 and faces[0].box.left < faces[1].box.left
    for face in faces:
        assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
        assert face.face_width_px == face.box.width and face.sharpness > 0


def enlarged(pixels: np.ndarray, megapixels: float) -> np.ndarray:
    scale = (megapixels * 1e6 / (pixels.shape[0] * pixels.shape[1])) ** 0.5
    return cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def all_samples() -> list[str]:
    folder = FACES_DIR / "samples"
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".md") if folder.is_dir() else []


@pytest.mark.parametrize("name", [*all_samples(), "obama_and_biden.jpg@12MP"])
def test_detecting_on_a_reduced_copy_finds_the_faces_plain_detection_finds(sample, name):
    """Every face at least ``min_face_px`` wide that full-size detection finds is found on the
    reduced copy, with nearly the same embedding; a photo with a face always gets one."""
    photo, _, size = name.partition("@")
    pixels = pixels_of(sample, photo)
    if size:
        pixels = enlarged(pixels, 12)
    fast = Pipeline(min_face_px=100)
    plain = faces_in_image(pixels, Pipeline(min_face_px=0))
    reduced = faces_in_image(pixels, fast)
    assert bool(reduced) == bool(plain)
    for face in plain:
        if face.face_width_px < fast.min_face_px:
            continue
        [twin] = [r for r in reduced if box_overlap(face.box, r.box) > 0.5]
        # Boxes found at another scale start the landmarks a little elsewhere: measured up to
        # 0.21 for the 150 px faces of obama_and_biden.jpg, about 0.05 for larger ones.
        assert np.linalg.norm(face.embedding - twin.embedding) < 0.25


def test_the_detection_scale_keeps_the_narrowest_face_visible():
    fast = Pipeline(min_face_px=100, upsample_times=1)
    assert fast.detection_scale(3000, 4000) == pytest.approx(0.4)  # 100 px -> 40 px, doubled
    assert fast.detection_scale(480, 640) == 1.0  # small photos are searched whole
    assert fast.detection_scale(1000, 1000) == pytest.approx(0.64)  # never under 640 px
    assert Pipeline(min_face_px=0).detection_scale(3000, 4000) == 1.0
    assert Pipeline(min_face_px=100, upsample_times=0).detection_scale(3000, 4000) == 0.8


def test_a_small_face_missed_on_the_reduced_copy_is_found_at_full_size(sample):
    # obama_small.jpg on a 4000 x 3000 canvas: told to look for 1,000 px faces, detection
    # reduces it to 0.16, where the face is too small to see; the retry at full size finds it.
    small = pixels_of(sample, "obama_small.jpg")
    pixels = np.full((3000, 4000, 3), 255, dtype=np.uint8)
    pixels[1000 : 1000 + small.shape[0], 1500 : 1500 + small.shape[1]] = small
    fast = Pipeline(min_face_px=1000)
    assert fast.detection_scale(3000, 4000) == pytest.approx(0.16)
    assert not faces_in_image(cv2.resize(pixels, None, fx=0.16, fy=0.16), Pipeline(min_face_px=0))
    [found] = faces_in_image(pixels, fast)
    assert found.box.left > 1500 and found.box.top > 1000


def test_the_full_size_pass_in_tiles_finds_the_faces_of_one_pass(sample):
    """Small faces across tile edges, in a corner, at the photo's edge: the tiled full-size
    pass finds each once, where one pass over the whole photo finds it."""
    small = pixels_of(sample, "obama_small.jpg")  # one face, about 108 px wide
    pixels = np.full((1000, 1600, 3), 200, dtype=np.uint8)
    # Tiles of 600 px overlapping by 250 start at 0, 350, 700 and 1000 across, 0, 350 and 400
    # down: these copies put faces across the edges at 600, 950 and 350 and in the corner.
    for top, left in [(0, 0), (0, 480), (260, 860), (600, 1280), (660, 150)]:
        pixels[top : top + small.shape[0], left : left + small.shape[1]] = small
    pipeline = Pipeline(min_face_px=0)
    whole = [Box(*map(int, b)) for b in face_recognition.face_locations(pixels, 1)]
    tiled = boxes_in_tiles(pixels, pipeline, side_px=600, overlap_px=250)
    assert len(whole) == 5
    assert len(tiled) == len(whole)
    for box in whole:  # dlib's image pyramid puts a face at slightly different scales in a
        # tile and in the whole photo: the boxes differ by a few pixels, the faces hardly
        nearest = max(tiled, key=lambda other: box_overlap(box, other))
        assert box_overlap(box, nearest) > 0.6
        distance = (
            face_at_box(pixels, box, pipeline).embedding
            - face_at_box(pixels, nearest, pipeline).embedding
        )
        assert np.linalg.norm(distance) < 0.08
