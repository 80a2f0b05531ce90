"""What a reviewer would be shown, through the service (``Reunite``), on named LFW people: a
snapshot to compare two versions of the code on the same photos.

    .venv/bin/python scripts/candidates_snapshot.py --out after.json
    PYTHONPATH=<older checkout> .venv/bin/python scripts/candidates_snapshot.py --out before.json

The gallery holds one missing case per identity (its first photo, by file name): the first 100
LFW people with two or more photos (alphabetical) and ``EAST_ASIAN`` below. Each identity's
second photo is enrolled as a found case (a mated probe); the first photo of 100 people with a
single LFW photo is enrolled as a found case too (strangers: every candidate is wrong). Every
candidate proposed at enrollment is recorded (found case, missing case, distance, similarity)
with, per group, the true case in the list, the true case first, and wrong candidates per
search. Default settings, an empty store in a temporary folder, started in that folder. Cost:
about 400 photos detected and embedded (1-2 minutes on 2 cores). Not the import and API path:
for a comparison of code versions on the same data, not a measurement of the model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reunite.config import Settings
from reunite.errors import InvalidInput
from reunite.service import Reunite

EAST_ASIAN = [
    "Chen_Shui-bian", "Choi_Sung-hong", "Goh_Kun", "Hideki_Matsui", "Hu_Jintao", "Hun_Sen",
    "Jackie_Chan", "Jiang_Zemin", "Jong_Thae_Hwa", "Junichiro_Koizumi", "Kim_Dae-jung",
    "Kim_Jong-Il", "Kwon_Yang-sook", "Lee_Hoi-chang", "Lee_Soo-hyuck", "Li_Peng", "Li_Zhaoxing",
    "Naoto_Kan", "Roh_Moo-hyun", "Tang_Jiaxuan", "Wen_Jiabao", "Yao_Ming", "Yoriko_Kawaguchi",
    "Zhang_Ziyi", "Zhu_Rongji",
]  # fmt: skip
"""East-Asian public figures with two or more LFW photos (a small, named development set)."""


def groups(lfw: Path) -> dict[str, list[list[Path]]]:
    """Group name -> each identity's photos, sorted by file name."""
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(lfw.iterdir()) if d.is_dir()}
    several = [n for n, p in people.items() if len(p) >= 2 and n not in EAST_ASIAN][:100]
    single = [n for n, p in people.items() if len(p) == 1][:100]
    return {
        "lfw": [people[n] for n in several],
        "east_asian": [people[n] for n in EAST_ASIAN],
        "strangers": [people[n] for n in single],
    }


def snapshot(lfw: Path, *, here: bool) -> dict[str, Any]:
    """Every candidate proposed for every probe, and the summary per group; run in the
    temporary folder, or in the current one with ``here``."""
    chosen = groups(lfw)
    with tempfile.TemporaryDirectory() as folder:
        if not here:
            os.chdir(folder)  # as a server started anywhere would
        settings = Settings(data_dir=Path(folder) / "data", index_dir=Path(folder) / "index")
        settings.data_dir.mkdir(parents=True)
        with Reunite.open(settings) as service:
            gallery: dict[str, int] = {}
            for group in ("lfw", "east_asian"):
                for photos in chosen[group]:
                    case = service.create_case({"kind": "missing"}, actor="snapshot")
                    try:
                        service.enroll_photo(case.id, photos[0].read_bytes(), actor="snapshot")
                        gallery[photos[0].parent.name] = case.id
                    except InvalidInput:
                        pass  # no usable face: this identity has no case to find
            return {
                group: _probed(service, chosen[group], gallery, mated=group != "strangers")
                for group in chosen
            }


def _probed(
    service: Reunite, people: list[list[Path]], gallery: dict[str, int], *, mated: bool
) -> dict[str, Any]:
    rows, searches, in_list, first, wrong = [], 0, 0, 0, []
    for photos in people:
        name = photos[0].parent.name
        if mated and name not in gallery:
            continue
        case = service.create_case({"kind": "found"}, actor="snapshot")
        try:
            enrolled = service.enroll_photo(
                case.id, photos[1 if mated else 0].read_bytes(), actor="snapshot"
            )
        except InvalidInput:
            continue
        shown = [(v.candidate.missing_case_id, v.candidate.distance, v.similarity) for v in
                 sorted(enrolled.new_candidates, key=lambda v: v.candidate.distance)]  # fmt: skip
        true_id = gallery.get(name)
        searches += 1
        in_list += any(c == true_id for c, _, _ in shown)
        first += bool(shown) and shown[0][0] == true_id
        wrong.append(sum(c != true_id for c, _, _ in shown))
        rows += [[name, c, round(d, 6), round(s, 6)] for c, d, s in shown]
    return {
        "searches": searches,
        "true_case_in_list": round(in_list / searches, 3) if mated else None,
        "true_case_first": round(first / searches, 3) if mated else None,
        "wrong_per_search": round(sum(wrong) / searches, 2),
        "searches_with_a_wrong_candidate": round(sum(w > 0 for w in wrong) / searches, 3),
        "candidates": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_faces = Path(__file__).resolve().parent.parent.parent / "shared" / "faces"
    parser.add_argument("--faces-dir", type=Path, default=default_faces)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--here", action="store_true", help="run in the current folder, not the temporary one"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    result = snapshot(args.faces_dir.resolve() / "lfw", here=args.here)
    out.write_text(json.dumps(result, indent=1))
    for group, summary in result.items():
        print(group, {k: v for k, v in summary.items() if k != "candidates"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
