"""The organisation's C2PA signing setup: a root CA and an ES256 end-entity certificate.

``ensure_signing_setup(keys_dir, org_name)`` creates (once) and then reloads:

* ``root-ca.pem`` / ``root-ca.key``: a self-signed EC P-256 root (CA, keyCertSign + cRLSign).
  The root certificate is the organisation's trust anchor: verifiers configure it, never
  switch verification off.
* ``signer.pem`` / ``signer.key``: the end-entity signing certificate the C2PA claim is
  signed with (not a CA, ``digitalSignature`` only, EKU ``emailProtection`` +
  ``documentSigning`` which c2pa-rs accepts by default, SKI/AKI).
* ``chain.pem``: end-entity first, then the root, as c2pa wants it.

Private keys are written with mode 0600 from their temporary's creation on
(:func:`likeness.durable.write_atomic`: never readable by others, even for an instant) and never
printed or logged; ``SigningSetup`` holds the key's *path*, not the key. Creation is atomic per
file and idempotent: a second call loads what is there.

Example::

    setup = ensure_signing_setup(Path("home/keys/c2pa"), "Studio Co")
    setup.signer_fingerprint  # sha256 hex of the end-entity certificate (DER)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from likeness.durable import write_atomic
from likeness.errors import ProvenanceError
from likeness.keyfiles import KeyFileRefused, read_key_file

ROOT_CERT_NAME = "root-ca.pem"
ROOT_KEY_NAME = "root-ca.key"
SIGNER_CERT_NAME = "signer.pem"
SIGNER_KEY_NAME = "signer.key"
CHAIN_NAME = "chain.pem"

ROOT_VALIDITY_DAYS = 3650
SIGNER_VALIDITY_DAYS = 825

# id-kp-documentSigning (RFC 9336); c2pa-rs's default EKU list accepts it and emailProtection.
DOCUMENT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


@dataclass(frozen=True)
class SigningSetup:
    """Paths and public material of an organisation's C2PA signing setup.

    ``cert_chain_pem``: end-entity then root certificate (PEM text), what the signer embeds.
    ``key_path``: the end-entity private key file (PKCS#8 PEM, mode 0600).
    ``trust_anchor_pem``: the root certificate (PEM text) verifiers configure as an anchor.
    ``signer_fingerprint`` / ``root_fingerprint``: sha256 hex of the DER certificates.
    """

    keys_dir: Path
    org_name: str
    cert_chain_pem: str
    key_path: Path
    trust_anchor_pem: str
    signer_cert_path: Path
    root_cert_path: Path
    chain_path: Path
    signer_fingerprint: str
    root_fingerprint: str
    not_valid_after: str

    def private_key_pem(self) -> bytes:
        """Read the end-entity private key (for the signer only; never log or print it), under
        the same rule as when the setup was loaded: the file may have changed since."""
        try:
            return read_key_file(self.key_path)
        except KeyFileRefused as refused:
            raise ProvenanceError(f"{self.key_path}: private key file {refused.reason}") from None
        except OSError as exc:
            raise ProvenanceError(f"{self.key_path}: signing key unreadable ({exc.strerror})") from None


def certificate_fingerprint(cert_pem: str | bytes) -> str:
    """sha256 hex of the first certificate in ``cert_pem`` (DER encoding)."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ProvenanceError(f"not a PEM certificate: {exc}") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def split_pem_certificates(pem_text: str) -> list[str]:
    """Split a PEM bundle into its certificates (each a PEM string), ignoring other text."""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    certs: list[str] = []
    rest = pem_text
    while (start := rest.find(begin)) != -1:
        stop = rest.find(end, start)
        if stop == -1:
            break
        certs.append(rest[start : stop + len(end)] + "\n")
        rest = rest[stop + len(end) :]
    return certs


def parse_trust_anchor(pem_text: str, *, source: str) -> list[str]:
    """The certificates of a trust-anchor PEM bundle, each checked to parse as X.509;
    ``ProvenanceError`` naming ``source`` when there is none or one is malformed."""
    certs = split_pem_certificates(pem_text)
    if not certs:
        raise ProvenanceError(f"{source}: trust anchor holds no PEM certificate")
    for cert_pem in certs:
        try:
            x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        except ValueError:
            raise ProvenanceError(f"{source}: not a valid PEM certificate") from None
    return certs


def ensure_signing_setup(keys_dir: Path, org_name: str, *, now: dt.datetime | None = None) -> SigningSetup:
    """Create the signing setup in ``keys_dir`` if absent, then load and check it.

    Idempotent: an existing setup is loaded as is (``org_name`` is only used when creating).
    Raises ``ProvenanceError`` if the folder holds a partial or inconsistent setup (e.g. a
    certificate whose key is missing, or a signer not issued by the root), or if
    ``org_name`` is empty.
    """
    keys_dir = Path(keys_dir)
    org_name = (org_name or "").strip()
    paths = [keys_dir / n for n in (ROOT_CERT_NAME, ROOT_KEY_NAME, SIGNER_CERT_NAME, SIGNER_KEY_NAME)]
    present = [p.exists() for p in paths]
    if not any(present):
        if not org_name:
            raise ProvenanceError("signing setup needs an organisation name")
        _create_setup(keys_dir, org_name, now=now or dt.datetime.now(dt.UTC))
    elif not all(present):
        missing = ", ".join(p.name for p, ok in zip(paths, present) if not ok)
        raise ProvenanceError(f"{keys_dir}: incomplete signing setup (missing {missing})")
    return load_signing_setup(keys_dir)


def load_signing_setup(keys_dir: Path) -> SigningSetup:
    """Load an existing setup from ``keys_dir`` and check that its parts belong together."""
    keys_dir = Path(keys_dir)
    root_cert = _load_cert(keys_dir / ROOT_CERT_NAME)
    signer_cert = _load_cert(keys_dir / SIGNER_CERT_NAME)
    signer_key = _load_key(keys_dir / SIGNER_KEY_NAME)
    _load_key(keys_dir / ROOT_KEY_NAME)
    if _public_der(signer_key.public_key()) != _public_der(signer_cert.public_key()):
        raise ProvenanceError(f"{keys_dir / SIGNER_KEY_NAME}: key does not match {SIGNER_CERT_NAME}")
    try:
        signer_cert.verify_directly_issued_by(root_cert)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise ProvenanceError(f"{keys_dir / SIGNER_CERT_NAME}: not issued by {ROOT_CERT_NAME} ({exc})") from None
    root_pem = root_cert.public_bytes(serialization.Encoding.PEM).decode()
    signer_pem = signer_cert.public_bytes(serialization.Encoding.PEM).decode()
    chain_path = keys_dir / CHAIN_NAME
    chain_pem = signer_pem + root_pem
    if not chain_path.exists() or chain_path.read_text() != chain_pem:
        write_atomic(chain_path, chain_pem.encode(), mode=0o644)
    org = signer_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return SigningSetup(
        keys_dir=keys_dir,
        org_name=str(org[0].value) if org else "",
        cert_chain_pem=chain_pem,
        key_path=keys_dir / SIGNER_KEY_NAME,
        trust_anchor_pem=root_pem,
        signer_cert_path=keys_dir / SIGNER_CERT_NAME,
        root_cert_path=keys_dir / ROOT_CERT_NAME,
        chain_path=chain_path,
        signer_fingerprint=certificate_fingerprint(signer_pem),
        root_fingerprint=certificate_fingerprint(root_pem),
        not_valid_after=signer_cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _create_setup(keys_dir: Path, org_name: str, *, now: dt.datetime) -> None:
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    root_key = ec.generate_private_key(ec.SECP256R1())
    signer_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} C2PA Root CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
        ]
    )
    signer_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} likeness signer"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "likeness"),
        ]
    )
    # Backdate slightly so a signer's clock skew does not make a fresh cert "not yet valid".
    start = now - dt.timedelta(minutes=5)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=ROOT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(signer_name)
        .issuer_name(root_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=SIGNER_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_EKU]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    # Keys first: a crash after this leaves an "incomplete" setup that is reported, not reused.
    write_atomic(keys_dir / ROOT_KEY_NAME, _key_pem(root_key), mode=0o600)
    write_atomic(keys_dir / SIGNER_KEY_NAME, _key_pem(signer_key), mode=0o600)
    write_atomic(keys_dir / ROOT_CERT_NAME, root_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    write_atomic(keys_dir / SIGNER_CERT_NAME, signer_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ProvenanceError(f"{path}: certificate unreadable ({exc.strerror})") from None
    except ValueError:
        raise ProvenanceError(f"{path}: not a PEM certificate") from None


def _public_der(key: Any) -> bytes:
    """A public key's SubjectPublicKeyInfo (DER): equal exactly when the keys are the same."""
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key in ``path``, refused when group or others may read the file, as the
    organisation's Ed25519 key is (``consent.keys.load_private_key``): whoever reads the root's
    or the signer's key signs C2PA manifests that verify trusts as this organisation's."""
    try:
        key = serialization.load_pem_private_key(read_key_file(path), password=None)
    except KeyFileRefused as refused:
        raise ProvenanceError(f"{path}: private key file {refused.reason}") from None
    except OSError as exc:
        raise ProvenanceError(f"{path}: private key file cannot be read ({exc.strerror})") from None
    except (ValueError, TypeError):
        # Never echo the parser's message: it could quote key material.
        raise ProvenanceError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ProvenanceError(f"{path}: expected an EC P-256 key for ES256")
    return key


def workspace_trust_anchors(workspace: Any) -> list[str]:
    """PEM trust anchors a workspace verifies C2PA signatures against.

    Its own root (``keys_dir/c2pa/root-ca.pem``, when a signing setup exists) plus every
    ``*.pem`` / ``*.crt`` file in ``home/trust`` (partner agencies' roots, added by hand).
    Files there that hold no PEM certificate raise ``ProvenanceError`` naming the file.
    """
    keys_dir = Path(workspace.keys_dir)
    home = Path(workspace.home)
    anchors: list[str] = []
    own_root = keys_dir / "c2pa" / ROOT_CERT_NAME
    if own_root.is_file():
        anchors.append(_load_cert(own_root).public_bytes(serialization.Encoding.PEM).decode())
    trust_dir = home / "trust"
    if trust_dir.is_dir():
        for path in sorted(trust_dir.iterdir()):
            if path.suffix.lower() not in (".pem", ".crt") or not path.is_file():
                continue
            anchors.append("".join(parse_trust_anchor(path.read_text(errors="replace"), source=str(path))))
    return anchors
