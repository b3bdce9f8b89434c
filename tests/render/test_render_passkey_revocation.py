"""A passkey-signed revocation stops a running render at its next consent check (issue 29).

The model of ``trained_world`` was trained under a grant mina's holder signed offline with
their Ed25519 key. The holder vouches for a passkey with that key (the only way a holder who
signs offline gets one), signs a music-video grant with the passkey in the portal, and the
render runs under that grant; the holder revokes it with the passkey while the video renders,
and the render stops with ``revoked`` before the clip's end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from likeness.consent.canonical import now_utc
from likeness.consent.grant_requests import signing_challenge
from likeness.consent.holder_portal import HolderPortal
from likeness.errors import ConsentError
from likeness.render import RenderOptions, render_media
from tests.conftest import holder_machine
from tests.portal.conftest import vouch_passkey
from tests.portal.softauthn import SoftAuthenticator


def test_a_passkey_revocation_stops_a_render_running_under_a_passkey_grant(
    trained_world, performer_clip, tmp_path
) -> None:
    workspace = trained_world.workspace
    portal = HolderPortal(workspace)
    holder = workspace.registry.get_holder(workspace.registry.get_subject("mina").holder_id)
    authenticator = SoftAuthenticator()
    vouch_passkey(portal, holder.id, authenticator, holder_machine(workspace.registry).key(holder.slug))
    request = portal.draft_request(
        "mina", "studio", ["music_video"], valid_until=now_utc() + timedelta(days=30), created_by="legal"
    )
    payload = portal.grant_to_sign(request.request_id, holder.id, authenticator.credential_id)
    grant_id = portal.sign_grant(request.request_id, holder.id, payload, authenticator.sign(signing_challenge(payload)))
    assert workspace.policy.authorize("mina", "music_video", "studio").grant_id == grant_id  # the newest in force
    frames_seen: list[int] = []

    def revoke_at_frame_5(done: int, total) -> None:
        frames_seen.append(done)
        if done == 5:
            revocation = portal.revocation_to_sign(grant_id, holder.id, reason="stop now")
            portal.revoke_grant(grant_id, holder.id, revocation, authenticator.sign(signing_challenge(revocation)))

    out = tmp_path / "stopped.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(
            workspace,
            trained_world.model_dir,
            performer_clip,
            out,
            use="music_video",
            org="studio",
            options=RenderOptions(recheck_every=5, write_report=False),
            progress=revoke_at_frame_5,
        )
    assert refused.value.reason == "revoked"
    assert 5 in frames_seen and max(frames_seen) < 30  # stopped before the clip's end (30 frames)
    assert not out.exists()
    (reserved,) = workspace.ledger.find("render.reserved")
    assert reserved.payload["grant_id"] == grant_id  # the render ran under the passkey grant
    (event,) = workspace.ledger.find("grant.revoked", grant_id=grant_id)
    assert "passkey" in event.payload
