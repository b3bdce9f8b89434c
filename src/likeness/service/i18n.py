"""Korean and English for the console, from Babel message catalogues.

English is the source language (the msgids); ``locales/ko/LC_MESSAGES/messages.po`` holds the
Korean. The catalogue is read with Babel at start-up (no compile step to forget); extract new
strings with ``pybabel extract -F babel.cfg`` (docs/service.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("en", "ko")
DEFAULT_LANGUAGE = "en"
LOCALES = Path(__file__).parent / "locales"


@cache
def catalogue(language: str) -> dict[str, str]:
    """msgid -> translation for ``language`` (empty for English)."""
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not path.is_file():
        return {}
    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    return {str(m.id): str(m.string) for m in po if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def translator(language: str) -> Callable[..., str]:
    """``_("text", **values)``: the translation (or the text), then ``str.format(**values)``."""
    messages = catalogue(language if language in LANGUAGES else DEFAULT_LANGUAGE)

    def gettext(text: str, **values: object) -> str:
        translated = messages.get(text, text)
        return translated.format(**values) if values else translated

    return gettext


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice, else the first supported language the browser asks for, else English."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in LANGUAGES:
            return tag[:2]
    return DEFAULT_LANGUAGE
