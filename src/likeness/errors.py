"""Typed errors. Every failure a user can cause surfaces as one of these, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from string import Formatter


class LikenessError(Exception):
    """Base class of every error the product raises on purpose."""


class ConfigError(LikenessError):
    """Settings or workspace are missing or inconsistent."""


class DatabaseRefused(ConfigError):
    """The database refused a write for its file's sake (read-only, a full disk). The message
    names the file: the CLI prints it; the service logs it and tells its client less."""


class OptionError(ConfigError):
    """An option refused by name. ``template`` writes each option it names as a placeholder of
    its API field (``"{thin_rims} needs {occlusion} on"``); the message names the fields as
    they are, and a front end names them its own way with :meth:`naming` (the CLI: its flags).

    >>> error = OptionError("{thin_rims} needs {occlusion} on")
    >>> str(error), error.naming({"thin_rims": "--thin-rims"})
    ('thin_rims needs occlusion on', '--thin-rims needs occlusion on')
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.fields = tuple(field for _, field, _, _ in Formatter().parse(template) if field)
        super().__init__(self.naming({}))

    def naming(self, names: Mapping[str, str]) -> str:
        """The message with each field called ``names[field]`` (its own name when absent)."""
        return self.template.format_map({field: names.get(field, field) for field in self.fields})


class ConsentReason(StrEnum):
    """Every reason the consent checks refuse with: the stable machine code in
    ``ConsentError.reason``, on the ledger's ``authorization.refused`` events and in the CLI's
    "refused (reason)" line. docs/consent.md (Refusal reasons) lists each one."""

    # who and what
    UNKNOWN_SUBJECT = "unknown_subject"
    UNKNOWN_ORG = "unknown_org"
    NO_GRANT = "no_grant"
    WRONG_GRANTEE = "wrong_grantee"
    USE_NOT_GRANTED = "use_not_granted"
    UNKNOWN_USE = "unknown_use"
    PROHIBITED_USE = "prohibited_use"
    USE_NOT_FOR_STEP = "use_not_for_step"
    PROHIBITED_CONTENT = "prohibited_content"
    # the grant against its ledger event, and the records around it
    GRANT_NOT_ON_LEDGER = "grant_not_on_ledger"
    GRANT_ALTERED = "grant_altered"
    SIGNATURE_INVALID = "signature_invalid"
    HOLDER_KEY_ALTERED = "holder_key_altered"
    SUBJECT_ALTERED = "subject_altered"
    ORG_ALTERED = "org_altered"
    HOLDER_ALTERED = "holder_altered"
    LEDGER_REWRITTEN = "ledger_rewritten"
    # the grant's standing
    REVOKED = "revoked"
    REVOCATION_INVALID = "revocation_invalid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    RENDER_LIMIT_REACHED = "render_limit_reached"
    RENDER_COMPLETED = "render_completed"
    # performer releases
    NO_RELEASE = "no_release"
    RELEASE_NOT_ON_LEDGER = "release_not_on_ledger"
    RELEASE_ALTERED = "release_altered"
    RELEASE_SIGNATURE_INVALID = "release_signature_invalid"
    RELEASE_REVOKED = "release_revoked"
    RELEASE_REVOCATION_INVALID = "release_revocation_invalid"
    RELEASE_EXPIRED = "release_expired"
    RELEASE_NOT_YET_VALID = "release_not_yet_valid"
    # the Authorization object
    NOT_ISSUED_HERE = "not_issued_here"
    AUTHORIZATION_ALTERED = "authorization_altered"
    # artefacts made under a grant
    ARTEFACT_ALTERED = "artefact_altered"
    ARTEFACT_UNSIGNED = "artefact_unsigned"
    # passkey (WebAuthn) signatures, re-verified at every use (likeness.consent.passkeys)
    ASSERTION_REPLAYED = "assertion_replayed"
    WRONG_ORIGIN = "wrong_origin"
    WRONG_RP = "wrong_rp"
    USER_NOT_VERIFIED = "user_not_verified"
    COUNTER_REGRESSED = "counter_regressed"
    CREDENTIAL_NOT_HOLDERS = "credential_not_holders"
    # rights-holder invitations (the portal's onboarding)
    INVITATION_UNKNOWN = "invitation_unknown"
    INVITATION_EXPIRED = "invitation_expired"
    INVITATION_USED = "invitation_used"
    INVITATION_REFUSED = "invitation_refused"
    INVITATION_SUPERSEDED = "invitation_superseded"
    # a signed consent brought in from the rights holder's own machine
    NOT_REQUESTED = "not_requested"


class ConsentError(LikenessError):
    """The policy engine refused: ``reason`` is one of :class:`ConsentReason` (as its string
    value, e.g. ``"revoked"``), the message says why in words. docs/consent.md (Refusal
    reasons) says what each reason means.

    A reason outside :class:`ConsentReason` is a programming error (``ValueError``).
    """

    def __init__(self, reason: ConsentReason | str, message: str) -> None:
        super().__init__(message)
        self.reason: str = ConsentReason(reason).value


