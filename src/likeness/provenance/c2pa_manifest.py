"""C2PA manifests: build (pure), sign (file to file) and read (with configured trust anchors).

Built on ``c2pa-python`` (c2pa-rs core). Every Reader and Builder gets its own ``c2pa.Context``
whose settings name the trust anchors, keep trust verification on, turn off network fetches
(remote manifests, OCSP) and turn off the default thumbnail (which would otherwise add
hundreds of KB of JPEG to every manifest). There is no option to switch verification off.

Signing is offline: no time-stamp authority is used (``ta_url=None``), so a signature is
only checkable while the signer certificate is inside its validity window (see
``docs/provenance.md``).

Example::

    setup = ensure_signing_setup(keys_dir, "Studio Co")
    manifest = build_manifest(title="out.jpg", consent=claim, watermark_algorithm=ALG,
                              watermark_payload=bytes(8), job_id="ab12...", composite=False)
    sign_file(Path("unsigned.jpg"), Path("out.jpg"), manifest, setup)
    read_manifest(Path("out.jpg"), trust_anchors_pem=[setup.trust_anchor_pem]).state  # "Trusted"
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import c2pa

import likeness
from likeness.digests import sha256_file
from likeness.durable import atomic_path
from likeness.errors import MediaError, ProvenanceError
from likeness.provenance.certificates import SigningSetup, parse_trust_anchor

IPTC_DIGITAL_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC_DIGITAL_SOURCE + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = IPTC_DIGITAL_SOURCE + "compositeWithTrainedAlgorithmicMedia"

CONSENT_ASSERTION_LABEL = "com.likeness.consent"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
# C2PA 2.x moved training-and-data-mining to the CAWG; c2pa-rs 0.91 validates this label.
TRAINING_MINING_LABEL = "cawg.training-mining"
TRAINING_MINING_ENTRIES = (
    "cawg.ai_inference",
    "cawg.ai_generative_training",
    "cawg.ai_training",
    "cawg.data_mining",
)

C2paState = Literal["Trusted", "Valid", "Invalid"]

MIME_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
}


@dataclass(frozen=True)
class ConsentClaim:
    """What the likeness-consent assertion states about the grant that authorized a render."""

    grant_id: str
    subject_id: str
    subject_slug: str
    subject_kind: str
    use: str
    org_slug: str
    holder_fingerprint: str
    grant_signature_sha256: str

    @classmethod
    def from_authorization(cls, authz: Any) -> ConsentClaim:
        """Copy the public grant facts from a ``likeness.consent.Authorization``."""
        return cls(
            grant_id=str(authz.grant_id),
            subject_id=str(authz.subject_id),
            subject_slug=str(authz.subject_slug),
            subject_kind=str(authz.subject_kind),
            use=str(authz.use),
            org_slug=str(authz.org_slug),
            holder_fingerprint=str(authz.holder_fingerprint),
            grant_signature_sha256=str(authz.grant_signature_sha256),
        )


@dataclass(frozen=True)
class C2paReading:
    """Result of reading an asset's C2PA manifest store.

    ``present``: a manifest store was found. ``state``: ``"Trusted"`` (valid and the signer
    chains to a configured anchor), ``"Valid"`` (cryptographically intact, unknown anchor),
    ``"Invalid"`` (hash/signature/structure failures), or ``None`` without a manifest.
    ``reasons``: ``"code: explanation"`` strings of the failures (empty when Trusted);
    ``codes``: the bare validation status codes. ``raw``: the reader's parsed JSON.
    """

    present: bool
    state: C2paState | None
    reasons: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    signer: dict[str, Any] = field(default_factory=dict)
    actions: tuple[dict[str, Any], ...] = ()
    digital_source_type: str | None = None
    consent_assertion: dict[str, Any] | None = None
    soft_binding: dict[str, Any] | None = None
    training_mining: dict[str, Any] | None = None
    ingredients: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def soft_binding_payload(self) -> bytes | None:
        """The watermark payload named by the soft-binding assertion, if any."""
        if not self.soft_binding:
            return None
        for block in self.soft_binding.get("blocks", []):
            value = block.get("value") if isinstance(block, dict) else None
            if isinstance(value, str):
                try:
                    return base64.b64decode(value, validate=True)
                except ValueError:
                    return None
        return None


def build_manifest(
    *,
    title: str,
    consent: ConsentClaim,
    watermark_algorithm: str,
    watermark_payload: bytes,
    job_id: str,
    composite: bool,
) -> dict[str, Any]:
    """Manifest definition (JSON-ready dict) for one synthetic output.

    ``composite=False``: fully synthetic (``c2pa.created`` + ``trainedAlgorithmicMedia``).
    ``composite=True``: a face swap into source footage (``c2pa.edited`` +
    ``compositeWithTrainedAlgorithmicMedia``); sign it with ``parent=`` the source so the
    source becomes the parent ingredient. ``watermark_payload``: the 8 bytes embedded in the
    pixels, recorded base64 in the ``c2pa.soft-binding`` assertion.
    """
    if not isinstance(watermark_payload, bytes | bytearray) or len(watermark_payload) != 8:
        raise ProvenanceError(
            f"watermark payload must be 8 bytes, got {type(watermark_payload).__name__} "
            f"of length {len(watermark_payload) if hasattr(watermark_payload, '__len__') else '?'}"
        )
    if not watermark_algorithm:
        raise ProvenanceError("watermark algorithm id is empty")
    if composite:
        action: dict[str, Any] = {
            "action": "c2pa.edited",
            "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
        }
        description = "face replaced with a consented synthetic likeness"
    else:
        action = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
        description = "synthetic likeness generated under a consent grant"
    action["softwareAgent"] = {"name": "likeness", "version": likeness.__version__}
    action["description"] = description
    consent_data = {
        "grant_id": consent.grant_id,
        "subject_id": consent.subject_id,
        "subject_slug": consent.subject_slug,
        "subject_kind": consent.subject_kind,
        "use": consent.use,
        "org_slug": consent.org_slug,
        "holder_fingerprint": consent.holder_fingerprint,
        "grant_signature_sha256": consent.grant_signature_sha256,
        "job_id": job_id,
        "watermark_payload": bytes(watermark_payload).hex(),
    }
    return {
        "claim_generator_info": [{"name": "likeness", "version": likeness.__version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [action]}},
            {"label": CONSENT_ASSERTION_LABEL, "data": consent_data},
            {
                "label": SOFT_BINDING_LABEL,
                "data": {
                    "alg": watermark_algorithm,
                    "blocks": [{"scope": {}, "value": base64.b64encode(bytes(watermark_payload)).decode("ascii")}],
                },
            },
            {
                "label": TRAINING_MINING_LABEL,
                "data": {"entries": {name: {"use": "notAllowed"} for name in TRAINING_MINING_ENTRIES}},
            },
        ],
    }


def sign_file(
    src: Path,
    dst: Path,
    manifest: dict[str, Any],
    setup: SigningSetup,
    *,
    parent: Path | None = None,
) -> int:
    """Embed a signed manifest: read ``src``, write the signed asset to ``dst``.

    The format comes from ``src``'s suffix (JPEG, PNG, WebP, MP4/M4V, MOV). ``parent``
    (the source footage of a swap) becomes the ``parentOf`` ingredient and the claim an edit.
    ``dst`` appears atomically; on failure nothing is left at ``dst``. Returns the manifest
    size in bytes. Raises ``ProvenanceError`` (signing failed), ``MediaError`` (unreadable
    or unsupported ``src``).
    """
    src, dst = Path(src), Path(dst)
    mime = _mime_for(src)
    if not src.is_file():
        raise MediaError(src, "file not found")
    first_action = _first_action(manifest)
    if first_action == "c2pa.edited" and parent is None:
        raise ProvenanceError("an edited (composite) manifest needs the source as parent ingredient")
    if first_action == "c2pa.created" and parent is not None:
        raise ProvenanceError("a created manifest cannot have a parent ingredient")
    parent_mime: str | None = None
    if parent is not None:
        parent = Path(parent)
        if not parent.is_file():
            raise MediaError(parent, "parent ingredient not found")
        parent_mime = MIME_BY_SUFFIX.get(parent.suffix.lower())
        if parent_mime is None:
            manifest = _with_parent_by_name(manifest, parent)
    try:
        with atomic_path(dst) as tmp, _context(trust_anchors_pem=[setup.trust_anchor_pem]) as context:
            signer = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(
                    c2pa.C2paSigningAlg.ES256, setup.cert_chain_pem.encode("ascii"), setup.private_key_pem(), None
                )
            )
            try:
                with c2pa.Builder(manifest, context=context) as builder:
                    if parent is not None:
                        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
                        if parent_mime is not None:
                            _add_parent(builder, parent, parent_mime)
                    with open(src, "rb") as source, open(tmp, "w+b") as dest:
                        manifest_bytes = builder.sign(signer, mime, source, dest)
            finally:
                signer.close()
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"{src}: C2PA signing failed: {_short(exc)}") from None
    except OSError as exc:
        raise ProvenanceError(f"{dst}: C2PA signing failed: {exc.strerror or exc}") from None
    return len(manifest_bytes)


def read_manifest(path: Path, *, trust_anchors_pem: list[str] | tuple[str, ...]) -> C2paReading:
    """Read and validate the C2PA manifest store of ``path`` against ``trust_anchors_pem``.

    Each anchor is a PEM text (one or more certificates). Without a manifest the reading has
    ``present=False, state=None``. A damaged manifest or asset gives ``state="Invalid"`` with
    the reasons; a format c2pa cannot read gives ``present=False`` and a reason. Raises
    ``MediaError`` if the file is missing, ``ProvenanceError`` for an unusable anchor.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    mime = MIME_BY_SUFFIX.get(path.suffix.lower())
    try:
        with _context(trust_anchors_pem=list(trust_anchors_pem)) as context, open(path, "rb") as stream:
            # A known suffix is a hint; c2pa-rs still sniffs the bytes and wins on mismatch.
            reader = c2pa.Reader.try_create(mime, stream, None, context)
            if reader is None:
                return C2paReading(present=False, state=None)
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.NotSupported as exc:
        return C2paReading(present=False, state=None, reasons=(f"unsupported format: {_short(exc)}",))
    except c2pa.C2paError as exc:
        return C2paReading(
            present=True,
            state="Invalid",
            reasons=(f"unreadable manifest: {_short(exc)}",),
            codes=("manifest.unreadable",),
        )
    return reading_from_store(store)


