"""Signed artefacts: faceset manifests and model cards bound to their ledger events.

A faceset's ``manifest.json`` and a model's ``model_card.json`` carry a ``seal``: a body signed
with the organisation's Ed25519 key (its public key is in the organisations table) that names

* ``content_sha256``: SHA-256 of the RFC 8785 canonical JSON of the document without its seal;
* the files the document stands for (faceset index digest; ONNX, int8 and checkpoint SHA-256s);
* the consent it was made under (subject, grant, performer, release, organisation).

The ledger event that recorded the artefact (``faceset.created``, ``model.exported``) holds the
same fields and the same signature, so a document on disk is in force only when it, its seal,
the event and the signature all agree. A training checkpoint carries no seal: its SHA-256 is
recorded in a ``model.checkpointed`` event before the file is written, and that event, not the
(editable) consent dict inside the checkpoint, says whose face it holds.

Refusals are ``ConsentError`` with reason ``artefact_altered`` (the document, its files or its
event disagree, or no event on this workspace's ledger knows it, as for a folder copied from
another workspace) or ``artefact_unsigned`` (made before artefacts were signed: re-extract or
re-export). Every message names the file and what differs.

Example::

    seal = seal_document(workspace, org_id, "model-card", card, bound)
    event = verify_document(workspace, card_path, {**card, "seal": seal}, "model.exported",
                            compare=MODEL_FIELDS, remedy="export the model again")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from likeness.consent import keys
from likeness.consent.anchor import ledger_org_fingerprint
from likeness.consent.canonical import canonical_bytes, canonical_sha256
from likeness.consent.ledger import Ledger, LedgerEvent
from likeness.errors import ConsentError, LikenessError

SEAL = "seal"
FACESET_EVENT = "faceset.created"
CHECKPOINT_EVENT = "model.checkpointed"
MODEL_EVENT = "model.exported"

#: Manifest fields a faceset's ``faceset.created`` event records too (compared to name a relabel).
FACESET_FIELDS = ("faceset_sha256", "subject_id", "subject_slug", "grant_id", "release_id", "org_id")
#: Card fields a model's ``model.exported`` event records too (``int8_sha256`` is the card's
#: ``int8.sha256``).
MODEL_FIELDS = (
    "subject_id", "subject_slug", "grant_id", "performer_id", "performer_slug", "release_id", "org_id",
    "onnx_sha256", "int8_sha256", "checkpoint_sha256", "source_faceset_sha256", "target_faceset_sha256",
)
#: Consent and data a checkpoint's ``model.checkpointed`` event records.
CHECKPOINT_FIELDS = (
    "subject_id", "grant_id", "org_id", "performer_id", "release_id", "source_faceset_sha256",
    "target_faceset_sha256",
)


def altered(path: str | Path, why: str) -> ConsentError:
    return ConsentError("artefact_altered", f"{path}: {why}; it is refused")


def document_sha256(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``document`` without its seal (what the seal signs)."""
    return canonical_sha256({k: v for k, v in document.items() if k != SEAL})


def seal_document(
    workspace: Any, org_id: str, kind: str, document: dict[str, Any], bound: dict[str, Any]
) -> dict[str, Any]:
    """The seal of ``document``: ``bound`` (file digests, consent ids) plus the document digest,
    signed with organisation ``org_id``'s key (``workspace.registry.org_key_path``)."""
    organisation = workspace.registry.get_org(org_id)
    body = {
        "type": f"likeness.{kind}.v1", "org_id": organisation.id, "key_fingerprint": organisation.key_fingerprint,
        "content_sha256": document_sha256(document), **bound,
    }
    key = keys.load_private_key(workspace.registry.org_key_path(organisation.slug))
    if keys.fingerprint(keys.public_raw(key)) != organisation.key_fingerprint:
        raise ConsentError("artefact_altered", f"organisation '{organisation.slug}': its key file does not match "
                                               "the registered public key; nothing was signed")
    return {**body, "signature": keys.sign(key, canonical_bytes(body))}


def event_fields(seal: dict[str, Any]) -> dict[str, Any]:
    """What the artefact's ledger event records of its seal (everything but the type)."""
    return {k: v for k, v in seal.items() if k != "type"}


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return f"'{text[:16]}…'" if len(text) > 20 else f"'{text}'"


