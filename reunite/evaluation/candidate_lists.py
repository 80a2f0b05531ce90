"""What a reviewer sees: the candidate lists the service shows, measured on named LFW people.

``scripts/eval_service.py`` builds a gallery of missing cases with ``reunite import``, starts
``reunite serve``, enrolls each probe as a found case through the API and reads its candidates
back through ``GET /api/v1/cases/{id}/candidates``. This module holds the parts that need no
server: who is in the gallery and who is searched (``lfw_design``), the simulated facts
(``simulated_facts``), and what the lists come to (``summary``, ``score_bands``).

The groups searched:

- ``lfw_mated``: LFW people with two or more photos (not East-Asian): the first photo is in the
  gallery, the last one is searched.
- ``lfw_strangers``: LFW people with a single photo, never enrolled: every candidate is wrong.
- ``east_asian``: the East-Asian public figures of ``EAST_ASIAN_SEVERAL``, gallery and probe as
  ``lfw_mated``; ``EAST_ASIAN_SINGLE`` people fill the gallery (half of them) and are searched
  as strangers (the other half, ``east_asian_strangers``). The names were chosen by name and
  public knowledge of who each person is, not by looking at the photos; a few may be wrong.

The gallery also holds single-photo LFW people (distractors), so that a search meets a gallery
of a realistic size. Costs: detection and embedding of every gallery photo (about 13 photos/s on
two cores) once, then one API enrollment per probe.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from reunite.review import CONTRADICTIONS

EAST_ASIAN_SEVERAL = [
    "Alberto_Fujimori", "Antony_Leung", "Chang_Dae-whan", "Chen_Liang_Yu", "Chen_Shui-bian",
    "Choi_Sung-hong", "Chok_Tong_Goh", "Chung_Mong-hun", "Chung_Mong-joon", "Gao_Qiang",
    "Goh_Kun", "Hee-Won_Han", "Hichiro_Naemura", "Hideki_Matsui", "Hitomi_Soga", "Hu_Jintao",
    "Jackie_Chan", "Jeong_Se-hyun", "Jiang_Zemin", "Jong_Thae_Hwa", "Jong_Wook_Lee",
    "Junichiro_Koizumi", "Ken_Watanabe", "Kim_Dae-jung", "Kim_Jin-sun", "Kim_Jong-Il",
    "Kim_Ryong-sung", "Kim_Yong-il", "Kwon_Yang-sook", "Lee_Hoi-chang", "Lee_Jun",
    "Lee_Soo-hyuck", "Lee_Tae-sik", "Li_Peng", "Li_Zhaoxing", "Lim_Dong-won", "Liu_Mingkang",
    "Lucy_Liu", "Masahiko_Nagasawa", "Michael_Chang", "Michelle_Kwan", "Michelle_Yeoh",
    "Miyako_Miyazaki", "Nan_Wang", "Prince_Naruhito", "Princess_Masako", "Roh_Moo-hyun",
    "Saburo_Kawabuchi", "Stanley_Tong", "Tang_Jiaxuan", "Tomoko_Hagiwara", "Tsutomu_Takebe",
    "Tung_Chee-hwa", "Vicki_Zhao_Wei", "Wang_Yi", "Wang_Yingfan", "Wen_Jiabao", "Wu_Yi",
    "Yao_Ming", "Yoriko_Kawaguchi", "Yu_Shyi-kun", "Zhang_Wenkang", "Zhang_Ziyi", "Zhu_Rongji",
]  # fmt: skip
"""East-Asian public figures (Chinese, Japanese, Korean, and of that descent) with two or more
LFW photos: 64 people."""

EAST_ASIAN_SINGLE = [
    "Akiko_Morigami", "Alan_Tang_Kwong-wing", "Andy_Lau", "Atsushi_Sato", "Bak_Chang-Ryun",
    "Bernice_Wong", "Bill_Kong", "Bryan_Chui", "Carina_Lau_Ka-ling", "Cecilia_Chang",
    "Chan_Choi", "Chan_Ho_Park", "Chang_Jae_On", "Chang_Saio-yue", "Chang_Sang", "Chen_Kaige",
    "Chen_Tsai-chin", "Chin-Feng_Chen", "Chin-Hui_Tsao", "Cho_Myung-kyun", "Choi_Yun-yong",
    "Chuanyun_Li", "Chyung_Dai-chul", "Connie_Chung", "Debra_Yang", "Elaine_Chao",
    "Eric_Shinseki", "Fann_Wong", "Faye_Wong", "Frank_Hsieh", "Fruit_Chan", "Gong_Li",
    "Gong_Ruina", "Ham_Pong-sil", "Han_Sung_Joo", "Hideki_Sato", "Hidetoshi_Nakata",
    "Hiroki_Gomi", "Hiroyuki_Yoshino", "Hitoshi_Oshitani", "Hitoshi_Tanaka", "Hu_Maoyuan",
    "Huan_Chung_Yi", "Huang_Suey-Sheng", "Hung_Wan-ting", "Hwang_Doo-yun", "Ignatius_Wang",
    "Jo_Joong-hyon", "Jung_Bong", "Junko_Tabei", "Kang_Gum-sil", "Keizo_Yamada",
    "Kim_Dong-hwa", "Kim_Dong-tae", "Kim_Hong-gul", "Kim_Hong-up", "Kim_Su_Nam", "Kim_Yun-kyu",
    "Koichi_Tanaka", "Koichiro_Matsuura", "Kong_Quan", "Kwon_Young-gil", "Lee_Byung-woong",
    "Lee_Chang-dong", "Lee_Hong-ki", "Lee_Hyung-taik", "Lee_Nam-shin", "Lee_Yeo-jin",
    "Lee_Yuan-tseh", "Leon_Lai", "Li_Changchun", "Li_Ka-shing", "Li_Ruihuan", "Lin_Yi-fu",
    "Lin_Yung_Hsi", "Liu_Xiaoqing", "Liu_Ye", "Luo_Linquan", "Lydia_Shum", "Makiko_Tanaka",
    "Masamori_Tokuyama", "Masao_Azuma", "Masaru_Hayami", "Masatoshi_Koshiba",
    "Mayumi_Moriyama", "Moon-So-ri", "Nobuyuki_Idei", "Pak_Gil_Yon", "Park_Jie-won",
    "Park_Jung_Sung", "Park_Na-kyong", "Peter_Chan", "Qian_Qichen", "Shingo_Katayama",
    "Shingo_Suetsugu", "Shinya_Taniguchi", "Shinzo_Abe", "Sim_Yong", "Suh_Chung-won",
    "Suh_Young-hoon", "Sun_Myung_Moon", "Szu_Yu_Chen", "Takahiro_Mori", "Takashi_Yamamoto",
    "Takenori_Kanzaki", "Taku_Yamasaki", "Takuma_Sato", "Teruaki_Masumoto", "Terunobu_Maeda",
    "Tian_Zhuang_Zhuang", "Tomomi_Morita", "Wang_Fei", "Wang_Hailan", "Wen_Ho_Lee", "Wu_Peng",
    "Xiang_Huaicheng", "Xiang_Liu", "Xiang_Xu", "Yang_Hee_Kim", "Yang_Jianli", "Yang_Pao-yu",
    "Yishan_Zhang", "Yoon_Jeong_Cho", "Yoon_Jin-Sik", "Yoon_Won-Sik", "Yoon_Young-kwan",
    "Yoshiyuki_Kamei", "Yukio_Hatoyama", "Zeng_Qinghong", "Zhang_Yimou", "Zhong_Nanshan",
    "Ziwang_Xu",
]  # fmt: skip
"""East-Asian public figures with one LFW photo. LFW files some people twice under two spellings
(``Yingfan_Wang`` is ``Wang_Yingfan``, ``Dai_Chul_Chyung`` is ``Chyung_Dai-chul``,
``Sung_Hong_Choi`` is ``Choi_Sung-hong``, ``Wang_Nan`` is ``Nan_Wang``): those second names are
left out of every group, so that no 'wrong' candidate is the same person."""

SAME_PERSON_TWICE = {"Yingfan_Wang", "Dai_Chul_Chyung", "Sung_Hong_Choi", "Wang_Nan"}

AGENCY = "eval"
"""The agency of every case the evaluation makes (the gallery's and the probes')."""

SIMULATION_NOTE = (
    "Facts are simulated, not LFW's: each identity gets a random sex, birth year (1940-2000), a "
    "date missing (1995-2014) with its photo undated (so counted as taken then), and a date "
    "found 0-10 years later with its photo taken that day; found cases give birth years as a "
    "range of +-5 years. The faces "
    "are the real photos; only the facts are made up, to measure how facts reorder the lists."
)


@dataclass(frozen=True)
class Facts:
    """Simulated facts of one identity (the same for its missing and found case)."""

    sex: str
    birth_year: int
    date_missing: date
    date_found: date


@dataclass(frozen=True)
class Probe:
    """One search: a photo enrolled as a found case, and the gallery case it should find."""

    ref: str
    name: str
    group: str
    photo: Path
    true_ref: str | None


@dataclass(frozen=True)
class GalleryCase:
    """One missing case of the gallery: its external_ref, identity and photo."""

    ref: str
    name: str
    photo: Path


@dataclass
class Design:
    """Who is in the gallery and who is searched."""

    gallery: list[GalleryCase] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A short hash of the gallery (its refs and photos): gallery folders are reused by it."""
        text = "\n".join(f"{g.ref} {g.photo}" for g in self.gallery)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def lfw_people(lfw: Path) -> dict[str, list[Path]]:
    """Each LFW identity's photos, sorted by file name (``lfw/<Name>/<Name>_NNNN.jpg``)."""
    return {
        d.name: sorted(d.glob("*.jpg"))
        for d in sorted(lfw.iterdir())
        if d.is_dir() and d.name != "protocol" and d.name not in SAME_PERSON_TWICE
    }


