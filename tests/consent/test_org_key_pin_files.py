"""An organisation's public-key pin (``keys/orgs/<slug>.pub``) lets a process that cannot read
the private key (an auditor's copy of the workspace without private keys, another account)
count the organisation; one that disagrees with the private key, or names another key than the
ledger's, is refused and named."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes
from likeness.consent.integrity import LedgerConsent, consent_row_problems
from likeness.workspace import Workspace


def _copy_without_private_keys(ws: Workspace, tmp_path) -> Settings:
    """What an auditor receives: the workspace folder, the organisations' private keys left out."""
    copy = tmp_path / "audit-copy"
    shutil.copytree(ws.settings.resolved_home, copy)
    for private in (copy / "keys" / "orgs").glob("*.pem"):
        private.unlink()
    return Settings(home=copy)


def test_org_add_writes_a_public_pin_beside_the_key(consent_world):
    ws = consent_world.workspace
    pin = keys.org_pin_file(ws.keys_dir, "studio")
    assert stat.S_IMODE(pin.stat().st_mode) == 0o644
    private = keys.load_private_key(ws.registry.org_key_path("studio"))
    assert keys._read_org_pin(pin) == keys.fingerprint(keys.public_raw(private))


def test_a_copy_without_private_keys_audits_clean_and_uses_sealed_references(enrolled_world, tmp_path):
    ws = enrolled_world.workspace
    references = len(ws.registry.reference_rows())
    assert references == 2
    settings = _copy_without_private_keys(ws, tmp_path)
    copy = Workspace.open(settings, read_only=True)
    try:
        report = audit_workspace(copy)
        assert report.ok and not report.problems, report.problems
        assert len(copy.registry.reference_rows()) == references
    finally:
        copy.close()


def test_a_pin_rewritten_to_another_key_is_refused_and_named_in_a_copy(consent_world, tmp_path):
    ws = consent_world.workspace
    settings = _copy_without_private_keys(ws, tmp_path)
    keys.write_org_pin(settings.keys_dir, "studio", Ed25519PrivateKey.generate())
    copy = Workspace.open(settings, read_only=True)
    try:
        studio = copy.registry.get_org("studio").id
        with copy.session() as session:
            assert LedgerConsent(session).org_key(studio) is None
        named = [p.problem for p in consent_row_problems(copy) if p.record_id == studio]
        assert named and "studio.pub holds another key" in named[0] and "not pinned" in named[0]
    finally:
        copy.close()


def test_a_pin_that_disagrees_with_the_private_key_is_refused_and_named(consent_world):
    ws = consent_world.workspace
    keys.write_org_pin(ws.keys_dir, "studio", Ed25519PrivateKey.generate())
    studio = ws.registry.get_org("studio").id
    with ws.session() as session:
        assert LedgerConsent(session).org_key(studio) is None
    named = [p.problem for p in consent_row_problems(ws) if p.record_id == studio]
    assert named and "studio.pub holds another key" in named[0] and "disagrees with the private key" in named[0]


def test_init_writes_the_pins_a_workspace_made_before_them_lacks(consent_world, tmp_path):
    ws = consent_world.workspace
    pin = keys.org_pin_file(ws.keys_dir, "studio")
    pin.unlink()
    Workspace.init(ws.settings).close()
    assert stat.S_IMODE(pin.stat().st_mode) == 0o644
    settings = _copy_without_private_keys(ws, tmp_path)
    copy = Workspace.open(settings, read_only=True)
    try:
        assert consent_row_problems(copy) == []
    finally:
        copy.close()


def test_a_pin_is_written_whole_and_never_through_a_planted_link(tmp_path, monkeypatch):
    """The pin went through a temporary with a predictable name opened without ``O_EXCL``: a link
    planted under that name was written through. Its folder was not fsynced after the rename."""
    import os

    from tests.durability import assert_written_whole, hidden_files, watch_disk

    orgs = tmp_path / "keys" / "orgs"
    orgs.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("someone else's file")
    (orgs / f".studio.pub.{os.getpid()}.partial").symlink_to(victim)
    log = watch_disk(monkeypatch)
    path = keys.write_org_pin(tmp_path / "keys", "studio", Ed25519PrivateKey.generate())
    assert victim.read_text() == "someone else's file"
    assert assert_written_whole(log, path).mode == 0o644
    (orgs / f".studio.pub.{os.getpid()}.partial").unlink()
    assert hidden_files(orgs) == []


