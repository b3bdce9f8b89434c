"""The one JSON reader for text from outside this process: files, database rows, request bodies.

JSON leaves duplicate member names to the reader: Python keeps the last, SQLite's ``json_extract``
and many JavaScript tools the first. A grant reading ``{"uses": ["mv"], "uses": ["ads"]}`` could
be shown to its holder as one thing and enforced here as another, so an object naming a member
twice is refused, whichever value came last.

>>> loads('{"uses": ["music_video"]}')
{'uses': ['music_video']}
>>> loads('{"uses": ["music_video"], "uses": ["ads"]}')
Traceback (most recent call last):
...
likeness.strict_json.DuplicateMemberError: duplicate member name 'uses' in a JSON object
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: How much of a member's name a message shows (a name can be as long as the text).
MAX_SHOWN = 80


class DuplicateMemberError(json.JSONDecodeError):
    """A JSON object names a member twice. A ``JSONDecodeError`` (so a ``ValueError``): every
    reader that says "not JSON" for a syntax error says this too, with the member's name."""

    def __init__(self, member: str, doc: str) -> None:
        # No position: the decoder's object hook sees an object's members, not where they were.
        shown = repr(member) if len(member) <= MAX_SHOWN else f"{member[:MAX_SHOWN]!r}... ({len(member)} characters)"
        ValueError.__init__(self, f"duplicate member name {shown} in a JSON object")
        self.msg = str(self)
        self.doc, self.pos, self.lineno, self.colno = doc, 0, 1, 1
        self.member = member

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its own arguments (scan workers send errors back across processes).
        return self.__class__, (self.member, self.doc)


class _Duplicate(Exception):
    def __init__(self, member: str) -> None:
        self.member = member


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return members


def loads(text: str | bytes) -> Any:
    """``json.loads`` refusing an object that names a member twice (:class:`DuplicateMemberError`)
    and text nested deeper than the reader can hold or a number longer than Python reads (each a
    ``JSONDecodeError``, where ``json.loads`` raises ``RecursionError`` or a bare ``ValueError``,
    which no "not JSON" handler catches). Bytes are read as
    ``json.loads`` reads them (UTF-8, -16 or -32)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_members)
    except _Duplicate as duplicate:
        raise DuplicateMemberError(duplicate.member, _doc(text)) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", _doc(text), 0) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            raise
        # Python's int() refuses more digits than its limit (a guard against quadratic time) with
        # a bare ValueError, which no "not JSON" handler catches.
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"a number of more than {limit} digits", _doc(text), 0) from None


def _doc(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", errors="replace")