def lfw_design(
    lfw: Path, *, mated: int, distractors: int, strangers: int, seed: int = 14
) -> Design:
    """The evaluation's gallery and probes (see the module's docstring), drawn with ``seed``.

    ``mated``, ``distractors`` and ``strangers`` count non-East-Asian LFW people; every name in
    ``EAST_ASIAN_SEVERAL`` and ``EAST_ASIAN_SINGLE`` found in ``lfw`` is used.
    """
    people = lfw_people(lfw)
    east_asian = set(EAST_ASIAN_SEVERAL) | set(EAST_ASIAN_SINGLE)
    missing = sorted(east_asian - set(people))
    if missing:
        raise ValueError(f"these East-Asian names are not in {lfw}: {', '.join(missing)}")
    rng = random.Random(seed)
    several = [n for n, p in people.items() if len(p) >= 2 and n not in east_asian]
    single = [n for n, p in people.items() if len(p) == 1 and n not in east_asian]
    rng.shuffle(several)
    rng.shuffle(single)
    if mated > len(several) or distractors + strangers > len(single):
        raise ValueError("LFW has too few people for these group sizes")
    singles_ea = list(EAST_ASIAN_SINGLE)
    rng.shuffle(singles_ea)
    half = len(singles_ea) // 2

    design = Design()
    for group, names in (("lfw_mated", several[:mated]), ("east_asian", EAST_ASIAN_SEVERAL)):
        for name in names:
            ref = _ref(name)
            design.gallery.append(GalleryCase(ref, name, people[name][0]))
            design.probes.append(Probe(f"p-{ref}", name, group, people[name][-1], ref))
    for name in single[:distractors] + singles_ea[:half]:
        design.gallery.append(GalleryCase(_ref(name), name, people[name][0]))
    for group, names in (
        ("lfw_strangers", single[distractors : distractors + strangers]),
        ("east_asian_strangers", singles_ea[half:]),
    ):
        for name in names:
            design.probes.append(Probe(f"p-{_ref(name)}", name, group, people[name][0], None))
    return design


