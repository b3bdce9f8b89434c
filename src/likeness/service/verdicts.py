"""A verdict in words, one source for the public page's card and the console's result pages.

The texts are English msgids that ``locales/ko`` translates (``N_`` marks them for
``pybabel extract``); each page translates them with its own language's ``_``. The verifier's
own summary and evidence sentences stay English (they come from ``likeness.verify``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def N_(text: str) -> str:  # noqa: N802 (gettext's marker name)
    """Mark ``text`` for extraction; it is translated where it is shown."""
    return text


#: verdict code -> its headline; ``{artist}`` is the recognised artist.
VERDICT_HEADLINES = {
    "authorized-synthetic": N_("Made with AI, with the artist’s consent"),
    "synthetic-consent-revoked": N_("Made with AI, but the consent is no longer in force"),
    "synthetic-other-issuer": N_("Made with AI by someone else"),
    "tampered": N_("Changed after it was signed"),
    "enrolled-artist-suspected-manipulation": N_("{artist} appears, and the face looks manipulated"),
    "suspected-manipulation": N_("A face here looks manipulated"),
    "enrolled-artist-unlabelled": N_("{artist} appears, with no AI label or record"),
    "no-enrolled-artist": N_("No artist of this agency found"),
    "no-face": N_("No face found"),
    "error": N_("We could not read this file"),
}

#: The headline of a verdict whose picture shows our visible label with no watermark or
#: manifest behind it, where the plain headline would say "no AI label": the fan sees one.
LABEL_ONLY_HEADLINES = {
    "enrolled-artist-unlabelled": N_("{artist} appears, with an AI label but no record behind it"),
}


#: The headline of ``synthetic-consent-revoked`` for a grant state the plain one gets wrong:
#: a grant whose period has not begun is not "no longer" in force.
GRANT_STATE_HEADLINES = {
    "not_yet_valid": N_("Made with AI, but the consent is not in force yet"),
}


def named_grant_state(verification: dict[str, Any]) -> str | None:
    """The state today of the grant a ``likeness.verify/1.1`` object's verdict names: its
    watermark's grant, else its manifest's consent assertion (the card's grant too).

    >>> named_grant_state({"watermark": {"grant": None}, "c2pa": {"consent": {"state": "altered"}}})
    'altered'
    """
    grant = (verification.get("watermark") or {}).get("grant") or (verification.get("c2pa") or {}).get("consent")
    return (grant or {}).get("state")


def shows_label_only(verification: dict[str, Any]) -> bool:
    """Whether a ``likeness.verify/1.1`` object found the visible AI label and neither our
    watermark nor a C2PA manifest: a label anyone can draw, which proves nothing.

    >>> shows_label_only({"visible_label": {"present": True}, "watermark": {"found": False}, "c2pa": {"present": False}})
    True
    >>> shows_label_only({"visible_label": {"present": True}, "watermark": {"found": True}, "c2pa": {"present": False}})
    False
    """
    label = verification.get("visible_label") or {}
    watermark = verification.get("watermark") or {}
    c2pa = verification.get("c2pa") or {}
    return bool(label.get("present")) and not watermark.get("found") and not c2pa.get("present")


def verdict_headline(gettext: Callable[..., str], verification: dict[str, Any]) -> str:
    """The headline of a ``likeness.verify/1.1`` object's verdict in ``gettext``'s language, the
    artist named by the first recognised face (the console's users may see names).

    >>> verdict_headline(lambda text, **v: text.format(**v), {"verdict": "enrolled-artist-unlabelled",
    ...     "faces": {"faces": [{"match": None}, {"match": {"slug": "mina", "name": "Mina"}}]}})
    'Mina appears, with no AI label or record'
    """
    code = str(verification.get("verdict"))
    text = VERDICT_HEADLINES.get(code, VERDICT_HEADLINES["error"])
    if shows_label_only(verification):
        text = LABEL_ONLY_HEADLINES.get(code, text)
    if code == "synthetic-consent-revoked":
        text = GRANT_STATE_HEADLINES.get(str(named_grant_state(verification)), text)
    faces = (verification.get("faces") or {}).get("faces") or ()
    match: dict[str, Any] = next((face["match"] for face in faces if face.get("match")), {})
    artist = match.get("name") or match.get("slug") or gettext("an artist this agency represents")
    return gettext(text, artist=artist) if "{artist}" in text else gettext(text)
