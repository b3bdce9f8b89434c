"""Typed errors. Every failure a user can cause surfaces as one of these, never a traceback."""

from __future__ import annotations

from pathlib import Path


class LikenessError(Exception):
    """Base class of every error the product raises on purpose."""


class ConfigError(LikenessError):
    """Settings or workspace are missing or inconsistent."""


class ConsentError(LikenessError):
    """The policy engine refused: ``reason`` is a stable machine code, the message says why.

    Reason codes: no_grant, expired, not_yet_valid, revoked, use_not_granted, wrong_grantee,
    signature_invalid, grant_altered, prohibited_use, render_limit_reached, no_release,
    release_expired, release_not_yet_valid, release_revoked, unknown_subject, unknown_org,
    not_issued_here, artefact_altered (a faceset manifest, model card, checkpoint or model file
    that does not match its signed ledger event), artefact_unsigned (made before artefacts were
    signed: extract or export it again).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RegistryError(LikenessError):
    """A registry object (organisation, subject, holder, grant) is missing or duplicated."""


class LedgerError(LikenessError):
    """The ledger could not be appended to or read."""


class MediaError(LikenessError):
    """A media file could not be used; names the file and the reason."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class FaceError(LikenessError):
    """Face analysis could not produce a usable result (no face, bad landmarks)."""


class FacesetError(LikenessError):
    """A faceset is missing, malformed, or does not match its manifest."""


class ModelError(LikenessError):
    """A model is unknown, malformed, or does not match its card."""


class ProvenanceError(LikenessError):
    """Watermarking, signing or reading provenance failed."""