def _ref(name: str) -> str:
    """An identity's external_ref: a hash, so that refs carry no names."""
    return "g-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def simulated_facts(name: str, seed: int = 14) -> Facts:
    """The simulated facts of an identity (see ``SIMULATION_NOTE``), the same on every run."""
    rng = random.Random(f"{seed}:{name}")
    birth_year = rng.randint(1940, 2000)
    date_missing = date(1995, 1, 1) + timedelta(days=rng.randint(0, 20 * 365))
    date_found = date_missing + timedelta(days=rng.randint(0, 10 * 365))
    return Facts(rng.choice(("female", "male")), birth_year, date_missing, date_found)


def gallery_manifest_rows(
    design: Design, *, photos_root: Path, seed: int = 14
) -> Iterable[dict[str, Any]]:
    """JSONL manifest rows of the gallery (missing cases with simulated facts, each photo dated
    the day the person went missing), photo paths relative to ``photos_root``."""
    for case in design.gallery:
        facts = simulated_facts(case.name, seed)
        yield {
            "kind": "missing",
            "agency": AGENCY,
            "external_ref": case.ref,
            "sex": facts.sex,
            "birth_year_min": facts.birth_year,
            "birth_year_max": facts.birth_year,
            "date_missing": facts.date_missing.isoformat(),
            "photos": [str(case.photo.relative_to(photos_root))],
        }


