"""The evaluation of what a reviewer sees: who is searched, the simulated facts, and what the
lists come to (hand-made lists; the named people checked against the real LFW folder)."""

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from reunite.calibration import Calibration
from reunite.evaluation import fitted_logistic
from reunite.evaluation.candidate_lists import (
    EAST_ASIAN_SEVERAL,
    EAST_ASIAN_SINGLE,
    Probe,
    Search,
    Shown,
    lfw_design,
    score_bands,
    simulated_facts,
    summary,
)


def test_the_design_names_real_people_and_keeps_strangers_out_of_the_gallery(faces_dir):
    lfw = faces_dir / "lfw"
    design = lfw_design(lfw, mated=20, distractors=50, strangers=10)
    assert len(set(EAST_ASIAN_SEVERAL)) == len(EAST_ASIAN_SEVERAL) == 64
    assert not set(EAST_ASIAN_SEVERAL) & set(EAST_ASIAN_SINGLE)
    for name in EAST_ASIAN_SEVERAL:
        assert len(list((lfw / name).glob("*.jpg"))) >= 2, name
    for name in EAST_ASIAN_SINGLE:
        assert len(list((lfw / name).glob("*.jpg"))) == 1, name
    gallery_refs = {g.ref for g in design.gallery}
    gallery_names = {g.name for g in design.gallery}
    assert len(gallery_refs) == len(design.gallery)
    for probe in design.probes:
        if probe.group.endswith("strangers"):
            assert probe.true_ref is None and probe.name not in gallery_names
        else:
            assert probe.true_ref in gallery_refs
            [enrolled] = [g for g in design.gallery if g.ref == probe.true_ref]
            assert enrolled.name == probe.name and enrolled.photo != probe.photo
    assert all(probe.name not in probe.ref for probe in design.probes)  # refs carry no names
    assert lfw_design(lfw, mated=20, distractors=50, strangers=10).fingerprint() == (
        design.fingerprint()
    )
    with pytest.raises(ValueError, match="too few"):
        lfw_design(lfw, mated=100_000, distractors=1, strangers=1)


def test_simulated_facts_are_the_same_each_run_and_possible():
    for name in ("Hu_Jintao", "Zhang_Ziyi", "Colin_Powell"):
        facts = simulated_facts(name)
        assert facts == simulated_facts(name)
        assert 1940 <= facts.birth_year <= 2000 and facts.sex in ("female", "male")
        assert facts.birth_year < facts.date_missing.year
        assert facts.date_missing <= facts.date_found <= date.today()


def shown(ref: str, distance: float, similarity: float, *flags: str) -> Shown:
    return Shown(ref=ref, distance=distance, similarity=similarity, flags=flags)


def test_summary_counts_what_a_reviewer_is_shown():
    photo = Path("x.jpg")
    mated = [
        Search(Probe("p1", "A", "mated", photo, "a"), (shown("a", 0.3, 0.9), shown("b", 0.5, 0.1))),
        Search(
            Probe("p2", "B", "mated", photo, "b"),
            (shown("b", 0.45, 0.6), shown("c", 0.4, 0.2, "sex_differs")),
        ),
        Search(Probe("p3", "C", "mated", photo, "c"), ()),
    ]
    strangers = [Search(Probe("s1", "S", "strangers", photo, None), (shown("a", 0.5, 0.05),))]
    result = summary([*mated, *strangers])
    assert result["mated"] == {
        "searches": 3,
        "wrong_per_search": round(2 / 3, 3),
        "any_wrong": round(2 / 3, 4),
        "list_length_mean": round(4 / 3, 3),
        "true_in_list": round(2 / 3, 4),
        "true_first": round(2 / 3, 4),
        "true_first_if_nearest_first": round(1 / 3, 4),
        "wrong_above_true": 0,
        "wrong_above_true_if_nearest_first": 1,
        "wrong_above_true_contradicted": 0,
    }
    assert result["strangers"]["any_wrong"] == 1.0 and "true_in_list" not in result["strangers"]
    bands = score_bands([*mated, *strangers], min_count=1)
    assert bands[0]["candidates"] == 1 and bands[0]["observed_true"] == 0.0  # the stranger's
    assert bands[9]["candidates"] == 1 and bands[9]["within_10_points"] is True
    assert bands[6]["observed_true"] == 1.0 and bands[6]["within_10_points"] is False


def test_the_search_fit_is_used_where_a_candidate_has_a_score():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(4000, 2))
    labels = rng.random(4000) < 1 / (
        1 + np.exp(-(-1.0 + 2.0 * features[:, 0] - 3.0 * features[:, 1]))
    )
    weights = fitted_logistic(features, labels)
    assert weights == pytest.approx([-1.0, 2.0, -3.0], abs=0.25)

    pairs = Calibration("m", "p", slope=40.0, midpoint=0.6, fitted_on="", pairs=1, created_at="")
    assert pairs.similarity(0.5, 3.0) == pairs.similarity(0.5) > 0.98  # no search fit
    both = Calibration(
        "m", "p", slope=40.0, midpoint=0.6, fitted_on="", pairs=1, created_at="",
        search={"intercept": -4.0, "score_weight": 2.3, "distance_weight": -12.4},
    )  # fmt: skip
    assert both.similarity(0.5) == pairs.similarity(0.5)  # no score: the pair fit
    stranger, standout = both.similarity(0.5, 2.3), both.similarity(0.5, 6.0)
    assert stranger < 0.1 < 0.9 < standout


def test_the_similarity_basis_names_the_fit_the_similarity_used():
    pairs = Calibration("m", "p", slope=40.0, midpoint=0.6, fitted_on="", pairs=1, created_at="")
    both = Calibration(
        "m", "p", slope=40.0, midpoint=0.6, fitted_on="", pairs=1, created_at="",
        search={"intercept": -4.0, "score_weight": 2.3, "distance_weight": -12.4},
    )  # fmt: skip
    assert both.similarity_basis(2.3) == "search"
    assert both.similarity(0.5, 2.3) != both.similarity(0.5)  # the search fit, indeed
    assert both.similarity_basis(None) == "pair"  # no cohort: no score
    assert both.similarity_basis(0.0) == "search"  # a score of 0 is a score
    assert pairs.similarity_basis(3.0) == pairs.similarity_basis(None) == "pair"
