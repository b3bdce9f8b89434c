"""Typed errors. Every failure a user can cause surfaces as one of these, never a traceback."""

from __future__ import annotations

from pathlib import Path


class LikenessError(Exception):
    """Base class of every error the product raises on purpose."""


class ConfigError(LikenessError):
    """Settings or workspace are missing or inconsistent."""


class ConsentError(LikenessError):
    """The policy engine refused: ``reason`` is a stable machine code, the message says why.

    Reason codes:

    - who and what: unknown_subject, unknown_org, no_grant, wrong_grantee, use_not_granted,
      unknown_use, prohibited_use (never grantable), use_not_for_step (e.g. a ``training``
      authorization at render), prohibited_content (target footage the content check refuses);
    - the grant against its ledger event: grant_not_on_ledger (no ``grant.issued`` event),
      grant_altered (the row differs from what was signed, or was deleted), signature_invalid
      (not signed by the subject's rights holder with the key the ledger had in force),
      holder_key_altered (a holder row whose key is not the one on the ledger, or a holder
      with no ``holder.created`` event), subject_altered (a subject row whose slug, kind or
      owning organisation is not its ``subject.created`` event's), org_altered (an
      organisation row whose slug or name is not its ``org.created`` event's), holder_altered
      (signing refused: a holder row whose slug, kind or name is not its ``holder.created``
      event's), ledger_rewritten (the
      ledger no longer holds the latest anchor kept outside the workspace);
    - its standing: revoked (a verified revocation on the ledger, with or without its row),
      revocation_invalid (a revocation row or event that does not verify: refused until
      resolved), expired, not_yet_valid, render_limit_reached, render_completed (a completed
      render's slot is not refunded);
    - performer releases: no_release, release_not_on_ledger, release_altered,
      release_signature_invalid, release_revoked, release_revocation_invalid, release_expired,
      release_not_yet_valid;
    - the Authorization object: not_issued_here (not issued by this engine, or forged),
      authorization_altered (a field changed after issue, e.g. with ``object.__setattr__``);
    - artefacts: artefact_altered (a faceset manifest, model card, checkpoint or model file
      that does not match its signed ledger event), artefact_unsigned (made before artefacts
      were signed: extract or export it again).
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
