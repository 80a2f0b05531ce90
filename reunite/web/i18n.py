"""Simplified Chinese and English for the staff pages: words, dates and error messages.

The language comes from the ``lang`` cookie (set by the switch on every page), else from the
browser's ``Accept-Language``, else English. Messages are looked up by key; a key missing from
one language is a bug that ``tests/web/test_i18n.py`` catches.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any

from reunite.config import MIN_COHORT_SIZE
from reunite.errors import ReuniteError
from reunite.web.words import MESSAGES

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"

_EN_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def language_of(cookie: str | None, accept_language: str | None) -> str:
    """The page language: a valid ``lang`` cookie, else the best Accept-Language match."""
    if cookie in LANGUAGES:
        return cookie
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def has_text(lang: str, key: str) -> bool:
    """Whether ``key`` has words in ``lang``."""
    return key in MESSAGES[lang]


def text(lang: str, key: str, **values: Any) -> str:
    """The message ``key`` in ``lang``, with ``values`` filled in."""
    template = MESSAGES[lang].get(key) or MESSAGES[DEFAULT_LANGUAGE][key]
    return template.format(**values) if values else template


def date_text(lang: str, value: date | datetime | None) -> str:
    """A date as people write it: ``2024年3月5日`` or ``5 Mar 2024``; ``—`` when unknown."""
    if value is None:
        return text(lang, "unknown")
    if isinstance(value, datetime):
        value = value.date()
    if lang == "zh-CN":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


_ZH_ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Hong_Kong": "香港时间", "UTC": "协调世界时"}


def time_text(lang: str, value: datetime, zone: tzinfo) -> str:
    """A moment in ``zone``, as people write it, with the zone named (a reader elsewhere must
    not take it for their own time): ``5 Mar 2024 14:05 (Asia/Shanghai)``, and in Chinese
    the date, the time and the zone in full-width brackets, its Chinese name first if known
    (北京时间 Asia/Shanghai)."""
    local = value.astimezone(zone)
    name = str(getattr(zone, "key", None) or local.tzname() or "UTC")
    if lang == "zh-CN":
        named = f"{_ZH_ZONE_NAMES[name]} {name}" if name in _ZH_ZONE_NAMES else name
        return f"{date_text(lang, local.date())} {local:%H:%M}\uff08{named}\uff09"
    return f"{date_text(lang, local.date())} {local:%H:%M} ({name})"


def percent_text(probability: float) -> str:
    """A probability for people: never "100%" or "0%", which a calibration cannot promise."""
    if probability >= 0.99:
        return "≥99%"
    if probability <= 0.01:
        return "≤1%"
    return f"{probability * 100:.0f}%"


CLOSENESS_BANDS = (("very_close", 0.15), ("close", 0.05), ("edge", 0.0))
"""How close two faces are, in words, from their distance ``d`` and the tolerance ``t`` (the
farthest a candidate is proposed at, same-age): ``very_close`` for ``d <= t - 0.15``, ``close``
for ``d <= t - 0.05``, ``edge`` (near the limit) for ``d <= t``, else ``beyond`` (kept only as a
cross-age pair). With the default 0.55: 0.40 and 0.50, where most true pairs on LFW lie below
0.45 (docs/matching.md)."""


def closeness(distance: float, tolerance: float) -> str:
    """The band of ``CLOSENESS_BANDS`` that ``distance`` falls in, else ``beyond``."""
    for band, margin in CLOSENESS_BANDS:
        if distance <= tolerance - margin:
            return band
    return "beyond"


def closeness_text(lang: str, distance: float, tolerance: float) -> str:
    """How close two faces are, in words (``closeness``)."""
    return text(lang, f"closeness.{closeness(distance, tolerance)}")


def no_chance_text(lang: str, score: float | None, cohort_size: int) -> str:
    """Why a candidate shows no chance that it is the person (its similarity is not the search
    fit's, ``calibration.SimilarityBasis``): too few cases of the other kind to compare with
    (no score), comparing turned off (``cohort_size`` 0), or no search calibration."""
    if score is not None:
        why = text(lang, "chance.uncalibrated")
    elif cohort_size == 0:
        why = text(lang, "chance.off")
    else:
        why = text(lang, "chance.too_few", needed=MIN_COHORT_SIZE)
    return text(lang, "candidate.chance_unknown", why=why)


def error_text(lang: str, error: ReuniteError) -> str:
    """A library error as a sentence in ``lang``.

    Field errors name each field in ``lang`` (with the validator's English words only in
    English). An error with no words of its own, or whose words carry its English detail,
    keeps that detail in English only: in another language it reads as its code's general
    words (``error.<code>.general``), else ``error.general``, never half in English.
    """
    problems = error.details.get("errors")
    if error.code == "invalid_field" and problems:
        return " ".join(
            text(
                lang,
                "error.field",
                field=field_label(lang, p.get("field")),
                message=p.get("message", ""),
            )
            for p in problems
        )
    key = f"error.{error.code}"
    if error.details.get("reason") == "csrf":
        key = "error.stale_form"
    if f"{key}.{error.details.get('reason')}" in MESSAGES[lang]:
        key = f"{key}.{error.details.get('reason')}"  # e.g. why an undo was refused
    if key not in MESSAGES[lang] or _needs_english(lang, key):
        general = f"error.{error.code}.general"
        if lang != DEFAULT_LANGUAGE:
            return text(lang, general if general in MESSAGES[lang] else "error.general")
        if key not in MESSAGES[lang]:
            return error.message
    values = {
        **error.details,
        "detail": error.message,
        "count": len(error.details.get("boxes", [])),
    }
    return text(lang, key, **values)


def _needs_english(lang: str, key: str) -> bool:
    """Whether the words of ``key`` carry the error's English ``detail`` (in ``lang``)."""
    return lang != DEFAULT_LANGUAGE and "{detail}" in MESSAGES[lang][key]


def field_label(lang: str, field: str | None) -> str:
    """A case field's label in ``lang`` (its name when there is no label)."""
    if not field:
        return text(lang, "error.form")
    key = f"field.{field}"
    return text(lang, key) if key in MESSAGES[lang] else field


def flag_text(lang: str, flag: Any) -> str:
    """A flag in ``lang``. A code with no words yet, or facts its words do not expect, reads as
    the code in plain letters ("Flag: face chosen automatically"), never as an error page."""
    if f"flag.{flag.code}" in MESSAGES[DEFAULT_LANGUAGE]:
        try:
            return text(lang, f"flag.{flag.code}").format(**_flag_values(lang, flag))
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return text(lang, "flag.unnamed", code=str(flag.code).replace("_", " "))


def range_text(ends: Any) -> str:
    """A range of whole numbers (ages, years) as people write it, its ends joined by an en
    dash (``71\u201373``), or one number (``71``) when both ends are the same."""
    low, high = ends
    return str(low) if low == high else f"{low}\u2013{high}"


def _flag_values(lang: str, flag: Any) -> dict[str, Any]:
    """A flag's facts as its words use them: sexes and dates in ``lang``, ranges split."""
    facts = dict(flag.facts)
    if flag.code == "sex_differs":
        facts = {k: text(lang, f"sex.{v}") for k, v in facts.items()}
    if flag.code == "age_implausible":
        facts |= {
            "missing_ages": range_text(facts["missing_age"]),
            "apparent_ages": range_text(facts["apparent_age"]),
            "on": date_text(lang, date.fromisoformat(facts["on"])),
        }
    if flag.code == "photo_age_gap":
        facts |= {
            "missing_ages": range_text(facts["missing_photo_age"]),
            "found_ages": range_text(facts["found_photo_age"]),
        }
    if flag.code == "face_chosen_automatically":
        facts = {
            "side": text(lang, f"flag.side.{facts['side']}"),
            "choice": text(lang, f"flag.choice.{facts['choice']}"),
        }
    if flag.code == "found_before_missing":
        facts |= {
            k: date_text(lang, date.fromisoformat(facts[k])) for k in ("date_found", "date_missing")
        }
    if flag.code == "no_longer_proposed":
        facts["since"] = date_text(lang, datetime.fromisoformat(facts["since"]).date())
    return facts
