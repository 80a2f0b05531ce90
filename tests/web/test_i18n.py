import string
from datetime import date

import pytest

from reunite import errors
from reunite.review import Flag
from reunite.web import i18n, words
from reunite.web.i18n import flag_text


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_message_exists_in_both_languages_with_the_same_placeholders():
    english, chinese = words.MESSAGES["en"], words.MESSAGES["zh-CN"]
    assert set(english) == set(chinese)
    for key in english:
        assert placeholders(english[key]) == placeholders(chinese[key]), key


def test_every_error_a_photo_can_raise_has_a_translation():
    for error in (
        errors.NoFaceFound,
        errors.MultipleFaces,
        errors.UnsupportedImage,
        errors.UnreadableImage,
        errors.ImageTooSmall,
        errors.ImageTooLarge,
    ):
        assert f"error.{error.code}" in words.MESSAGES["zh-CN"], error.code
    text = i18n.error_text("zh-CN", errors.MultipleFaces("x", boxes=[{}, {}]))
    assert "2" in text and "人脸" in text


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "fr-FR,zh-TW;q=0.5", "zh-CN"),
        (None, "en;q=0.2,zh;q=0.9", "zh-CN"),
        (None, None, "en"),
        ("en", "zh-CN", "en"),
        ("xx", "zh-CN", "zh-CN"),
    ],
)
def test_language_from_cookie_then_browser(cookie, header, expected):
    assert i18n.language_of(cookie, header) == expected


def test_dates_as_people_write_them():
    assert i18n.date_text("zh-CN", date(2024, 3, 5)) == "2024年3月5日"
    assert i18n.date_text("en", date(2024, 3, 5)) == "5 Mar 2024"
    assert i18n.date_text("en", None) == "—"


def test_a_candidate_no_longer_proposed_says_since_when_in_both_languages():
    from reunite.review import Flag
    from reunite.web.i18n import flag_text

    flag = Flag("no_longer_proposed", {"since": "2024-03-05T08:30:00+00:00"})
    assert flag_text("en", flag).startswith("No longer proposed: since 5 Mar 2024")
    assert flag_text("zh-CN", flag).startswith("已不再推荐：自 2024年3月5日 起")


def test_a_flag_with_no_words_yet_reads_as_its_code():
    assert flag_text("en", Flag("a_future_check")) == "Flag: a future check"
    assert flag_text("zh-CN", Flag("a_future_check", {"at": "x"})) == "提示：a future check"
    assert flag_text("en", Flag("sex_differs")) == "Flag: sex differs"  # facts it cannot use
    words = flag_text("zh-CN", Flag("sex_differs", {"found": "male", "missing": "female"}))
    assert words == i18n.text("zh-CN", "flag.sex_differs", found="男", missing="女")


def test_closeness_in_words_has_bands_below_the_tolerance():
    bands = [i18n.closeness(d, 0.55) for d in (0.2, 0.40, 0.41, 0.50, 0.511, 0.55, 0.551, 0.7)]
    assert bands == ["very_close"] * 2 + ["close"] * 2 + ["edge"] * 2 + ["beyond"] * 2
    assert i18n.closeness(0.511, 0.7) == "very_close"  # against the tolerance set, not 0.55
    assert i18n.closeness_text("zh-CN", 0.511, 0.55) == "接近提议的上限"
    assert i18n.closeness_text("en", 0.3, 0.55) == "very close"


def test_no_chance_says_why_in_both_languages():
    assert "at least 30 cases" in i18n.no_chance_text("en", None, 100)
    assert "至少 30 个" in i18n.no_chance_text("zh-CN", None, 100)
    assert "turned off" in i18n.no_chance_text("en", None, 0)
    assert "校准" in i18n.no_chance_text("zh-CN", 3.0, 100)


def test_an_age_range_with_equal_ends_reads_as_one_age():
    implausible = Flag(
        "age_implausible",
        {"missing_age": [71, 71], "apparent_age": [30, 40], "gap_years": 31, "on": "2024-03-05"},
    )
    assert "应为 71 岁，" in flag_text("zh-CN", implausible)
    assert "71–71" not in flag_text("zh-CN", implausible)
    assert "was 71, the found person looks 30–40" in flag_text("en", implausible)
    gap = Flag(
        "photo_age_gap",
        {"missing_photo_age": [20, 20], "found_photo_age": [40, 42], "gap_years": 20},
    )
    assert "(20 in the missing person's photo, 40–42 in the found" in flag_text("en", gap)
    assert "走失人员照片中 20 岁，受助人员照片中 40–42 岁" in flag_text("zh-CN", gap)
    assert i18n.range_text((1960, 1960)) == "1960" and i18n.range_text([1, 2]) == "1–2"
