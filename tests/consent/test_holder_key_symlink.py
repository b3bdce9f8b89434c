"""A holder's private key inside the workspace is refused when reached through a symlink placed
outside it (the check looked at the link's folder, not the key's)."""

from __future__ import annotations

import pytest

from likeness.consent.holder import load_holder_key
from likeness.errors import ConfigError
from tests.conftest import holder_machine


def test_a_symlink_outside_to_a_key_inside_the_workspace_is_refused(consent_world, tmp_path):
    ws = consent_world.workspace
    inside = ws.home / "copied.pem"
    inside.write_bytes(holder_machine(ws.registry).key_path("mina-holder").read_bytes())
    inside.chmod(0o600)
    outside = tmp_path / "holder-laptop"
    outside.mkdir()
    (outside / "mina.pem").symlink_to(inside)
    with pytest.raises(ConfigError, match="inside the likeness workspace"):
        load_holder_key(outside / "mina.pem")
    # the key itself, outside the workspace, still loads
    assert load_holder_key(holder_machine(ws.registry).key_path("mina-holder")) is not None
