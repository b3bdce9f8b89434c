"""Consent: subjects, rights holders, grants, releases, revocations, the policy engine, the ledger.

The vocabulary is imported eagerly (it is plain data); everything that needs SQLAlchemy is
imported on first use, so commands such as ``likeness --help`` that only list the uses do not pay
for the database layer (about half of the CLI's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from likeness.consent.vocabulary import FINAL_MEDIA_USES, PROHIBITED_USES, STEP_USES, USES, normalise_use

if TYPE_CHECKING:
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

_LAZY = {
    "ChainReport": "ledger",
    "Ledger": "ledger",
    "LedgerEvent": "ledger",
    "Authorization": "policy",
    "PolicyEngine": "policy",
    "ReleaseAuthorization": "policy",
    "require_authorization": "policy",
    "require_extraction_consent": "policy",
    "require_release": "policy",
    "GrantRecord": "registry",
    "Registry": "registry",
    "ReleaseRecord": "registry",
    "SubjectRecord": "registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'likeness.consent' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"likeness.consent.{module}"), name)
    globals()[name] = value
    return value


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
