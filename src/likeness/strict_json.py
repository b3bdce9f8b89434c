"""The one JSON reader for text from outside this process: files, database rows, request bodies.

JSON leaves duplicate member names to the reader: Python keeps the last, SQLite's ``json_extract``
and many JavaScript tools the first. A grant reading ``{"uses": ["mv"], "uses": ["ads"]}`` could
be shown to its holder as one thing and enforced here as another, so an object naming a member
twice is refused, whichever value came last.

>>> loads('{"uses": ["music_video"]}')
{'uses': ['music_video']}
>>> loads('{"uses": ["music_video"],\\n "uses": ["ads"]}')
Traceback (most recent call last):
...
likeness.strict_json.DuplicateMemberError: duplicate member name 'uses' at $.uses: line 2 column 2 (char 27)
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

#: How much of a member's name a message shows (a name can be as long as the text).
MAX_SHOWN = 80
#: How much of a JSON path a message shows: of each member's name (the member itself is shown
#: beside it), and of the whole path, its end kept (a path can be 100,000 steps deep).
MAX_STEP_SHOWN = 20
MAX_PATH_SHOWN = 200


class DuplicateMemberError(json.JSONDecodeError):
    """A JSON object names a member twice. A ``JSONDecodeError`` (so a ``ValueError``): every
    reader that says "not JSON" for a syntax error says this too, with the member's name, its
    JSON path (``path``, e.g. ``$.grant.uses``) and where its second name starts (``pos``,
    ``lineno``, ``colno``, as for a syntax error)."""

    def __init__(self, member: str, doc: str, pos: int, path: str) -> None:
        shown = repr(member) if len(member) <= MAX_SHOWN else f"{member[:MAX_SHOWN]!r}... ({len(member)} characters)"
        super().__init__(f"duplicate member name {shown} at {path}", doc, pos)
        self.member, self.path = member, path

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its own arguments (scan workers send errors back across processes).
        return self.__class__, (self.member, self.doc, self.pos, self.path)


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
        doc = _doc(text)
        # The hook sees an object's members, not where they were: the text is walked again
        # (only on this path) for the first second name in reading order.
        found = first_duplicate(doc)
        member, pos, path = found if found is not None else (duplicate.member, 0, "$")
        raise DuplicateMemberError(member, doc, pos, path) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", _doc(text), 0) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            raise
        # Python's int() refuses more digits than its limit (a guard against quadratic time) with
        # a bare ValueError, which no "not JSON" handler catches.
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"a number of more than {limit} digits", _doc(text), 0) from None


def first_duplicate(doc: str) -> tuple[str, int, str] | None:
    """``(member, index of its second name's opening quote, JSON path)`` of the first member
    an object of ``doc`` names twice, in reading order; ``None`` when none does (or ``doc`` is
    not JSON up to one). A walk with its own stack, so nesting depth costs no recursion.

    >>> first_duplicate('[{"a": 1}, {"b": {"c": [1, 2]}, "b": 3}]')
    ('b', 32, '$[1].b')
    """
    # Each open container: [names seen, current member] for an object, [None, index] for an array.
    stack: list[list[Any]] = []
    expecting_name = False
    i = 0
    while (found := _SIGNIFICANT.search(doc, i)) is not None:
        i = found.start()
        char = doc[i]
        if char == '"':
            string = _STRING.match(doc, i)
            if string is None:
                return None
            if expecting_name:
                text, names = json.loads(string.group()), stack[-1][0]
                if text in names:
                    return text, i, _path(stack[:-1]) + _step(text)
                names.add(text)
                stack[-1][1], expecting_name = text, False
            i = string.end()
            continue
        if char == "{":
            stack.append([set(), None])
            expecting_name = True
        elif char == "[":
            stack.append([None, 0])
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
            expecting_name = False
        elif char == "," and stack:
            if stack[-1][0] is None:
                stack[-1][1] += 1
            else:
                expecting_name = True
        i += 1
    return None


#: What a walk stops at: whitespace, ':' and the insides of numbers and literals say nothing.
_SIGNIFICANT = re.compile(r'["{}\[\],]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _step(member: Any) -> str:
    """One step of a JSON path: ``[3]`` for an array index, ``.name`` or ``["a b"]`` for a member."""
    if isinstance(member, int):
        return f"[{member}]"
    if _NAME.fullmatch(member) and len(member) <= MAX_STEP_SHOWN:
        return f".{member}"
    cut = "..." if len(member) > MAX_STEP_SHOWN else ""
    # Hangul as written; a lone surrogate (JSON can name one) as its escape, so the message can be
    # written out (a 422's body, a terminal).
    quoted = json.dumps(member[:MAX_STEP_SHOWN], ensure_ascii=False).encode("utf-8", "backslashreplace")
    return f"[{quoted.decode('utf-8')}{cut}]"


def _path(stack: list[list[Any]]) -> str:
    path = "$" + "".join(_step(frame[1]) for frame in stack)
    return path if len(path) <= MAX_PATH_SHOWN else "$..." + path[-MAX_PATH_SHOWN:]


def _doc(text: str | bytes) -> str:
    """``text`` as ``json.loads`` reads it (bytes in UTF-8, -16 or -32)."""
    return text if isinstance(text, str) else text.decode(json.detect_encoding(text), "surrogatepass")
