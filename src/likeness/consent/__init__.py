"""Consent: subjects, rights holders, grants, releases, revocations, the policy engine, the ledger."""

from likeness.consent.ledger import ChainReport, Ledger, LedgerEvent
from likeness.consent.policy import (
    Authorization,
    PolicyEngine,
    ReleaseAuthorization,
    require_authorization,
    require_extraction_consent,
    require_release,
)
from likeness.consent.registry import GrantRecord, Registry, ReleaseRecord, SubjectRecord
from likeness.consent.vocabulary import FINAL_MEDIA_USES, PROHIBITED_USES, STEP_USES, USES, normalise_use

__all__ = [
    "FINAL_MEDIA_USES",
    "PROHIBITED_USES",
    "STEP_USES",
    "USES",
    "Authorization",
    "ChainReport",
    "GrantRecord",
    "Ledger",
    "LedgerEvent",
    "PolicyEngine",
    "Registry",
    "ReleaseAuthorization",
    "ReleaseRecord",
    "SubjectRecord",
    "normalise_use",
    "require_authorization",
    "require_extraction_consent",
    "require_release",
]
