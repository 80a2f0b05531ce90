"""Faces in a photo: where they are (boxes) and what they look like (128-d dlib embeddings).

A thin layer over ``face_recognition`` (dlib's HOG or CNN detector, the 5-point landmark model
and the ResNet embedding model ``dlib_face_recognition_resnet_model_v1``, published LFW
accuracy 99.38%). The models are loaded once per process, when ``face_recognition`` is imported.

Two embeddings of the same person are usually closer than 0.6 in L2 distance; see
``reunite/model/README.md`` for what that number does and does not mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import cv2
import numpy as np
from PIL import ImageFile

from reunite.admission import PriorityLock, holds_small_photo
from reunite.config import DEFAULT_MIN_FACE_PX

with warnings.catch_warnings():
    # face_recognition_models imports pkg_resources, which warns that it is deprecated.
    warnings.simplefilter("ignore", UserWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import face_recognition

# face_recognition sets this at import so that its own loader accepts truncated files; reunite
# decodes photos itself (reunite.imaging) and must refuse truncated ones, Pillow's default.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DLIB_LOCK = PriorityLock()
"""face_recognition keeps one detector, shape predictor and network per process, and dlib
releases the GIL while they run: two threads using them at once corrupt memory (a server
crashed with "munmap_chunk(): invalid pointer" under 4 concurrent searches). Every dlib call
takes this lock; parallelism comes from processes, not threads. A thread working on a small
photo (``admission.holds_small_photo``) takes it before threads with large ones, so a small
search waits for at most one detection pass: over a large photo, one tile of it
(``boxes_in_tiles``)."""

MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
EMBEDDING_DIM = 128
SHARPNESS_SIDE_PX = 100
DETECTOR_WINDOW_PX = 80
"""The smallest face dlib's detectors find without upsampling, pixels (their sliding window);
each upsample halves it."""
MIN_DETECT_SIDE_PX = 640
TILE_SIDE_PX = 2048
"""The full-size detection pass over a large photo runs in tiles of at most this side, pixels
(``boxes_in_tiles``): 4 MP, about 1.5 s of HOG detection with one upsample on one core."""
TILE_OVERLAP_FACES = 4
"""Tiles overlap by this many ``min_face_px`` (at least ``MIN_TILE_OVERLAP_PX``): every face
the reduced copy could miss lies whole in one tile, with room around it."""
MIN_TILE_OVERLAP_PX = 256
SAME_BOX_OVERLAP = 0.3
"""Boxes from two tiles overlapping at least this much (intersection over union) are one face."""
EDGE_PX = 2
"""A box within this many pixels of a tile's edge touches it (dlib's boxes are clipped to the
image they were found in)."""
"""Boxes from two tiles overlapping at least this much (intersection over union) are one face."""
"""A reduced detection copy is never smaller than this on its longest side, pixels: small
photos are cheap to search whole, and their faces are small."""


class Box(NamedTuple):
    """A face box in pixels of the original, upright photo: (top, right, bottom, left).

    dlib's convention, as in face_recognition: rows ``top..bottom`` and columns ``left..right``.
    """

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True)
class Face:
    """A detected face: its box, its embedding (float32, shape (128,)) and quality figures.

    ``face_width_px`` is the box width in pixels of the original photo. ``sharpness`` is the
    variance of the Laplacian of the face, in grayscale scaled to 100x100 px: higher is sharper;
    under about 20 is usually visibly blurred (uncalibrated).
    """

    box: Box
    embedding: np.ndarray
    face_width_px: int
    sharpness: float


@dataclass(frozen=True)
class Pipeline:
    """How faces are found and embedded. ``version`` is stored with every face it makes.

    ``min_face_px``: the narrowest face, in pixels of the photo, that detection must find.
    Detection then runs on a copy reduced so that such a face just fills the detector's window
    (see ``detection_scale``): a 12 MP phone photo is searched at 0.4 of its size for 100 px
    faces, about 6 times fewer pixels. 0: detect on the full photo, down to the smallest
    face the detector can see (40 px with one upsample), as plain face_recognition does.
    Photos up to 640 px (LFW's included) are searched whole either way. Landmarks and
    embeddings always use the full photo, and when the copy shows no face, detection runs
    again at full size, in tiles (``boxes_in_tiles``).
    """

    detector: str = "hog"
    upsample_times: int = 1
    num_jitters: int = 1
    min_face_px: int = DEFAULT_MIN_FACE_PX

    @property
    def version(self) -> str:
        scaled = f"-m{self.min_face_px}" if self.min_face_px else ""
        return f"{MODEL_NAME}/{self.detector}-up{self.upsample_times}-j{self.num_jitters}{scaled}"

    def detection_scale(self, height: int, width: int) -> float:
        """The factor (at most 1) by which a ``height`` x ``width`` photo is reduced for
        detection: a ``min_face_px`` face stays as wide as the detector's window after
        upsampling, and the copy keeps at least ``MIN_DETECT_SIDE_PX`` on its longest side."""
        if not self.min_face_px:
            return 1.0
        smallest_seen_px = DETECTOR_WINDOW_PX / 2**self.upsample_times
        scale = smallest_seen_px / self.min_face_px
        return float(min(1.0, max(scale, MIN_DETECT_SIDE_PX / max(height, width))))


class FaceFinder(Protocol):
    """Anything that returns the faces in an RGB uint8 pixel array (see ``faces_in_image``)."""

    def __call__(self, pixels: np.ndarray, pipeline: Pipeline) -> list[Face]: ...


def face_boxes(pixels: np.ndarray, pipeline: Pipeline) -> list[Box]:
    """Boxes of the faces in an RGB image, in its pixels, ordered left to right (then top to
    bottom). Detection runs on a reduced copy when ``pipeline.min_face_px`` allows it.

    Cost: HOG detection with one upsample takes about 0.3 s per megapixel on one core, and
    falls with the square of the scale: 0.4 (100 px faces in a 12 MP photo) costs a sixth.
    """
    height, width = pixels.shape[:2]
    scale = pipeline.detection_scale(height, width)
    if scale < 1.0:
        small = cv2.resize(
            pixels,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        found = _detected(small, pipeline)
        if found:
            return _ordered(_scaled_box(b, 1 / scale, height, width) for b in found)
        overlap_px = max(MIN_TILE_OVERLAP_PX, TILE_OVERLAP_FACES * pipeline.min_face_px)
        side_px = max(TILE_SIDE_PX, 2 * overlap_px)
        return _ordered(boxes_in_tiles(pixels, pipeline, side_px=side_px, overlap_px=overlap_px))
    return _ordered(Box(*map(int, b)) for b in _detected(pixels, pipeline))


def boxes_in_tiles(
    pixels: np.ndarray, pipeline: Pipeline, *, side_px: int, overlap_px: int
) -> list[Box]:
    """Boxes of the faces in an RGB image, detected at full size one tile at a time: tiles of
    at most ``side_px`` square, each overlapping the next by ``overlap_px``, unordered.

    The full-size pass runs only when the reduced copy showed no face, so the faces it is for
    are narrower than ``pipeline.min_face_px``; a face narrower than ``overlap_px`` lies
    whole in some tile. A box that touches a tile's inner edge and is narrower than the
    overlap is a cut face, found whole in the neighbour, and dropped; boxes found twice in an
    overlap are kept once. Each tile takes ``DLIB_LOCK`` on its own, so a small photo's search
    waits for one tile (about 1.5 s for 2048 px on one core), not for the whole photo (16 s
    for 40 MP), and dlib's upsampled copy is a tile's, not the photo's (0.1 GB, not 1.1 GB).
    """
    height, width = pixels.shape[:2]
    if side_px <= overlap_px:
        raise ValueError("a tile must be larger than its overlap")
    stride = side_px - overlap_px
    found: list[Box] = []
    for top in _tile_starts(height, side_px, stride):
        for left in _tile_starts(width, side_px, stride):
            bottom, right = min(height, top + side_px), min(width, left + side_px)
            tile = np.ascontiguousarray(pixels[top:bottom, left:right])
            inner = Box(top > 0, right < width, bottom < height, left > 0)
            for t, r, b, lft in _detected(tile, pipeline):
                box = Box(top + t, left + r, top + b, left + lft)
                cut = _touches(Box(t, r, b, lft), tile.shape, inner) and box.width < overlap_px
                seen = any(box_overlap(box, other) >= SAME_BOX_OVERLAP for other in found)
                if not cut and not seen:
                    found.append(box)
    return found


def _touches(box: Box, shape: tuple[int, ...], inner: Box) -> bool:
    """Whether ``box`` (pixels of a tile of ``shape``) reaches one of the tile's edges that
    ``inner`` marks as inside the photo (True per side: top, right, bottom, left)."""
    height, width = shape[:2]
    return bool(
        (inner.top and box.top <= EDGE_PX)
        or (inner.left and box.left <= EDGE_PX)
        or (inner.bottom and box.bottom >= height - EDGE_PX)
        or (inner.right and box.right >= width - EDGE_PX)
    )


def _tile_starts(length: int, side_px: int, stride: int) -> list[int]:
    """Where tiles of ``side_px`` (``stride`` apart) start along ``length`` pixels: the last
    tile ends at the edge."""
    if length <= side_px:
        return [0]
    starts = list(range(0, length - side_px, stride))
    return [*starts, length - side_px]


def _detected(pixels: np.ndarray, pipeline: Pipeline) -> list[tuple[int, int, int, int]]:
    with DLIB_LOCK.held(first=holds_small_photo()):
        found: list[tuple[int, int, int, int]] = face_recognition.face_locations(
            pixels, number_of_times_to_upsample=pipeline.upsample_times, model=pipeline.detector
        )
    return found


def _scaled_box(box: tuple[int, int, int, int], factor: float, height: int, width: int) -> Box:
    top, right, bottom, left = box
    return Box(
        top=max(0, round(top * factor)),
        right=min(width, round(right * factor)),
        bottom=min(height, round(bottom * factor)),
        left=max(0, round(left * factor)),
    )


def _ordered(boxes: Iterable[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: (b.left, b.top))


def face_sharpness(pixels: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face in ``box``, in grayscale scaled to 100x100 px."""
    height, width = pixels.shape[:2]
    top, bottom = max(box.top, 0), min(box.bottom, height)
    left, right = max(box.left, 0), min(box.right, width)
    if bottom <= top or right <= left:
        return 0.0
    gray = cv2.cvtColor(pixels[top:bottom, left:right], cv2.COLOR_RGB2GRAY)
    gray = cv2.resize(gray, (SHARPNESS_SIDE_PX, SHARPNESS_SIDE_PX), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def faces_in_image(pixels: np.ndarray, pipeline: Pipeline) -> list[Face]:
    """Every face in an RGB uint8 image, with embeddings, ordered as ``face_boxes``.

    Cost: detection (see ``face_boxes``) plus about 15 ms per face per jitter for the embedding.
    """
    boxes = face_boxes(pixels, pipeline)
    if not boxes:
        return []
    return _faces_at(pixels, boxes, pipeline)


def face_at_box(pixels: np.ndarray, box: Box, pipeline: Pipeline) -> Face:
    """The face in ``box`` (pixels of this image), embedded without detection: for a stored
    face that a new detector no longer finds. Cost: about 15 ms per jitter."""
    [face] = _faces_at(pixels, [box], pipeline)
    return face


def _faces_at(pixels: np.ndarray, boxes: list[Box], pipeline: Pipeline) -> list[Face]:
    """The faces in ``boxes``, embedded (landmarks and network) while holding ``DLIB_LOCK``."""
    with DLIB_LOCK.held(first=holds_small_photo()):
        encodings = face_recognition.face_encodings(
            pixels, known_face_locations=boxes, num_jitters=pipeline.num_jitters
        )
    return [
        Face(
            box=box,
            embedding=np.asarray(encoding, dtype=np.float32),
            face_width_px=box.width,
            sharpness=face_sharpness(pixels, box),
        )
        for box, encoding in zip(boxes, encodings, strict=True)
    ]


def central_index(boxes: np.ndarray, shape: tuple[int, int]) -> int | None:
    """Which face is the photo's subject: the one whose box centre is nearest the image centre.

    ``boxes``: one (top, right, bottom, left) row per face; ``shape``: the photo's (height,
    width). None when there is no box.
    """
    if not len(boxes):
        return None
    centres = np.column_stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2 - shape[0] / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2 - shape[1] / 2,
        ]
    )
    return int(np.argmin(np.hypot(centres[:, 0], centres[:, 1])))


def largest_index(boxes: Sequence[Box]) -> int | None:
    """Which face has the largest box (by area; the first of equal ones), or None."""
    if not boxes:
        return None
    areas = [box.width * box.height for box in boxes]
    return areas.index(max(areas))


def box_overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, in [0, 1]."""
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
