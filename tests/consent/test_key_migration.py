"""Upgrading a workspace made before offline signing: holders' private keys leave the workspace.

The fixture ``fixtures/workspace-made-before-holder-signing.tar.gz`` was made by the code before
this change (commit 9e5a4f1) with the CLI: ``init --org studio``, ``subject add mina --virtual``,
``subject add jun --performer`` (each holder's private key written to ``keys/holders/``),
``consent grant mina --use training --use music_video`` (grant 0381a61d…), ``release add jun``
(release 763cf80a…), ``consent grant mina --use tribute`` (grant 5cfcdf5a…) and ``consent revoke
5cfcdf5a``, all signed with those workspace key files.
"""

from __future__ import annotations

import json
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.config import Settings
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import now_utc
from likeness.consent.grant_requests import ConsentRequest
from likeness.consent.holder import load_holder_key, sign_request
from likeness.consent.key_migration import export_holder_keys
from likeness.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-made-before-holder-signing.tar.gz"
OLD_GRANT = "0381a61d55b148a8a6e7e857631eb4d0"
OLD_REVOKED_GRANT = "5cfcdf5acf5949629a1d3f1d17d23e6a"
OLD_RELEASE = "763cf80a8c97454fa44a1970784026ed"

runner = CliRunner()


def run(home, *args: str, code: int = 0):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def old_home(tmp_path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    home = tmp_path / "home"
    (home / "keys" / "holders").chmod(0o700)
    for key in (home / "keys").rglob("*.key"):
        key.chmod(0o600)
    for key in (home / "keys").rglob("*.pem"):
        if key.parent.name in ("holders", "orgs"):
            key.chmod(0o600)
    return home


def test_old_workspace_keys_are_moved_out_and_what_they_signed_stays_valid(old_home, tmp_path):
    upgraded = run(old_home, "init").output  # the upgrade path of an existing workspace
    assert "2 rights-holder private key file(s)" in upgraded and "migrate-keys" in upgraded
    held = sorted(p.name for p in (old_home / "keys" / "holders").iterdir())
    assert held == ["jun-holder.pem", "mina-holder.pem"]
    warned = run(old_home, "audit", "verify").output
    assert "ledger intact" in warned and "migrate-keys" in warned  # a warning, not a failure

    refused = run(old_home, "consent", "migrate-keys", "--export", str(old_home / "export"), code=1).output
    assert "inside the workspace" in refused and (old_home / "keys" / "holders" / "mina-holder.pem").exists()

    export = tmp_path / "handover"
    out = run(old_home, "consent", "migrate-keys", "--export", str(export)).output
    assert "moved mina-holder's key" in out and "in force" in out
    assert not (old_home / "keys" / "holders").exists()
    assert (old_home / "keys" / "orgs" / "studio.pem").exists()  # the organisation's own key stays
    assert export.stat().st_mode & 0o777 == 0o700
    for name in ("mina-holder.pem", "jun-holder.pem"):
        assert (export / name).stat().st_mode & 0o777 == 0o600
        assert (export / name.replace(".pem", ".pub.pem")).exists()
    assert "nothing to move" in run(old_home, "consent", "migrate-keys", "--export", str(export)).output

    ws = Workspace.open(Settings(home=old_home))
    try:
        # Everything signed with the old key files is verified with the public keys on the ledger.
        assert ws.registry.grant_state(OLD_GRANT) == "active"
        assert ws.registry.grant_state(OLD_REVOKED_GRANT) == "revoked"
        assert [r.state for r in ws.registry.list_releases()] == ["active"]
        assert ws.policy.authorize("mina", "music_video", "studio").grant_id == OLD_GRANT
        assert ws.policy.authorize_release("jun", "studio").release_id == OLD_RELEASE
        events = ws.ledger.find("holder.key_exported")
        assert {e.payload["slug"] for e in events} == {"mina-holder", "jun-holder"}
        assert all(e.payload["in_force"] and e.payload["key_fingerprint"].startswith("ed25519:") for e in events)
        secret = b"".join((export / "mina-holder.pem").read_bytes().splitlines()[1:-1]).decode()
        assert all(secret not in json.dumps(e.payload) for e in ws.ledger.events()) and secret not in out
        report = audit_workspace(ws)
        assert report.ok, report.problems
        assert not any("migrate-keys" in w for w in report.warnings)

        # The holder takes the exported key away and signs new consent on their own machine.
        laptop = tmp_path / "mina-laptop"
        laptop.mkdir(mode=0o700)
        (export / "mina-holder.pem").rename(laptop / "mina.pem")
        request = ws.registry.request_grant("mina", "studio", ["tribute"], valid_until=now_utc() + timedelta(days=3))
        request = ConsentRequest.from_json(json.loads(json.dumps(request.as_json())))
        grant_id = ws.registry.import_signed(sign_request(request, load_holder_key(laptop / "mina.pem")))
        assert ws.registry.grant_state(grant_id) == "active"
    finally:
        ws.close()


def test_a_key_file_left_in_the_workspace_signs_nothing(old_home, tmp_path):
    """Before the migration the key files are still there, but nothing signs with them."""
    run(old_home, "init")
    inside = old_home / "keys" / "holders" / "mina-holder.pem"
    ws = Workspace.open(Settings(home=old_home))
    try:
        request = ws.registry.request_grant("mina", "studio", ["tribute"], valid_until=now_utc() + timedelta(days=3))
    finally:
        ws.close()
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request.as_json()))
    out = run(
        tmp_path,
        "holder",
        "sign",
        str(request_file),
        "--key",
        str(inside),
        "--out",
        str(tmp_path / "s"),
        "--yes",
        code=1,
    ).output
    assert "inside the likeness workspace" in out
    notice = run(
        old_home, "consent", "request", "mina", "--use", "training", "--until", "+3d", "--out", str(tmp_path / "r")
    )
    assert "migrate-keys" in notice.output


