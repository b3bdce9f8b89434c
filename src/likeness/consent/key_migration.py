"""Move rights holders' private keys out of a workspace made before offline signing.

Workspaces made before ``likeness holder`` kept a key file per holder in ``HOME/keys/holders/``
(``SLUG.pem``, and ``SLUG.pem.new`` from an interrupted key change). The organisation must not
hold them. ``export_holder_keys`` (``likeness consent migrate-keys --export DIR``) copies each
file to a folder outside the workspace that the holder must take away, records a
``holder.key_exported`` event (holder, fingerprint, whether it is the key in force; never key
material), and deletes it from the workspace. Grants, releases and revocations already signed
stay valid: they are verified with the public key on the ledger, not with the file. Nothing in
the product signs with a key inside the workspace any more (``holder.refuse_inside_workspace``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from likeness.consent import keys
from likeness.consent.anchor import outside_workspace
from likeness.consent.canonical import now_utc, utc_iso
from likeness.durable import write_atomic
from likeness.errors import ConfigError

if TYPE_CHECKING:
    from likeness.workspace import Workspace


@dataclass(frozen=True)
class ExportedKey:
    """One key file moved out: where it went, whose it is and whether it signs for them now."""

    exported_to: Path
    holder_slug: str
    holder_id: str | None  # None: no holder on the ledger has this slug
    fingerprint: str | None  # None: the file is not a readable Ed25519 key
    in_force: bool


def workspace_holder_keys(keys_dir: Path) -> list[Path]:
    """Holder key files still in the workspace's ``keys/holders/`` folder, sorted."""
    folder = keys_dir / "holders"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name.endswith(".pem") or p.name.endswith(".new")))


def legacy_keys_warning(keys_dir: Path) -> str | None:
    """A one-line warning when holder keys are still in the workspace, else ``None``."""
    found = workspace_holder_keys(keys_dir)
    if not found:
        return None
    return (
        f"{len(found)} rights-holder private key file(s) are still in {keys_dir / 'holders'}: nothing signs "
        f"with them any more; move them out with 'likeness consent migrate-keys --export DIR' and hand each "
        f"to its holder"
    )


def _fingerprint_of(pem: bytes) -> str | None:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return keys.fingerprint(keys.public_raw(key)) if isinstance(key, Ed25519PrivateKey) else None


def _write_exclusive(path: Path, content: bytes, mode: int) -> None:
    """Write ``content`` to a new file whole (never overwrite a different one)."""
    if path.exists():
        if path.read_bytes() == content:
            return  # an earlier, interrupted run already copied it
        raise ConfigError(f"{path}: a different file is already there; refusing to overwrite it")
    write_atomic(path, content, mode=mode, overwrite=False)


def export_holder_keys(workspace: Workspace, export_dir: Path) -> list[ExportedKey]:
    """Move every holder key file out of the workspace into ``export_dir`` (outside the
    workspace; made 0700, files 0600, with each public key beside it). The workspace copy is
    deleted only after the export is written and the ledger event appended."""
    from likeness.consent.integrity import LedgerConsent

    found = workspace_holder_keys(workspace.keys_dir)
    if not found:
        return []
    target = outside_workspace(export_dir, workspace.home)
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    exported = []
    for path in found:
        pem = path.read_bytes()
        slug = path.name.split(".", 1)[0]
        created = workspace.ledger.find("holder.created", slug=slug)
        holder_id = str(created[0].payload["holder_id"]) if created else None
        fingerprint = _fingerprint_of(pem)
        in_force = False
        if holder_id and fingerprint:
            with workspace.session() as session:
                current = LedgerConsent(session).holder_keys(holder_id).current
            in_force = current is not None and current.fingerprint == fingerprint
        destination = target / path.name
        _write_exclusive(destination, pem, 0o600)
        if fingerprint:
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, Ed25519PrivateKey)
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            stem = path.name.removesuffix(".pem").replace(".pem.new", ".new")
            _write_exclusive(target / f"{stem}.pub.pem", public, 0o644)
        workspace.ledger.append(
            "holder.key_exported",
            {
                "holder_id": holder_id,
                "slug": slug,
                "key_fingerprint": fingerprint,
                "in_force": in_force,
                "file": path.name,
                "exported_at": utc_iso(now_utc()),
            },
        )
        path.unlink()
        exported.append(ExportedKey(destination, slug, holder_id, fingerprint, in_force))
    folder = workspace.keys_dir / "holders"
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return exported
