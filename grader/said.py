"""Text a student reads, said in English and Korean at once.

A `Said` is a `str` (its English), so every place that takes a check's message keeps
working; it also carries `.ko`, which the feedback shows on a Korean page. Checks and the
comparison helpers build their messages with `say(en, ko)`:

    assert k == 3, say(f"{k} hidden nodes", f"은닉 노드 {k}개")
"""

from __future__ import annotations

from collections.abc import Iterable


class Said(str):
    """English text with its Korean translation in `.ko`."""

    ko: str

    def __new__(cls, en: str, ko: str) -> "Said":
        said = super().__new__(cls, en)
        said.ko = ko
        return said

    def __reduce__(self):  # keep `.ko` through pickling (exceptions cross process pools)
        return Said, (str(self), self.ko)


def say(en: str, ko: str) -> Said:
    return Said(en, ko)


def korean(text: object) -> str:
    """The Korean of a text, or "" when it was written only in English."""
    return text.ko if isinstance(text, Said) else ""


def in_language(text: str, lang: str) -> str:
    """The text as a page in `lang` shows it (English when no Korean was given)."""
    return (korean(text) or str(text)) if lang == "ko" else str(text)


def joined(parts: Iterable[str], sep: str = "; ") -> str:
    """Parts joined in both languages: a `Said` when every part has its Korean."""
    parts = list(parts)
    en = sep.join(str(p) for p in parts)
    if parts and all(korean(p) for p in parts):
        return Said(en, sep.join(korean(p) for p in parts))
    return en
