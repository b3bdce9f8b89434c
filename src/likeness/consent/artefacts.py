"""Signed artefacts: faceset manifests and model cards bound to their ledger events.

A faceset's ``manifest.json`` and a model's ``model_card.json`` carry a ``seal``: a body signed
with the organisation's Ed25519 key (its public key is in the organisations table) that names

* ``content_sha256``: SHA-256 of the RFC 8785 canonical JSON of the document without its seal;
* the files the document stands for (faceset index digest; ONNX, int8 and checkpoint SHA-256s);
* the consent it was made under (subject, grant, performer, release, organisation).

The ledger event that recorded the artefact (``faceset.created``, ``model.exported``) holds the
same fields and the same signature, so a document on disk is in force only when it, its seal,
the event and the signature all agree. A training checkpoint file carries no seal: its
``model.checkpointed`` event does (:func:`seal_checkpoint`), over the checkpoint's SHA-256 and its
consent and data fields, and that sealed event, not the (editable) consent dict inside the
checkpoint, says whose face it holds. An event without a valid seal (appended by someone with
write access to the ledger but not the organisation's key) is ignored. A checkpoint trained from
a faceset must name the subject and grant of that faceset's sealed ``faceset.created`` event, and
its performer must be the subject of its target faceset's. Seals bind ids, never slugs: a slug
in an event is display only, and whoever needs one looks it up in the registry by the sealed id.

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
from likeness.consent.ledger import LedgerEvent
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
    "subject_id",
    "subject_slug",
    "grant_id",
    "performer_id",
    "performer_slug",
    "release_id",
    "org_id",
    "onnx_sha256",
    "int8_sha256",
    "checkpoint_sha256",
    "source_faceset_sha256",
    "target_faceset_sha256",
)
#: Consent and data a checkpoint's ``model.checkpointed`` event records.
CHECKPOINT_FIELDS = (
    "subject_id",
    "grant_id",
    "org_id",
    "performer_id",
    "release_id",
    "source_faceset_sha256",
    "target_faceset_sha256",
)
#: What a checkpoint's seal signs besides organisation, key fingerprint and digest.
CHECKPOINT_BOUND = ("checkpoint_sha256", *(name for name in CHECKPOINT_FIELDS if name != "org_id"))
#: What a faceset manifest's seal signs besides organisation, key fingerprint and digest
#: (``likeness.faceset.extract.record_faceset``).
FACESET_BOUND = ("faceset_sha256", "subject_id", "grant_id", "release_id")
_SEAL_HEAD = ("org_id", "key_fingerprint", "content_sha256")


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
        "type": f"likeness.{kind}.v1",
        "org_id": organisation.id,
        "key_fingerprint": organisation.key_fingerprint,
        "content_sha256": document_sha256(document),
        **bound,
    }
    key = keys.load_private_key(workspace.registry.org_key_path(organisation.slug))
    if keys.fingerprint(keys.public_raw(key)) != organisation.key_fingerprint:
        raise ConsentError(
            "artefact_altered",
            f"organisation '{organisation.slug}': its key file does not match "
            "the registered public key; nothing was signed",
        )
    return {**body, "signature": keys.sign(key, canonical_bytes(body))}


def event_fields(seal: dict[str, Any]) -> dict[str, Any]:
    """What the artefact's ledger event records of its seal (everything but the type)."""
    return {k: v for k, v in seal.items() if k != "type"}


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return f"'{text[:16]}…'" if len(text) > 20 else f"'{text}'"


