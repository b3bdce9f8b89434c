"""Display names of organisations, subjects and rights holders: what a person reads.

A rights holder decides on a portal page that says "{organisation} asks for your consent", and a
fan reads "made by {organisation}" on the public page; neither shows the slug. So a name must
read as itself: no invisible or direction-changing characters (zero-width spaces, joiners, the
bidirectional overrides and isolates), no control characters, stored in NFC; and a new
organisation's or subject's name must not look like one the workspace already has
(:func:`name_skeleton`: case, accents, compatibility forms, spacing and punctuation, and the
Cyrillic and Greek letters that are drawn as Latin ones).

>>> display_name("  Studio Haneul ", "organisation name")
'Studio Haneul'
>>> name_skeleton("Studio Наneul") == name_skeleton("studio-haneul") == name_skeleton("STUDIO HANEUL")
True
>>> name_skeleton("하늘 스튜디오") == name_skeleton("하늘스튜디오")
True
"""

from __future__ import annotations

import unicodedata

from likeness.errors import RegistryError

MAX_NAME_CHARS = 200

#: Letters of other scripts drawn like a Latin letter (Unicode's confusables for the scripts a
#: name of this product meets, lower case after ``casefold``), and Latin and digit shapes that
#: pass for one another (``l``/``I``/``1``, ``O``/``0``).
_LOOKALIKE = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "l", "ї": "l",
        "ј": "j", "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r",
        "ѕ": "s", "т": "t", "у": "y", "ү": "y", "х": "x", "ԝ": "w", "ь": "b", "п": "n", "и": "u",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "l", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "μ": "u", "ϲ": "c", "ς": "c",
        # Latin and digits that pass for each other
        "i": "l", "1": "l", "|": "l", "0": "o", "ı": "l", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ʏ": "y",
    }
)  # fmt: skip


def display_name(text: str, what: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """``text`` as a display name: stripped of surrounding spaces and in NFC; ``RegistryError``
    naming ``what`` when it is empty, longer than ``max_chars``, or holds a control,
    format (zero-width, bidirectional), private-use or unassigned character."""
    name = unicodedata.normalize("NFC", str(text)).strip()
    if not name:
        raise RegistryError(f"{what}: empty; give the name people know it by")
    if len(name) > max_chars:
        raise RegistryError(f"{what}: {len(name)} characters; at most {max_chars}")
    for ch in name:
        if unicodedata.category(ch).startswith("C") or (ch.isspace() and ch != " "):
            code = f"U+{ord(ch):04X}"
            label = unicodedata.name(ch, "a control character")
            raise RegistryError(
                f"{what} '{name.encode('unicode_escape').decode('ascii')}': holds {code} ({label}), "
                f"which is invisible or changes how the text around it reads; use letters, digits, spaces "
                f"and punctuation"
            )
    return name


def request_purpose(text: str) -> str:
    """A request's purpose as the holder will read it (the portal shows it as written):
    ``RegistryError`` when it holds a control character other than a line break, or a format
    (zero-width, bidirectional), private-use or unassigned one, which could make it read
    otherwise than what is signed."""
    for ch in text:
        if ch != "\n" and unicodedata.category(ch).startswith("C"):
            raise RegistryError(
                f"purpose '{text.encode('unicode_escape').decode('ascii')}': holds U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'a control character')}), which is invisible or changes how the "
                f"text around it reads; write it in letters, digits, spaces and punctuation"
            )
    return text


def name_skeleton(name: str) -> str:
    """What ``name`` looks like, for comparing names: compatibility forms folded (NFKD), accents
    and other combining marks dropped, case folded, lookalike letters mapped to one, and only
    letters and digits kept (so spaces, hyphens and dots do not tell names apart)."""
    folded = unicodedata.normalize("NFKD", name).casefold()
    letters = "".join(ch for ch in folded if not unicodedata.combining(ch))
    mapped = unicodedata.normalize("NFKD", letters.translate(_LOOKALIKE))
    return unicodedata.normalize("NFC", "".join(ch for ch in mapped if ch.isalnum()))