def test_a_private_key_is_written_whole_0600_from_its_temporary_on_and_never_over_a_key(tmp_path, monkeypatch):
    """The key was written straight under its own name: a kill mid-write left a torn key that
    every later attempt refused to replace."""
    import os

    import pytest

    from likeness.errors import ConfigError
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    path = tmp_path / "holder.pem"
    log = watch_disk(monkeypatch)
    previous = os.umask(0)
    try:
        keys.generate_key(path)
    finally:
        os.umask(previous)
    assert assert_written_whole(log, path).mode == 0o600 and stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = path.read_bytes()
    with pytest.raises(ConfigError, match="a key file already exists; refusing to overwrite it"):
        keys.generate_key(path)
    assert path.read_bytes() == kept and hidden_files(tmp_path) == []


#: An account that is not the workspace's (``nobody`` on Debian).
OTHER_UID = 65534


def _as_another_account(paths: list[Path], monkeypatch) -> None:
    """Make ``paths`` another account's: chown as root (CI runs as root); otherwise the
    workspace folder's account is played as another one, so every folder and pin is foreign."""
    if os.geteuid() == 0:
        for path in paths:
            os.lchown(path, OTHER_UID, OTHER_UID)
    else:
        monkeypatch.setattr(keys, "_workspace_account", lambda keys_dir: os.geteuid() + 1)


def test_a_key_folder_put_in_place_of_the_workspaces_pins_no_organisation_of_its_maker(consent_world, monkeypatch):
    """Whoever may write the workspace folder (a group of operators sharing it, mode 0775) but
    not the key folder moves the key folder aside and makes another: the organisation's private
    key linked back into it, so the workspace keeps working, and a pin of their own for an
    ``org.created`` they append. That organisation's seal then made a stranger's face count as
    jun's reference."""
    from tests.consent.test_org_key_pins import _invented_org
    from tests.consent.test_reference_binding import _sha, _stranger_reference, _vector

    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    home = ws.settings.resolved_home
    home.chmod(0o775)
    (home / "keys").rename(home / "keys.orig")
    planted = home / "keys" / "orgs"
    planted.mkdir(parents=True)
    for name in ("studio.pem", "studio.pub"):
        (planted / name).symlink_to(f"../../keys.orig/orgs/{name}")
    org_id, org_key = _invented_org(ws)
    pin = keys.write_org_pin(home / "keys", "evil", org_key)
    _as_another_account([home / "keys", planted, pin], monkeypatch)
    body = _stranger_reference(
        ws, reg.get_subject("jun").id, org_id=org_id, key_fingerprint=keys.fingerprint(keys.public_raw(org_key))
    )
    ws.ledger.append("subject.reference_added", {**body, "signature": keys.sign(org_key, canonical_bytes(body))})
    with ws.session() as session:
        view = LedgerConsent(session)
        assert view.org_key_problem(reg.get_org("studio").id) is None  # its private key, linked back
        assert view.org_key(org_id) is None
        assert "organisation key pin is not used" in (view.org_key_problem(org_id) or "")
        assert "owned by another account" in (view.org_key_problem(org_id) or "")
    assert len(reg.reference_embeddings("jun")) == 1


def test_a_pin_folder_others_may_write_or_a_linked_pin_pins_nothing_in_a_copy(consent_world, tmp_path):
    ws = consent_world.workspace
    settings = _copy_without_private_keys(ws, tmp_path)
    copy = Workspace.open(settings, read_only=True)
    studio = copy.registry.get_org("studio").id
    folder = settings.keys_dir / "orgs"
    pin = folder / "studio.pub"

    def problem() -> str | None:
        with copy.session() as session:
            return LedgerConsent(session).org_key_problem(studio)

    try:
        assert problem() is None
        folder.chmod(0o770)
        assert "orgs may be written by others (mode 0770)" in (problem() or "")
        folder.chmod(0o700)
        assert problem() is None
        pin.rename(tmp_path / "elsewhere.pub")
        pin.symlink_to(tmp_path / "elsewhere.pub")
        assert "organisation key pin is a link" in (problem() or "")
    finally:
        copy.close()