class RegistryError(LikenessError):
    """A registry object (organisation, subject, holder, grant) is missing or duplicated."""


class EnrollingOrgUnnamed(RegistryError):
    """A rights holder or subject (``what``, ``slug``) enrolled with no organisation named where
    the workspace has none or several (``orgs``, their slugs): the enrolling organisation is the
    only one that may invite a holder or recover their key, and the only one that seals a
    subject's references, so it is never guessed."""

    #: why the enrolling organisation matters, by what is enrolled
    ONLY_IT = {
        "rights holder": ("them", "only it may invite them or recover their key"),
        "subject": ("it", "only it may seal its reference photos, without which it is never recognised"),
    }

    def __init__(self, slug: str, orgs: tuple[str, ...], *, what: str = "rights holder") -> None:
        self.slug, self.orgs, self.what = slug, orgs, what
        whom, only_it = self.ONLY_IT[what]
        if orgs:
            why = (
                f"this workspace has several organisations ({', '.join(orgs)}) and none was named: name the one "
                f"enrolling {whom} with --org ({only_it})"
            )
        else:
            why = f"this workspace has no organisation yet to enrol {whom} (add one with: likeness org add SLUG)"
        super().__init__(f"{what} '{slug}': {why}")


class OrganisationNameTaken(RegistryError):
    """A new organisation ``slug`` whose name or slug reads like organisation ``other``'s
    (``names.name_skeleton``): a holder reads "{organisation} asks for your consent", not the
    id or key, so a second agency named like the first could have them sign for it. Nothing
    is written."""

    def __init__(self, slug: str, name: str, other: str, other_name: str) -> None:
        self.slug, self.other = slug, other
        super().__init__(
            f"organisation '{slug}' ({name!r}): its name or slug reads like organisation '{other}' "
            f"({other_name!r}); people see the name, not the key: choose a name and slug they can tell apart"
        )


class SubjectEnrollerRefused(RegistryError):
    """Organisation ``org`` may not enrol subject ``subject`` under rights holder ``holder``:
    only the organisation that onboarded the holder does (``problem`` says which, or why the
    ledger names none). Another organisation would otherwise hold a subject of theirs, seal a
    stranger's face as its references and ask the holder for consent under it. Nothing is
    written."""

    def __init__(self, subject: str, holder: str, org: str, problem: str) -> None:
        self.subject, self.holder, self.org = subject, holder, org
        super().__init__(
            f"subject '{subject}': organisation '{org}' may not enrol it under rights holder '{holder}': {problem}"
        )


class SubjectNotEnrolled(RegistryError):
    """Subject ``subject``'s row is not an enrolment the ledger backs (``problem`` says why: a
    row a database editor made or changed, or one enrolled by an organisation that did not
    onboard its rights holder), so no grant or release (``what``) is requested for it. Nothing
    is written."""

    def __init__(self, subject: str, problem: str, *, what: str = "grant") -> None:
        self.subject, self.problem = subject, problem
        super().__init__(f"subject '{subject}': no {what} is requested for it: {problem}")


class EvidenceRefused(RegistryError):
    """A recovery's evidence file (``source``) that cannot stand as evidence: ``empty`` (its
    digest would attest nothing) or ``too_large`` (over ``EVIDENCE_MAX_BYTES``)."""

    def __init__(self, source: str, reason: str, *, too_large: bool) -> None:
        self.source, self.reason, self.too_large = source, reason, too_large
        super().__init__(f"{source}: {reason}")


class FoundingReferenceMissing(RegistryError):
    """Subject ``subject``'s first enrolled reference, the face every later one is held to, is
    gone from the database or altered: enrolment is refused until the workspace is restored."""

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        super().__init__(
            f"subject '{subject}': {problem}; no reference is enrolled for it until the workspace is "
            "restored from a backup (likeness audit verify)"
        )


class ReferenceUnsealed(RegistryError):
    """A ``subject.reference_added`` event of subject ``subject`` (ledger row ``seq``) that
    enrolment would hold references to carries no valid organisation seal: it may be a database
    editor's, so no reference is enrolled for the subject. ``attestable``: it was written before
    reference events were sealed, so an operator who recognises the face may attest it."""

    def __init__(self, subject: str, seq: int, problem: str, *, attestable: bool) -> None:
        self.subject, self.seq, self.attestable = subject, seq, attestable
        remedy = (
            f"an operator who recognises the face attests it (likeness subject photos attest {subject})"
            if attestable
            else "the workspace is restored from a backup (likeness audit verify)"
        )
        super().__init__(f"subject '{subject}': {problem}; no reference is enrolled for it until {remedy}")