def reading_from_store(store: dict[str, Any]) -> C2paReading:
    """Turn the reader's manifest-store JSON into a ``C2paReading`` (pure)."""
    raw_state = store.get("validation_state")
    state: C2paState = raw_state if raw_state in ("Trusted", "Valid") else "Invalid"
    failures = _failures(store)
    if raw_state not in ("Trusted", "Valid", "Invalid"):
        failures.append(("validation.stateUnknown", f"reader reported state {raw_state!r}"))
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    if not active:
        failures.append(("manifest.noActive", "no active manifest in the store"))
        state = "Invalid"
    assertions = {a.get("label", ""): a.get("data") for a in active.get("assertions", [])}
    actions: list[dict[str, Any]] = []
    for label, data in assertions.items():
        if label.split(".v")[0] == "c2pa.actions" and isinstance(data, dict):
            actions.extend(a for a in data.get("actions", []) if isinstance(a, dict))
    digital_source_type = next(
        (a["digitalSourceType"] for a in actions if isinstance(a.get("digitalSourceType"), str)), None
    )
    return C2paReading(
        present=True,
        state=state,
        reasons=tuple(f"{code}: {text}" for code, text in failures),
        codes=tuple(code for code, _ in failures),
        signer=dict(active.get("signature_info", {})),
        actions=tuple(actions),
        digital_source_type=digital_source_type,
        consent_assertion=_dict_or_none(assertions.get(CONSENT_ASSERTION_LABEL)),
        soft_binding=_dict_or_none(assertions.get(SOFT_BINDING_LABEL)),
        training_mining=_dict_or_none(assertions.get(TRAINING_MINING_LABEL) or assertions.get("c2pa.training-mining")),
        ingredients=tuple(i for i in active.get("ingredients", []) if isinstance(i, dict)),
        raw=store,
    )


