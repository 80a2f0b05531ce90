"""Where the heavy work runs: ``REUNITE_DEVICE`` = ``auto``, ``cpu`` or ``cuda``.

A GPU is optional and never required. With ``auto`` the service uses CUDA when the installed
dlib was built with CUDA and sees a device (then the CNN face detector becomes practical and is
the default), and says once in the log when it runs on the CPU and why. ``cuda`` without a
usable GPU is a start-up error, not a silent fallback. Independently, a GPU build of FAISS that
sees a GPU gets the exact index kinds' searches (``FaceIndex.use_gpu``); HNSW graphs stay on
the CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from reunite.errors import InvalidField

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Devices:
    """What this process runs on: dlib (detection, embeddings) and FAISS (search)."""

    dlib_cuda: bool
    faiss_gpus: int
    reason: str

    @property
    def name(self) -> str:
        return "cuda" if self.dlib_cuda else "cpu"


def dlib_cuda_devices() -> int:
    """CUDA devices dlib can use: 0 when dlib was built without CUDA."""
    import dlib

    if not getattr(dlib, "DLIB_USE_CUDA", False):
        return 0
    return int(dlib.cuda.get_num_devices())


def faiss_gpu_count() -> int:
    import faiss

    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def chosen_devices(requested: str) -> Devices:
    """The devices for ``REUNITE_DEVICE=requested``.

    Raises:
        InvalidField: ``cuda`` was asked for and no CUDA-enabled dlib sees a GPU.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise InvalidField(f"REUNITE_DEVICE must be auto, cpu or cuda, not {requested!r}.")
    if requested == "cpu":
        return Devices(False, 0, "REUNITE_DEVICE=cpu")
    faiss_gpus = faiss_gpu_count()
    if faiss_gpus:
        log.info("FAISS sees %d GPU(s): exact index searches run there", faiss_gpus)
    gpus = dlib_cuda_devices()
    if gpus == 0:
        reason = "dlib was built without CUDA or sees no GPU"
        if requested == "cuda":
            raise InvalidField(
                f"REUNITE_DEVICE=cuda, but {reason}. Install a CUDA build of dlib (see the "
                "docs/operations.md, 'Optional GPU'), or set REUNITE_DEVICE=auto or cpu."
            )
        log.info("running on the CPU: %s (REUNITE_DEVICE=auto)", reason)
        return Devices(False, faiss_gpus, reason)
    log.info("running dlib on CUDA (%d device(s))", gpus)
    return Devices(True, faiss_gpus, f"{gpus} CUDA device(s)")