class ReferenceSealerRefused(RegistryError):
    """Organisation ``org`` (``None``: none was named) may not seal subject ``subject``'s
    references: only the organisation that enrolled the subject does (``problem`` says which,
    or why the ledger names none). Nothing is sealed."""

    def __init__(self, subject: str, org: str | None, problem: str) -> None:
        self.subject, self.org = subject, org
        super().__init__(f"subject '{subject}': {problem}; no reference of it is sealed")


class ReferenceMismatch(RegistryError):
    """A reference photo's face lies ``distance`` from subject ``slug``'s first reference, past
    ``limit``: not the subject's face, so not stored."""

    def __init__(self, slug: str, distance: float, limit: float) -> None:
        self.slug, self.distance, self.limit = slug, distance, limit
        super().__init__(f"face does not match {slug}'s first reference photo (distance {distance:.2f} > {limit:.2f})")


class FaceOfAnotherHolder(RegistryError):
    """Reference photo ``source``'s face is recognised as ``matched``, a subject of another
    rights holder enrolled by organisation ``org`` (``similarity`` against ``threshold`` as the
    verifier scores it, ``distance`` the identity distance): not enrolled for ``subject``.
    Otherwise anyone could enrol that person again under a holder key of their own and sign
    consent for their face. Nothing is written."""

    def __init__(
        self, source: str, subject: str, matched: str, org: str, *, similarity: float, threshold: float, distance: float
    ) -> None:
        self.source, self.subject, self.matched, self.org = source, subject, matched, org
        self.similarity, self.threshold, self.distance = similarity, threshold, distance
        super().__init__(
            f"{source}: the face is {matched}'s, a subject of another rights holder enrolled by organisation "
            f"'{org}' (similarity {similarity:.2f}, 0.50 at the threshold: distance {distance:.2f} <= "
            f"{threshold:.2f}); no reference of '{subject}' is written. A person is enrolled by their own rights "
            f"holder's organisation; if this is someone else (a twin, a lookalike), ask '{org}' to put you in touch "
            f"with {matched}'s rights holder (docs/consent.md, One face, one rights holder)"
        )


class ConsentRequestError(LikenessError):
    """A consent request or a signed consent file is malformed, damaged or of the wrong kind."""


class LedgerError(LikenessError):
    """The ledger could not be appended to or read."""


class LedgerRowUnreadable(LedgerError):
    """Ledger row ``seq``'s payload is not JSON a reader takes (a member named twice, nested
    too deeply, cut short): only a row edited or appended outside the product has one."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq, self.reason = seq, reason
        super().__init__(f"ledger row {seq}: {self.problem} (likeness audit verify)")

    @property
    def problem(self) -> str:
        return f"its payload cannot be read ({self.reason}); it was edited or appended outside likeness"


class MediaError(LikenessError):
    """A media file could not be used; names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class FaceError(LikenessError):
    """Face analysis could not produce a usable result (no face, bad landmarks)."""


class FacesetError(LikenessError):
    """A faceset is missing, malformed, or does not match its manifest."""


class FacesOfAnotherHolder(FacesetError):
    """Extraction for ``subject`` refused: ``faces`` of the ``would_keep`` faces it would have
    kept (``first`` the first of them) are recognised as ``matched``, a subject of another rights
    holder enrolled by organisation ``org``, and faces of other holders' subjects are too large a
    share of the run to be bystanders (``extract.another_holders_refusal``). Otherwise a reference
    photo of that person that recognition does not match enrols them again under a holder key of
    one's own, and their footage becomes that subject's faceset. Nothing is written."""

    def __init__(self, subject: str, matched: str, org: str, *, faces: int, would_keep: int, first: str) -> None:
        self.subject, self.matched, self.org = subject, matched, org
        self.faces, self.would_keep, self.first = faces, would_keep, first
        super().__init__(
            f"extraction for '{subject}' refused: {faces} of the {would_keep} faces it would keep are recognised as "
            f"{matched}'s, a subject of another rights holder enrolled by organisation '{org}' (the first: {first}); "
            f"no faceset is written. A face has one rights holder: {matched}'s footage is extracted under a grant of "
            f"{matched}'s rights holder (ask '{org}'), or leave out the footage they appear in (docs/consent.md, "
            "One face, one rights holder)"
        )


class ModelError(LikenessError):
    """A model is unknown, malformed, or does not match its card."""


class ProvenanceError(LikenessError):
    """Watermarking, signing or reading provenance failed."""


class WorkerStartError(LikenessError):
    """A verification worker process could not build its verifier: every file it took would
    fail the same way, so the run stops with the worker's reason instead of blaming each file."""


class VerificationTimedOut(LikenessError):
    """A verification passed the deadline its caller gave and stopped (between frames or
    stages), so that whatever it held (the public checker's lock) is free again."""


class StopRequested(Exception):
    """Raised from a progress callback to stop long work at its next safe point. Work that keeps
    checkpoints (training) saves one first and lets it go on up, so a rerun resumes from there;
    what the stop means is the raiser's (a service worker shutting down returns its job to the
    queue). Not a ``LikenessError``: nothing is wrong with the input."""