def _failures(store: dict[str, Any]) -> list[tuple[str, str]]:
    results = store.get("validation_results") or {}
    statuses: list[dict[str, Any]] = list((results.get("activeManifest") or {}).get("failure", []))
    for delta in results.get("ingredientDeltas", []) or []:
        statuses.extend((delta.get("validationDeltas") or {}).get("failure", []))
    if not results:
        # Older-style stores put failures in a flat list.
        statuses.extend(store.get("validation_status", []) or [])
    return [(str(s.get("code", "unknown")), str(s.get("explanation", ""))) for s in statuses]


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


class _context:
    """A c2pa Context with trust anchors configured and network fetches off."""

    def __init__(self, *, trust_anchors_pem: list[str]) -> None:
        self._settings = _settings(trust_anchors_pem)
        self._ctx: c2pa.Context | None = None

    def __enter__(self) -> c2pa.Context:
        try:
            self._ctx = c2pa.Context.from_dict(self._settings)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"trust anchors rejected by c2pa: {_short(exc)}") from None
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.close()


def _settings(trust_anchors_pem: list[str]) -> dict[str, Any]:
    certs: list[str] = []
    for index, pem in enumerate(trust_anchors_pem):
        certs.extend(parse_trust_anchor(pem if isinstance(pem, str) else "", source=f"trust anchor #{index + 1}"))
    verify = {
        "verify_trust": True,
        "verify_after_reading": True,
        "verify_after_sign": True,
        "remote_manifest_fetch": False,
        "ocsp_fetch": False,
    }
    settings: dict[str, Any] = {"verify": verify, "builder": {"thumbnail": {"enabled": False}}}
    if certs:
        settings["trust"] = {"trust_anchors": "".join(certs)}
    return settings


def _add_parent(builder: c2pa.Builder, parent: Path, mime: str) -> None:
    with open(parent, "rb") as stream:
        builder.add_ingredient({"title": parent.name, "relationship": "parentOf", "format": mime}, mime, stream)


def _with_parent_by_name(manifest: dict[str, Any], parent: Path) -> dict[str, Any]:
    # c2pa cannot parse this container (e.g. MKV, WebM): record the parent by name and a
    # content digest so the edit still names its source.
    ingredient = {
        "title": parent.name,
        "relationship": "parentOf",
        "format": "application/octet-stream",
        "instance_id": f"likeness:sha256:{sha256_file(parent)}",
    }
    return {**manifest, "ingredients": [*manifest.get("ingredients", []), ingredient]}


def _first_action(manifest: dict[str, Any]) -> str | None:
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            acts = (assertion.get("data") or {}).get("actions") or []
            return acts[0].get("action") if acts else None
    return None


def _mime_for(path: Path) -> str:
    mime = MIME_BY_SUFFIX.get(path.suffix.lower())
    if mime is None:
        raise MediaError(
            path, f"C2PA signing supports {', '.join(sorted(MIME_BY_SUFFIX))}; got {path.suffix or 'no suffix'!r}"
        )
    return mime


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
