"""A passkey-signed revocation stops a running render at its next consent check (issue 29).

The model of ``trained_world`` was trained under an Ed25519-signed grant; the rights holder
registers a passkey and revokes that grant with it while a video render is running: the two
signature kinds stand behind the one guard, and the render stops with ``revoked``."""

from __future__ import annotations

import pytest

from likeness.consent.grant_requests import signing_challenge
from likeness.consent.holder_portal import HolderPortal, RelyingParty, verify_registration
from likeness.errors import ConsentError
from likeness.render import RenderOptions, render_media
from tests.portal.softauthn import ORIGIN, RP_ID, SoftAuthenticator


def test_a_passkey_revocation_stops_a_running_render(trained_world, performer_clip, tmp_path) -> None:
    workspace = trained_world.workspace
    portal = HolderPortal(workspace)
    holder = workspace.registry.get_holder(workspace.registry.get_subject("mina").holder_id)
    invitation_id, _token = portal.invite(holder.slug, "studio", created_by="admin")
    authenticator = SoftAuthenticator()
    ceremony = portal.new_ceremony("register", holder_id=holder.id, invitation_id=invitation_id)
    rp = RelyingParty(RP_ID, ORIGIN)
    verified = verify_registration(
        authenticator.register(bytes.fromhex(ceremony.challenge)), bytes.fromhex(ceremony.challenge), rp
    )
    portal.register_passkey(
        holder_id=holder.id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=rp,
        invitation_id=invitation_id,
    )
    frames_seen: list[int] = []

    def revoke_at_frame_5(done: int, total) -> None:
        frames_seen.append(done)
        if done == 5:
            payload = portal.revocation_to_sign(trained_world.grant_id, holder.id, reason="stop now")
            portal.revoke_grant(
                trained_world.grant_id, holder.id, payload, authenticator.sign(signing_challenge(payload))
            )

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
    assert max(frames_seen) < 30  # stopped before the clip's end (30 frames)
    assert not out.exists()
    (event,) = workspace.ledger.find("grant.revoked", grant_id=trained_world.grant_id)
    assert "passkey" in event.payload
