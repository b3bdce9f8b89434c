"""The closed vocabulary of uses a grant can name, and the uses nobody can grant."""

from __future__ import annotations

from likeness.errors import ConsentError

USES: tuple[str, ...] = (
    "training",
    "music_video",
    "virtual_stage",
    "fan_message",
    "advertising",
    "tribute",
)

# Never grantable, whatever a rights holder signs (DESIGN invariant 2).
PROHIBITED_USES: tuple[str, ...] = (
    "sexual_content",
    "political_persuasion",
    "defamation",
    "fraud_impersonation",
)

_PROHIBITED_ALIASES = {
    "sexual": "sexual_content",
    "porn": "sexual_content",
    "pornography": "sexual_content",
    "nsfw": "sexual_content",
    "political": "political_persuasion",
    "fraud": "fraud_impersonation",
    "impersonation": "fraud_impersonation",
}

#: ``training`` authorizes extraction and training of a model (and its export); final media
#: (render) needs one of these. A grant naming only ``training`` can never yield a rendered file.
FINAL_MEDIA_USES: tuple[str, ...] = tuple(u for u in USES if u != "training")

#: The synthesis steps and the uses each one accepts (``likeness.consent.require_authorization``).
STEP_USES: dict[str, tuple[str, ...]] = {
    "extract": ("training",),
    "train": ("training",),
    "export": ("training",),
    "render": FINAL_MEDIA_USES,
}

SUBJECT_KINDS: tuple[str, ...] = ("artist", "virtual_idol", "performer")
HOLDER_KINDS: tuple[str, ...] = ("artist", "guardian", "estate", "agency", "performer")


def normalise_use(use: str) -> str:
    """Return the canonical spelling of ``use``; refuse prohibited and unknown uses.

    >>> normalise_use("Music-Video")
    'music_video'
    """
    key = use.strip().lower().replace("-", "_").replace(" ", "_")
    key = _PROHIBITED_ALIASES.get(key, key)
    if key in PROHIBITED_USES:
        raise ConsentError(
            "prohibited_use",
            f"'{use}' is a prohibited use ({key}); it can never be granted or authorized",
        )
    if key not in USES:
        raise ConsentError("unknown_use", f"'{use}' is not a known use; choose from: {', '.join(USES)}")
    return key


def check_use_for_step(use: str, step: str) -> str:
    """The canonical ``use`` if the synthesis ``step`` accepts it, else ``ConsentError``.

    >>> check_use_for_step("music-video", "render")
    'music_video'
    """
    key = normalise_use(use)
    allowed = STEP_USES.get(step)
    if allowed is None:
        raise ValueError(f"unknown synthesis step {step!r}; expected one of {', '.join(STEP_USES)}")
    if key not in allowed:
        what = "final media" if step == "render" else f"the {step} step"
        raise ConsentError(
            "use_not_for_step",
            f"'{key}' does not authorize {what}; {step} accepts: {', '.join(allowed)}"
            + (" ('training' authorizes extraction and training only)" if key == "training" else ""),
        )
    return key


#: Each use and prohibited use in the words a person reads (the portal, the console, the holder
#: CLI); they are also the msgids of the Korean catalogue.
USE_WORDS = {
    "training": "training a model of your face",
    "music_video": "music videos",
    "virtual_stage": "virtual stage performances",
    "fan_message": "fan messages",
    "advertising": "advertising",
    "tribute": "tributes",
    "sexual_content": "sexual content",
    "political_persuasion": "political persuasion",
    "defamation": "defamation",
    "fraud_impersonation": "fraud and impersonation",
}


def use_words(use: str) -> str:
    """A use in plain words (its code when it has none).

    >>> use_words("fan_message")
    'fan messages'
    """
    return USE_WORDS.get(use, use)