def _differences(document: dict[str, Any], payload: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [
        f"{name} is {_short(document.get(name))} but the ledger event records {_short(payload.get(name))}"
        for name in names
        if name in payload and document.get(name) != payload.get(name)
    ]


def verify_document(
    workspace: Any,
    path: str | Path,
    document: dict[str, Any],
    event_type: str,
    *,
    compare: tuple[str, ...],
    remedy: str,
    view: dict[str, Any] | None = None,
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
        raise ConsentError(
            "artefact_unsigned",
            f"{path}: carries no organisation signature (made before "
            f"artefacts were signed and bound to the ledger); {remedy}",
        )
    if not isinstance(seal, dict) or not isinstance(seal.get("signature"), str):
        raise altered(path, "its seal is malformed")
    matches = workspace.ledger.find(event_type, signature=seal["signature"])
    if not matches:
        raise altered(
            path,
            f"no {event_type} event on this workspace's ledger carries its signature "
            "(a copy from another workspace, or its seal was edited)",
        )
    event = matches[-1]
    differences = _differences(document if view is None else view, event.payload, compare)
    differences += [f"seal {d}" for d in _differences(seal, event.payload, tuple(event_fields(seal)))]
    try:
        digest = document_sha256(document)
    except ValueError as exc:  # NaN, Infinity, an integer past 2**53, a lone surrogate: nothing sealed it
        raise altered(path, f"it holds a value canonical JSON cannot write ({exc})") from None
    if digest != seal.get("content_sha256") and not differences:
        differences.append("its content differs from the signed digest (a field was edited after signing)")
    if differences:
        raise altered(path, "; ".join(differences))
    body = {k: v for k, v in seal.items() if k != "signature"}
    problem = _seal_problem(workspace, body, seal["signature"])
    if problem:
        raise altered(path, problem)
    return event


def _seal_problem(workspace: Any, body: dict[str, Any], signature: str) -> str | None:
    """Why ``signature`` is not the organisation's signature of ``body`` (None: it is), checked
    with the organisation's key as its ``org.created`` ledger event records it, not as its
    (editable) row says now."""
    try:
        organisation = workspace.registry.get_org(str(body.get("org_id")))
    except LikenessError:
        return f"signed by organisation {_short(body.get('org_id'))}, unknown here"
    public = bytes.fromhex(organisation.public_key)
    if keys.fingerprint(public) != ledger_org_fingerprint(workspace.ledger, organisation.id):
        return (
            f"organisation '{organisation.slug}''s key in the database is not the key its "
            "org.created ledger event records"
        )
    try:
        signed = canonical_bytes(body)
    except ValueError:  # a seal member no signature can cover
        signed = None
    if (
        keys.fingerprint(public) != body.get("key_fingerprint")
        or signed is None
        or not keys.verify(public, signed, signature)
    ):
        return f"its signature does not verify with organisation '{organisation.slug}''s key"
    return None


def _event_seal_problem(workspace: Any, payload: dict[str, Any], kind: str, bound: tuple[str, ...]) -> str | None:
    """Why ledger event ``payload`` does not carry a valid organisation seal of type ``kind``
    over ``bound`` (None: it does). The seal's body is rebuilt from the event's own fields, so an
    event whose consent or digest fields were written without the key never verifies."""
    names = (*_SEAL_HEAD, *bound)
    if not isinstance(payload.get("signature"), str) or any(name not in payload for name in names):
        return "it carries no organisation seal"
    body = {"type": f"likeness.{kind}.v1", **{name: payload[name] for name in names}}
    return _seal_problem(workspace, body, payload["signature"])


def seal_checkpoint(workspace: Any, org_id: str, checkpoint_sha256: str, record: dict[str, Any]) -> dict[str, Any]:
    """The organisation's seal of a training checkpoint: its SHA-256 and the consent and data
    fields ``record`` gives (keys ``CHECKPOINT_FIELDS``), for its ``model.checkpointed`` event
    (``event_fields(seal)`` goes into the event; the file itself is not changed)."""
    bound = {"checkpoint_sha256": checkpoint_sha256, **{name: record.get(name) for name in CHECKPOINT_BOUND[1:]}}
    return seal_document(workspace, org_id, "checkpoint", bound, bound)


def _sealed_facesets(workspace: Any, faceset_sha256: Any) -> list[LedgerEvent]:
    """The ``faceset.created`` events for ``faceset_sha256`` that carry a valid organisation seal."""
    return [
        e
        for e in workspace.ledger.find(FACESET_EVENT, faceset_sha256=faceset_sha256)
        if _event_seal_problem(workspace, e.payload, "faceset-manifest", FACESET_BOUND) is None
    ]


def checkpoint_lineage_problem(workspace: Any, record: dict[str, Any]) -> str | None:
    """Why a checkpoint naming ``record``'s subject, grant and performer cannot have been trained
    from its faces (None: it can). When the source faces are a faceset this workspace extracted
    (a sealed ``faceset.created`` event with ``faceset_sha256`` = ``source_faceset_sha256``),
    the checkpoint must name that event's subject and grant; when the target faces are one, that
    event's subject must be the checkpoint's performer, extracted under a release. Faces held
    only in memory have no such event."""
    source_events = _sealed_facesets(workspace, record.get("source_faceset_sha256"))
    if source_events and not any(
        e.payload.get("subject_id") == record.get("subject_id") and e.payload.get("grant_id") == record.get("grant_id")
        for e in source_events
    ):
        source = source_events[-1].payload
        return (
            f"its source faceset's faceset.created event (ledger row {source_events[-1].seq}) records subject "
            f"{_short(source.get('subject_slug') or source.get('subject_id'))} under grant "
            f"{_short(source.get('grant_id'))}, not subject {_short(record.get('subject_id'))} under grant "
            f"{_short(record.get('grant_id'))}"
        )
    target_events = _sealed_facesets(workspace, record.get("target_faceset_sha256"))
    if target_events and not any(
        e.payload.get("subject_id") == record.get("performer_id") and e.payload.get("release_id") is not None
        for e in target_events
    ):
        target = target_events[-1].payload
        return (
            f"its target faceset's faceset.created event (ledger row {target_events[-1].seq}) records subject "
            f"{_short(target.get('subject_slug') or target.get('subject_id'))}"
            f"{'' if target.get('release_id') else ' extracted under no performer release'}, not performer "
            f"{_short(record.get('performer_id'))}"
        )
    return None


def verify_checkpoint(
    workspace: Any, path: str | Path, checkpoint_sha256: str, recorded: dict[str, Any]
) -> LedgerEvent:
    """The sealed ``model.checkpointed`` event of the checkpoint file at ``path`` (bytes hashing
    to ``checkpoint_sha256``), after checking that its organisation seal verifies, that the
    consent and data digests the checkpoint carries (``recorded``, keys ``CHECKPOINT_FIELDS``)
    are the ones the event records, and that its subject, grant and performer are those of its
    source and target facesets (:func:`checkpoint_lineage_problem`).

    Events for these bytes without a valid seal are ignored: whoever can append to the ledger
    without the organisation's key cannot vouch for a checkpoint. Without a sealed event for
    these bytes, the refusal names what differs from the last one recorded for the same folder.
    """
    ledger = workspace.ledger
    matches = ledger.find(CHECKPOINT_EVENT, checkpoint_sha256=checkpoint_sha256)
    sealed = [e for e in matches if _event_seal_problem(workspace, e.payload, "checkpoint", CHECKPOINT_BOUND) is None]
    if not sealed:
        earlier = [
            e
            for e in ledger.find(CHECKPOINT_EVENT, model_dir=str(Path(path).resolve().parent))
            if _event_seal_problem(workspace, e.payload, "checkpoint", CHECKPOINT_BOUND) is None
        ]
        differences = _differences(recorded, earlier[-1].payload, CHECKPOINT_FIELDS) if earlier else []
        if matches:
            differences.append(
                f"the {CHECKPOINT_EVENT} event{'s' if len(matches) > 1 else ''} for its SHA-256 "
                "carry no valid organisation seal (appended without the organisation's key, or "
                "recorded before checkpoint events were sealed: train it again)"
            )
        raise altered(
            path,
            "; ".join(differences)
            if differences
            else (
                f"no {CHECKPOINT_EVENT} event on this workspace's ledger has its SHA-256 (altered after it was "
                "saved, copied from another workspace, or saved before checkpoints were recorded: train it again)"
            ),
        )
    event = sealed[-1]
    differences = _differences(recorded, event.payload, CHECKPOINT_FIELDS)
    lineage = checkpoint_lineage_problem(workspace, event.payload)
    if lineage:
        differences.append(lineage)
    if differences:
        raise altered(path, "; ".join(differences))
    return event


__all__ = [
    "CHECKPOINT_BOUND",
    "CHECKPOINT_EVENT",
    "CHECKPOINT_FIELDS",
    "FACESET_EVENT",
    "FACESET_FIELDS",
    "MODEL_EVENT",
    "MODEL_FIELDS",
    "SEAL",
    "altered",
    "checkpoint_lineage_problem",
    "document_sha256",
    "event_fields",
    "seal_checkpoint",
    "seal_document",
    "verify_checkpoint",
    "verify_document",
]
