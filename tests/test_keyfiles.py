"""The one key-file rule (``likeness.keyfiles``): a 0600 key another account owns is refused
by every reader, since that account may replace it with a key of its own choosing."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from likeness import keyfiles
from likeness.errors import ConfigError, ProvenanceError

#: An account that is not this one (``nobody`` on Debian).
OTHER_UID = 65534


def _owned_by_another_account(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make ``path`` another account's file and return that account's uid: chown as root (CI
    runs as root); otherwise this process plays another account through the module's own uid
    reader, so the check still runs on a real ``fstat``."""
    if os.geteuid() == 0:
        os.chown(path, OTHER_UID, OTHER_UID)
        return OTHER_UID
    own = os.geteuid()
    monkeypatch.setattr(keyfiles, "_effective_uid", lambda: own + 1)
    return own


def test_a_key_another_account_owns_is_refused_naming_its_owner(tmp_path: Path, monkeypatch) -> None:
    key = tmp_path / "org.pem"
    key.write_bytes(b"secret")
    key.chmod(0o600)
    assert keyfiles.read_key_file(key) == b"secret"
    owner = _owned_by_another_account(key, monkeypatch)
    with pytest.raises(keyfiles.KeyFileRefused) as refused:
        keyfiles.read_key_file(key)
    assert refused.value.reason.startswith(f"is owned by another account (uid {owner}), which may replace it")


def test_the_organisation_and_holder_key_reader_refuses_another_account_s_key(tmp_path: Path, monkeypatch) -> None:
    from likeness.consent import keys

    path = tmp_path / "mina.pem"
    keys.generate_key(path)
    assert isinstance(keys.load_private_key(path), Ed25519PrivateKey)
    owner = _owned_by_another_account(path, monkeypatch)
    with pytest.raises(ConfigError, match=rf"mina.pem: private key file is owned by another account \(uid {owner}\)"):
        keys.load_private_key(path)


@pytest.mark.parametrize("name", ["signer.key", "root-ca.key"])
def test_the_c2pa_key_readers_refuse_another_account_s_key(tmp_path: Path, monkeypatch, name: str) -> None:
    from likeness.provenance.certificates import ensure_signing_setup, load_signing_setup

    keys_dir = tmp_path / "c2pa"
    setup = ensure_signing_setup(keys_dir, "Studio Haneul")
    owner = _owned_by_another_account(keys_dir / name, monkeypatch)
    refused = rf"{name}: private key file is owned by another account \(uid {owner}\)"
    with pytest.raises(ProvenanceError, match=refused):
        load_signing_setup(keys_dir)
    if name == "signer.key":  # read again at signing time: the file may have changed since loading
        with pytest.raises(ProvenanceError, match=refused):
            setup.private_key_pem()


def test_the_service_key_reader_refuses_another_account_s_key(tmp_path: Path, monkeypatch) -> None:
    from likeness.service.service_keys import ServiceKeyUnusable, service_key

    workspace = SimpleNamespace(settings=SimpleNamespace(keys_dir=tmp_path / "keys"))
    assert service_key(workspace, "links", create=True) is not None
    owner = _owned_by_another_account(tmp_path / "keys" / "service" / "links.key", monkeypatch)
    with pytest.raises(ServiceKeyUnusable, match=rf"keys/service/links.key: .* another account \(uid {owner}\)"):
        service_key(workspace, "links", create=True)


def test_a_render_job_key_another_account_owns_unseals_nothing(tmp_path: Path, monkeypatch) -> None:
    from likeness.render.checkpoint import create_job_key, job_key_path, read_job_key

    job_id = "a" * 32
    key = create_job_key(tmp_path, job_id)
    assert read_job_key(tmp_path, job_id) == key
    _owned_by_another_account(job_key_path(tmp_path, job_id), monkeypatch)
    assert read_job_key(tmp_path, job_id) is None


def test_a_service_key_is_written_whole_and_0600_from_its_temporary_on(tmp_path: Path, monkeypatch) -> None:
    """The key was linked into place unsynced: a power loss could leave an empty key, which the
    service then refuses until someone removes it."""
    from likeness.service.service_keys import service_key, service_key_path
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    workspace = SimpleNamespace(settings=SimpleNamespace(keys_dir=tmp_path / "keys"))
    log = watch_disk(monkeypatch)
    previous = os.umask(0)
    try:
        key = service_key(workspace, "links", create=True)
    finally:
        os.umask(previous)
    path = service_key_path(workspace, "links")
    assert assert_written_whole(log, path).mode == 0o600 and path.read_bytes() == key
    assert service_key(workspace, "links", create=True) == key and hidden_files(tmp_path) == []