def _differences(document: dict[str, Any], payload: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [f"{name} is {_short(document.get(name))} but the ledger event records {_short(payload.get(name))}"
            for name in names if name in payload and document.get(name) != payload.get(name)]


def verify_document(
    workspace: Any, path: str | Path, document: dict[str, Any], event_type: str, *,
    compare: tuple[str, ...], remedy: str, view: dict[str, Any] | None = None,
) -> LedgerEvent:
    """The ledger event ``document`` (read from ``path``, seal included) is bound to, after checking
    that document, seal, event and organisation signature agree.

    ``compare``: document fields the event records too; a difference is named in the refusal
    (a relabelled subject reads "subject_id is 'x' but the ledger event records 'y'").
    ``remedy``: what to do about an unsigned document ("extract the faceset again").
    ``view``: the fields to compare when they are not all top-level in ``document`` (default: it).
    Raises ``ConsentError`` (``artefact_unsigned``, ``artefact_altered``).
    """
    seal = document.get(SEAL)
    if seal is None:
        raise ConsentError("artefact_unsigned", f"{path}: carries no organisation signature (made before "
                                                f"artefacts were signed and bound to the ledger); {remedy}")
    if not isinstance(seal, dict) or not isinstance(seal.get("signature"), str):
        raise altered(path, "its seal is malformed")
    matches = workspace.ledger.find(event_type, signature=seal["signature"])
    if not matches:
        raise altered(path, f"no {event_type} event on this workspace's ledger carries its signature "
                            "(a copy from another workspace, or its seal was edited)")
    event = matches[-1]
    differences = _differences(document if view is None else view, event.payload, compare)
    differences += [f"seal {d}" for d in _differences(seal, event.payload, tuple(event_fields(seal)))]
    if document_sha256(document) != seal.get("content_sha256") and not differences:
        differences.append("its content differs from the signed digest (a field was edited after signing)")
    if differences:
        raise altered(path, "; ".join(differences))
    body = {k: v for k, v in seal.items() if k != "signature"}
    try:
        organisation = workspace.registry.get_org(str(seal.get("org_id")))
    except LikenessError:
        raise altered(path, f"signed by organisation {_short(seal.get('org_id'))}, unknown here") from None
    public = bytes.fromhex(organisation.public_key)
    # The organisation's key as the ledger recorded it, not as its (editable) row says now.
    if keys.fingerprint(public) != ledger_org_fingerprint(workspace.ledger, organisation.id):
        raise altered(path, f"organisation '{organisation.slug}''s key in the database is not the key its "
                            "org.created ledger event records")
    if keys.fingerprint(public) != seal.get("key_fingerprint") or not keys.verify(
        public, canonical_bytes(body), seal["signature"]
    ):
        raise altered(path, f"its signature does not verify with organisation '{organisation.slug}''s key")
    return event


def verify_checkpoint(ledger: Ledger, path: str | Path, checkpoint_sha256: str, recorded: dict[str, Any]) -> LedgerEvent:
    """The ``model.checkpointed`` event of the checkpoint file at ``path`` (bytes hashing to
    ``checkpoint_sha256``), after checking that the consent and data digests the checkpoint
    carries (``recorded``, keys ``CHECKPOINT_FIELDS``) are the ones the event records.

    Without an event for these bytes, the refusal names what differs from the last checkpoint
    recorded for the same folder when there is one.
    """
    matches = ledger.find(CHECKPOINT_EVENT, checkpoint_sha256=checkpoint_sha256)
    if not matches:
        earlier = ledger.find(CHECKPOINT_EVENT, model_dir=str(Path(path).resolve().parent))
        differences = _differences(recorded, earlier[-1].payload, CHECKPOINT_FIELDS) if earlier else []
        raise altered(path, "; ".join(differences) if differences else (
            f"no {CHECKPOINT_EVENT} event on this workspace's ledger has its SHA-256 (altered after it was "
            "saved, copied from another workspace, or saved before checkpoints were recorded: train it again)"))
    event = matches[-1]
    differences = _differences(recorded, event.payload, CHECKPOINT_FIELDS)
    if differences:
        raise altered(path, "; ".join(differences))
    return event


__all__ = [
    "CHECKPOINT_EVENT",
    "CHECKPOINT_FIELDS",
    "FACESET_EVENT",
    "FACESET_FIELDS",
    "MODEL_EVENT",
    "MODEL_FIELDS",
    "SEAL",
    "altered",
    "document_sha256",
    "event_fields",
    "seal_document",
    "verify_checkpoint",
    "verify_document",
]
