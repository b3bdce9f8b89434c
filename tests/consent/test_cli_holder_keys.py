"""CLI: holder key rotation and recovery; ``consent list`` agrees with the engine after tampering."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from typer.testing import CliRunner

from likeness.cli import app
from tests.consent.test_cli_consent import enrol, holder_key, revoked_by_holder, signed_by_holder

runner = CliRunner()


def run(home, *args: str, code: int = 0):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    return result


def _home(tmp_path):
    home = tmp_path / "home"
    run(home, "init", "--org", "studio")
    key = enrol(home, "mina", "--virtual", "--owner-org", "studio")
    grant_id = signed_by_holder(home, key, "consent", "request", "mina", "--use", "training", "--until", "+30d")
    return home, key, grant_id


def test_rotate_key_then_grant_and_revoke(tmp_path):
    home, old_key, grant_id = _home(tmp_path)
    new_key, new_public = holder_key(home, "mina-device")
    receipt = next(p for p in (home.parent / "exchange").glob("signed-*.json") if grant_id in p.read_text())
    rotation = tmp_path / "rotation.json"
    out = run(
        home,
        "holder",
        "rotate",
        str(receipt),
        "--key",
        str(old_key),
        "--new-public-key",
        str(new_public),
        "--out",
        str(rotation),
    ).output
    assert "key rotation signed" in out
    assert "now signs with key ed25519:" in run(home, "consent", "import", str(rotation)).output
    assert "holder.key_rotated" in run(home, "audit", "log", "--json").output
    replayed = run(home, "consent", "import", str(rotation), code=1).output
    assert "signature_invalid" in replayed and "Traceback" not in replayed
    signed_by_holder(home, new_key, "consent", "request", "mina", "--use", "music_video", "--until", "+30d")
    assert "active" in run(home, "consent", "list").output
    # The old key is retired: a revocation it signs is refused, with the reason.
    stale = tmp_path / "stale-revocation.json"
    run(home, "holder", "revoke", str(receipt), "--key", str(old_key), "--out", str(stale))
    refused = run(home, "consent", "import", str(stale), code=1)
    assert "signature_invalid" in refused.output and "Traceback" not in refused.output
    revoked_by_holder(home, new_key, grant_id)
    assert json.loads(run(home, "consent", "show", grant_id, "--json").output)["state"] == "revoked"


def test_recover_key_needs_an_attestation_and_records_it(tmp_path):
    home, old_key, grant_id = _home(tmp_path)
    old_key.unlink()  # the holder lost the key
    new_key, new_public = holder_key(home, "mina-new")
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
        "--new-public-key",
        str(new_public),
    ).output
    assert "recovered by studio" in out
    revoked_by_holder(home, new_key, grant_id, "after recovery")
    assert "revoked" in run(home, "consent", "list").output


def test_consent_list_and_check_agree_after_a_deleted_revocation(tmp_path):
    home, key, grant_id = _home(tmp_path)
    revoked_by_holder(home, key, grant_id)
    with sqlite3.connect(home / "likeness.db") as db:
        db.execute("DELETE FROM grant_revocations")
    assert "revoked" in run(home, "consent", "list").output
    assert "revoked" in run(home, "consent", "check", "mina", "--use", "training", code=1).output


def test_recover_key_refuses_empty_or_too_large_evidence(tmp_path, monkeypatch):
    from likeness.consent import registry

    home, old_key, _grant_id = _home(tmp_path)
    _new_key, new_public = holder_key(home, "mina-new")
    attested = ["--statement", "identity checked", "--verified-by", "J. Park (legal)", "--method", "in_person"]
    evidence = tmp_path / "passport-check.pdf"
    evidence.write_bytes(b"")
    recover = ["consent", "recover-key", "mina-holder", *attested, "--new-public-key", str(new_public)]
    empty = run(home, *recover, "--evidence", str(evidence), code=1).output
    assert "passport-check.pdf: the evidence file is empty" in " ".join(empty.split()) and "Traceback" not in empty
    monkeypatch.setattr(registry, "EVIDENCE_MAX_BYTES", 1000)
    evidence.write_bytes(b"x" * 1001)
    large = run(home, *recover, "--evidence", str(evidence), code=1).output
    assert "evidence may have at most 1000 bytes" in " ".join(large.split())
    assert _key_recoveries(home) == []
    evidence.write_bytes(b"x" * 1000)
    assert "recovered by studio" in run(home, *recover, "--evidence", str(evidence)).output
    (attested_payload,) = _key_recoveries(home)
    assert attested_payload["attestation"]["evidence_sha256"] == hashlib.sha256(b"x" * 1000).hexdigest()


def _key_recoveries(home) -> list[dict]:
    with sqlite3.connect(home / "likeness.db") as db:
        rows = db.execute("SELECT payload FROM ledger WHERE event_type = 'holder.key_recovered'").fetchall()
    return [json.loads(payload) for (payload,) in rows]