def test_export_keeps_an_unreadable_or_unknown_key_file_and_records_it(old_home, tmp_path):
    run(old_home, "init")
    (old_home / "keys" / "holders" / "ghost.pem").write_bytes(b"not a key")
    (old_home / "keys" / "holders" / "mina-holder.pem.new").write_bytes(
        (old_home / "keys" / "holders" / "jun-holder.pem").read_bytes()
    )
    ws = Workspace.open(Settings(home=old_home))
    try:
        moved = {key.exported_to.name: key for key in export_holder_keys(ws, tmp_path / "export")}
        assert set(moved) == {"ghost.pem", "jun-holder.pem", "mina-holder.pem", "mina-holder.pem.new"}
        assert moved["ghost.pem"].holder_id is None and moved["ghost.pem"].fingerprint is None
        assert moved["mina-holder.pem.new"].in_force is False  # jun's key is not mina's
        assert (tmp_path / "export" / "mina-holder.new.pub.pem").exists()
        assert not (ws.keys_dir / "holders").exists()
        assert audit_workspace(ws).ok
    finally:
        ws.close()


def test_an_exported_key_is_written_whole_and_0600_from_its_temporary_on(old_home, tmp_path, monkeypatch):
    """The export wrote each key straight under its own name: a kill mid-write left a torn key
    there, which the rerun then refused as "a different file is already there"."""
    import os

    from tests.durability import assert_written_whole, hidden_files, watch_disk

    run(old_home, "init")
    ws = Workspace.open(Settings(home=old_home))
    log = watch_disk(monkeypatch)
    previous = os.umask(0)
    try:
        export_holder_keys(ws, tmp_path / "export")
    finally:
        os.umask(previous)
        ws.close()
    for name, mode in (("mina-holder.pem", 0o600), ("mina-holder.pub.pem", 0o644)):
        assert assert_written_whole(log, tmp_path / "export" / name).mode == mode
    assert hidden_files(tmp_path / "export") == []
