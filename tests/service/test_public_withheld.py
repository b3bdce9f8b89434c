"""What the public answer withholds, beyond names: the agency's own file name of a render (it
often carries the artist's slug, e.g. ``mina_debut.mp4``, where ``\\bmina\\b`` finds nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likeness.service.public import named_publicly, public_result


def test_a_renders_file_name_is_not_shown_to_the_public(service_world) -> None:
    mina = service_world.workspace.registry.get_subject("mina")
    assert not mina.public_name
    verification = {
        "schema": "likeness.verify/1",
        "path": "/srv/uploads/x/teaser.mp4",
        "verdict_evidence": ["watermark payload found"],
        "watermark": {
            "ledger_entry": {
                "job_id": "j1",
                "grant_id": "g1",
                "subject_id": mina.id,
                "output_name": "mina_debut_teaser_v3.mp4",
                "kind": "render",
            }
        },
    }
    shown = public_result(verification, service_world.workspace, name="teaser.mp4", folder=Path("/srv/uploads/x"))
    text = json.dumps(shown)
    assert "mina" not in text.lower() and mina.id not in text
    assert shown["watermark"]["ledger_entry"]["output_name"] is None
    assert shown["watermark"]["ledger_entry"]["job_id"] == "j1"


def forged_still(tmp: Path, grant_id: str, **claim: str) -> Path:
    """A still signed with an outsider's own certificate whose consent assertion names a real
    grant of this registry (the trial's forged claim)."""
    from likeness.media import write_image
    from likeness.media.synthetic import grace_hopper
    from likeness.provenance.c2pa_manifest import CONSENT_ASSERTION_LABEL, sign_file
    from likeness.provenance.certificates import ensure_signing_setup

    setup = ensure_signing_setup(tmp / "outsider-keys", "Random Fan Studio")
    still = write_image(tmp / "still.jpg", grace_hopper(), quality=90)
    manifest = {
        "claim_generator_info": [{"name": "fan-tool", "version": "1"}],
        "title": "x.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI_SOURCE}]},
            },
            {"label": CONSENT_ASSERTION_LABEL, "data": {"grant_id": grant_id, **claim}},
        ],
    }
    sign_file(still, tmp / "forged.jpg", manifest, setup)
    return tmp / "forged.jpg"


AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def test_a_forged_consent_claim_does_not_name_a_withheld_artist(service_world, tmp_path) -> None:
    from tests.conftest import add_subject

    registry = service_world.workspace.registry
    mina = registry.get_subject("mina")
    add_subject(registry, "yuna", "Yuna", public_name=True)
    yuna = registry.get_subject("yuna")
    client = service_world.client()
    # no subject id in the claim, then a publicly named artist's id: the registry's grant is mina's
    for n, claim in enumerate(({}, {"subject_id": yuna.id}, {"subject_slug": "yuna", "subject_id": yuna.id})):
        forged = forged_still(tmp_path / str(n), service_world.consent.grant_id, **claim)
        response = client.post(
            "/api/v1/public/verify", files={"file": ("x.jpg", forged.read_bytes(), "application/octet-stream")}
        )
        assert response.status_code == 200, response.text
        consent = response.json()["c2pa"]["consent"]
        assert consent["grant_id"] == service_world.consent.grant_id, claim
        assert consent["subject_slug"] is None, claim
        assert "mina" not in response.text.lower() and mina.id not in response.text, claim


def _name_mina_in_sql(workspace, *, rehash: bool) -> None:
    """The trial's database edit: triggers dropped, mina's ``subject.created`` payload says
    ``public_name`` true (its hash recomputed too when ``rehash``), and her row says so."""
    from sqlalchemy import text

    from likeness.consent.ledger import event_hash

    created = workspace.ledger.find("subject.created", subject_id=workspace.registry.get_subject("mina").id)[0]
    with workspace.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        payload = conn.execute(text("SELECT payload FROM ledger WHERE seq = :s"), {"s": created.seq}).scalar_one()
        assert '"public_name":false' in payload
        payload = payload.replace('"public_name":false', '"public_name":true')
        fields = {k: v for k, v in created.as_dict().items() if k in ("seq", "event_id", "event_type", "created_at")}
        new_hash = event_hash(**fields, payload_json=payload, prev_hash=created.prev_hash) if rehash else created.hash
        conn.execute(
            text("UPDATE ledger SET payload = :p, hash = :h WHERE seq = :s"),
            {"p": payload, "h": new_hash, "s": created.seq},
        )
        conn.execute(text("UPDATE subjects SET public_name = 1 WHERE slug = 'mina'"))


@pytest.mark.parametrize("rehash", [False, True], ids=["payload-edited", "payload-and-hash-edited"])
def test_an_edited_subject_created_row_does_not_name_an_artist(service_world, rehash) -> None:
    workspace = service_world.workspace
    mina = workspace.registry.get_subject("mina")
    assert not named_publicly(workspace, mina.id)
    _name_mina_in_sql(workspace, rehash=rehash)
    assert workspace.registry.get_subject("mina").public_name
    assert workspace.ledger.find("subject.created", subject_id=mina.id)[0].payload["public_name"] is True
    assert not named_publicly(workspace, mina.id)


def test_a_renamed_subject_row_is_not_named_on_the_public_card(service_world) -> None:
    """Trial 11: a database editor renames a publicly named artist's row (to another artist's
    name, or any words); the card named the face as the row said. The name is on the ledger's
    ``subject.created`` event now, and a row that differs is not named."""
    from sqlalchemy import text

    from tests.conftest import add_subject

    workspace = service_world.workspace
    sora = add_subject(workspace.registry, "sora", "Sora", kind="performer", public_name=True)
    assert named_publicly(workspace, sora.id)
    with workspace.engine.begin() as conn:
        conn.execute(text("UPDATE subjects SET name = 'Mina' WHERE slug = 'sora'"))
    assert not named_publicly(workspace, sora.id)
