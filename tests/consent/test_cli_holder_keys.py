"""CLI: holder key rotation and recovery; ``consent list`` agrees with the engine after tampering."""

from __future__ import annotations

import sqlite3

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from likeness.cli import app

runner = CliRunner()


def run(home, *args: str, code: int = 0):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    return result


def _home(tmp_path):
    home = tmp_path / "home"
    run(home, "init", "--org", "studio")
    run(home, "subject", "add", "mina", "--virtual", "--owner-org", "studio")
    out = run(home, "consent", "grant", "mina", "--use", "training", "--until", "+30d").output
    return home, out.split("grant ")[1].split()[0]


def test_rotate_key_then_grant_and_revoke(tmp_path):
    home, grant_id = _home(tmp_path)
    out = run(home, "consent", "rotate-key", "mina-holder").output
    assert "now signs with key ed25519:" in out
    run(home, "consent", "grant", "mina", "--use", "music_video", "--until", "+30d")
    assert "active" in run(home, "consent", "list").output
    assert "holder.key_rotated" in run(home, "audit", "log", "--json").output

    holder_key = Ed25519PrivateKey.generate()
    pem = tmp_path / "device.pub.pem"
    pem.write_bytes(
        holder_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    run(home, "consent", "rotate-key", "mina-holder", "--new-public-key", str(pem))
    refused = run(home, "consent", "revoke", grant_id[:10], code=1)  # the workspace key is retired
    assert "private key file not found" in refused.output and "Traceback" not in refused.output


def test_recover_key_needs_an_attestation_and_records_it(tmp_path):
    home, grant_id = _home(tmp_path)
    (home / "keys" / "holders" / "mina-holder.pem").unlink()
    missing = run(home, "consent", "recover-key", "mina-holder", "--statement", "x", code=2)
    assert "--verified-by" in missing.output
    evidence = tmp_path / "passport-check.pdf"
    evidence.write_bytes(b"scan")
    out = run(
        home,
        "consent",
        "recover-key",
        "mina-holder",
        "--statement",
        "identity checked",
        "--verified-by",
        "J. Park (legal)",
        "--method",
        "in_person",
        "--evidence",
        str(evidence),
    ).output
    assert "recovered by studio" in out
    run(home, "consent", "revoke", grant_id[:10], "--reason", "after recovery")
    assert "revoked" in run(home, "consent", "list").output


def test_consent_list_and_check_agree_after_a_deleted_revocation(tmp_path):
    home, grant_id = _home(tmp_path)
    run(home, "consent", "revoke", grant_id[:10])
    with sqlite3.connect(home / "likeness.db") as db:
        db.execute("DELETE FROM grant_revocations")
    assert "revoked" in run(home, "consent", "list").output
    assert "revoked" in run(home, "consent", "check", "mina", "--use", "training", code=1).output
