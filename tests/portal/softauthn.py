"""A software WebAuthn authenticator for tests: an EC P-256 key that makes real registrations
and assertions (authenticatorData || SHA-256(clientDataJSON), signed with ES256), its COSE key
encoded with cbor2. Nothing in the verification is mocked."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from likeness.consent.passkeys import Assertion, b64url

RP_ID = "localhost"
ORIGIN = "http://localhost:8000"
FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


@dataclass
class SoftAuthenticator:
    rp_id: str = RP_ID
    origin: str = ORIGIN
    keeps_counter: bool = True
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    sign_count: int = 0

    @property
    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, rp_id: str, flags: int, count: int, attested: bytes = b"") -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", count) + attested

    def _client_data(self, kind: str, challenge: bytes, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": b64url(challenge), "origin": origin, "crossOrigin": False}
        ).encode()

    def register(self, challenge: bytes) -> dict:
        """A ``navigator.credentials.create()`` response (attestation ``none``), as JSON."""
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_key
        auth_data = self._auth_data(self.rp_id, FLAG_UP | FLAG_UV | FLAG_AT, self.sign_count, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self._client_data("webauthn.create", challenge, self.origin)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64url(client), "attestationObject": b64url(attestation)},
        }

    def sign(
        self,
        challenge: bytes,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        count: int | None = None,
    ) -> Assertion:
        """A real assertion over ``challenge`` (the counter advances unless ``count`` is given)."""
        if count is None:
            if self.keeps_counter:
                self.sign_count += 1
            count = self.sign_count
        flags = FLAG_UP | (FLAG_UV if user_verified else 0)
        auth_data = self._auth_data(rp_id or self.rp_id, flags, count)
        client = self._client_data("webauthn.get", challenge, origin or self.origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return Assertion(self.credential_id, auth_data, client, signature, self.cose_key)

    def response(self, assertion: Assertion) -> dict:
        """``assertion`` as a ``navigator.credentials.get()`` JSON response."""
        return {
            "id": b64url(assertion.credential_id),
            "rawId": b64url(assertion.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64url(assertion.authenticator_data),
                "clientDataJSON": b64url(assertion.client_data_json),
                "signature": b64url(assertion.signature),
            },
        }