def probe_case(probe: Probe, *, with_facts: bool, seed: int = 14) -> tuple[dict[str, Any], str]:
    """(the found case's fields for ``POST /api/v1/cases``, the photo's ``taken_on`` or "")."""
    fields: dict[str, Any] = {"kind": "found", "agency": AGENCY, "external_ref": probe.ref}
    if not with_facts:
        return fields, ""
    facts = simulated_facts(probe.name, seed)
    fields |= {
        "sex": facts.sex,
        "birth_year_min": facts.birth_year - 5,
        "birth_year_max": facts.birth_year + 5,
        "date_found": facts.date_found.isoformat(),
    }
    return fields, facts.date_found.isoformat()


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Shown:
    """One candidate as the API showed it, in the list's order."""

    ref: str
    distance: float
    similarity: float
    flags: tuple[str, ...]
    score: float | None = None
    rank: int | None = None


@dataclass(frozen=True)
class Search:
    """One probe's list: what was shown, and which gallery case is the true one (if any)."""

    probe: Probe
    shown: tuple[Shown, ...]

    @property
    def true_position(self) -> int | None:
        """1-based position of the true case in the list, or None."""
        for position, candidate in enumerate(self.shown, 1):
            if candidate.ref == self.probe.true_ref:
                return position
        return None

    def nearest_first(self) -> Search:
        """The same list ordered by distance alone (as before facts reordered it)."""
        return Search(self.probe, tuple(sorted(self.shown, key=lambda c: c.distance)))

    @property
    def wrong(self) -> list[Shown]:
        return [c for c in self.shown if c.ref != self.probe.true_ref]


def summary(searches: Sequence[Search]) -> dict[str, Any]:
    """Per group: searches, true case in the list and first (mated groups), wrong candidates
    per search, share of searches with any wrong candidate, and how many wrong candidates were
    shown above the true one (and how many of those carry a contradicting fact); the true case
    first and the wrong ones above it also as they would be with the list nearest first."""
    groups: dict[str, list[Search]] = {}
    for search in searches:
        groups.setdefault(search.probe.group, []).append(search)
    return {group: _group_summary(items) for group, items in sorted(groups.items())}


def _group_summary(searches: list[Search]) -> dict[str, Any]:
    n = len(searches)
    wrong = [len(s.wrong) for s in searches]
    result: dict[str, Any] = {
        "searches": n,
        "wrong_per_search": round(sum(wrong) / n, 3),
        "any_wrong": round(sum(1 for w in wrong if w) / n, 4),
        "list_length_mean": round(sum(len(s.shown) for s in searches) / n, 3),
    }
    if searches[0].probe.true_ref is not None:
        positions = [s.true_position for s in searches]
        above = [c for s in searches for c in s.shown[: (s.true_position or 1) - 1]]
        nearest = [s.nearest_first() for s in searches]
        above_nearest = [c for s in nearest for c in s.shown[: (s.true_position or 1) - 1]]
        result |= {
            "true_in_list": round(sum(1 for p in positions if p) / n, 4),
            "true_first": round(sum(1 for p in positions if p == 1) / n, 4),
            "true_first_if_nearest_first": round(
                sum(1 for s in nearest if s.true_position == 1) / n, 4
            ),
            "wrong_above_true": len(above),
            "wrong_above_true_if_nearest_first": len(above_nearest),
            "wrong_above_true_contradicted": sum(
                1 for c in above if set(c.flags) & set(CONTRADICTIONS)
            ),
        }
    return result


def score_bands(
    searches: Sequence[Search], *, bands: int = 10, min_count: int = 20
) -> list[dict[str, Any]]:
    """The shown similarity against what it claims: for each band of width ``1 / bands``, how
    many candidates were shown in it and the share of them that are the true case. A band with
    fewer than ``min_count`` candidates is reported but not judged (``within_10_points`` None).
    Strangers count: every candidate shown to a stranger is wrong."""
    rows: list[dict[str, Any]] = []
    for band in range(bands):
        low, high = band / bands, (band + 1) / bands
        inside = [
            (c.similarity, c.ref == s.probe.true_ref)
            for s in searches
            for c in s.shown
            if low <= c.similarity < high or (band == bands - 1 and c.similarity == 1.0)
        ]
        count = len(inside)
        observed = sum(1 for _, t in inside if t) / count if count else None
        mean = sum(p for p, _ in inside) / count if count else None
        judged = observed is not None and count >= min_count
        rows.append(
            {
                "band": [round(low, 2), round(high, 2)],
                "candidates": count,
                "mean_shown": None if mean is None else round(mean, 4),
                "observed_true": None if observed is None else round(observed, 4),
                "within_10_points": (
                    (low - 0.1 <= observed <= high + 0.1) if judged and observed is not None
                    else None
                ),
            }
        )  # fmt: skip
    return rows
