"""The site's two languages: which one a request gets, and a bilingual value in it.

Vietnamese is the default (``[site] default_language``); ``?lang=en`` switches, and the choice is
kept in the ``lang`` cookie so the next page keeps it. A value missing in the chosen language
falls back to the other one (records may have no English), never to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..presentation.records import Text

LANGUAGES = ("vi", "en")
COOKIE = "lang"


def choose(query: str | None, cookie: str | None, default: str) -> str:
    """The request's language: ``?lang=``, else the cookie, else the site default."""
    for value in (query, cookie):
        if value in LANGUAGES:
            return value
    return default if default in LANGUAGES else LANGUAGES[0]


def pick(text: Text, language: str) -> str:
    """``text`` in ``language``, or in the other language when it has none there."""
    first, second = (text.vi, text.en) if language == "vi" else (text.en, text.vi)
    return first or second


def other(language: str) -> str:
    return "en" if language == "vi" else "vi"


def lookup(table: Mapping[str, Text], key: str, language: str) -> str:
    """A UI string by key from a bilingual table (KeyError: a missing string is a bug, not a blank)."""
    return pick(table[key], language)
