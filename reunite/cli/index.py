"""``reunite migrate`` and ``reunite reindex``: the store's schema and the FAISS index."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from reunite.cli.shared import loaded_settings, opened_store, progress_display

if TYPE_CHECKING:
    from reunite.reembedding import ReembedReport


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` and ``reindex``."""
    migrate = commands.add_parser(
        "migrate",
        help="bring the store's schema up to date",
        description="Apply the schema migrations this version has and the store lacks (every "
        "process also does so when it opens the store). Prints the revision.",
    )
    migrate.set_defaults(run=migrate_store)

    reindex = commands.add_parser(
        "reindex",
        help="re-embed stale faces, then rebuild the FAISS index from the store",
        description="Embed again every face made by another model or pipeline version (or "
        "every face, with --all), from its stored photo, then build a fresh FAISS index from "
        "the store and save it atomically as a new build. With photos in a bucket "
        "(REUNITE_PHOTO_STORE=s3://...), the build is also published there, for servers that "
        "keep their index in folders of their own. Running servers keep answering and "
        "switch to it within REUNITE_INDEX_SYNC_INTERVAL_S. Interrupted, it resumes where it "
        "stopped. Prints a JSON summary; exit 1 if some faces could not be embedded again.",
    )
    reindex.add_argument("--all", action="store_true", help="re-embed every face")
    reindex.add_argument(
        "--workers", type=int, default=None, help="embedding processes (default: one per core)"
    )
    reindex.add_argument(
        "--ray-address",
        default=None,
        help="embed on a Ray cluster instead: 'auto' or 'ray://HOST:PORT' (needs the ray extra)",
    )
    reindex.add_argument(
        "--index-type",
        choices=["auto", "flat", "hnsw"],
        default="auto",
        help="flat (exact) or hnsw (approximate); auto: by size (REUNITE_APPROXIMATE_MIN_FACES)",
    )
    reindex.add_argument(
        "--skip-reembed", action="store_true", help="only rebuild the index from the store"
    )
    reindex.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="faces written per transaction (at most this many are redone after a kill)",
    )
    reindex.set_defaults(run=reindex_store)


def migrate_store(_args: argparse.Namespace) -> int:
    """Migrate the store's schema (opening it does) and print the revision."""
    with opened_store(loaded_settings()) as store:
        print(f"schema at revision {store.revision}")
    return 0


def reindex_store(args: argparse.Namespace) -> int:
    """Re-embed stale faces (unless --skip-reembed), then rebuild the index; prints a summary."""
    from reunite.index_builds import PublishedBuilds
    from reunite.reembedding import ReembedReport, reembed_faces
    from reunite.service import Reunite

    summary: dict[str, Any] = {}
    embedded = ReembedReport()
    with Reunite.open(loaded_settings(), load_index=False) as service:
        if not args.skip_reembed:
            with progress_display("re-embedding", unit="face") as progress:
                embedded = reembed_faces(
                    service,
                    everything=args.all,
                    workers=args.workers,
                    ray_address=args.ray_address,
                    progress=progress,
                    batch_size=args.batch_size,
                )
            summary["reembed"] = _reembed_summary(embedded)
        started = time.perf_counter()
        report = service.rebuild_index(args.index_type)
        summary["index"] = {
            "counts": report.counts,
            "params": service.index.params,
            "build_id": service.index.build_id,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if published := PublishedBuilds.of(service.settings):
            build = published.publish(service.settings.index_dir, service.live.index_lock)
            summary["index"]["published"] = published.describe(build.build_id)
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if embedded.failed else 0


def _reembed_summary(embedded: ReembedReport) -> dict[str, Any]:
    return {
        "faces": embedded.total,
        "reembedded": embedded.reembedded,
        "failed": [
            {"face_id": i, "error": code, "message": message}
            for i, code, message in embedded.failed
        ],
        "resumed_after_face_id": embedded.resumed_after_face_id,
        "seconds": round(embedded.seconds, 1),
        "faces_per_s": round(embedded.total / embedded.seconds, 2) if embedded.seconds else None,
    }
