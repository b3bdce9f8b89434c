"""A model renders only the subject it was trained on, under that subject's grant, as its signed
card and ``model.exported`` event record it: relabelled, edited, swapped, unsigned and foreign
model folders are refused before anything is rendered."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from likeness.consent import USES
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.render import RenderOptions, render_media
from tests.conftest import add_subject, issue_grant, issue_release


@pytest.fixture
def model_copy(trained_world, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(trained_world.model_dir, copy)
    return copy


@pytest.fixture
def sora_grant(trained_world) -> str:
    """A second artist, ``sora``, with a grant to studio for every use."""
    registry = trained_world.workspace.registry
    add_subject(registry, "sora", "Sora", kind="virtual_idol", owner_org="studio")
    return issue_grant(
        registry, "sora", "studio", USES, valid_until=now_utc() + timedelta(days=30), purpose="second artist"
    )


def _edit_card(model_dir: Path, **changes) -> None:
    path = model_dir / "model_card.json"
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card, indent=2))


def _refused(trained_world, model_dir: Path, clip: Path, out: Path) -> ConsentError:
    with pytest.raises(ConsentError) as refused:
        trained_world.render(model_dir, clip, out, options=RenderOptions(write_report=False))
    assert not out.exists()
    assert not trained_world.workspace.ledger.find("render.completed")
    return refused.value


def test_card_relabelled_as_another_enrolled_subject_is_refused(
    trained_world, sora_grant, model_copy, performer_clip, tmp_path
) -> None:
    # Mina revokes; her model is relabelled as sora, who has a grant for every use.
    trained_world.revoke_grant()
    sora = trained_world.workspace.registry.get_subject("sora")
    _edit_card(model_copy, subject_id=sora.id, subject_slug="sora", grant_id=sora_grant)
    error = _refused(trained_world, model_copy, performer_clip, tmp_path / "o.mp4")
    assert error.reason == "artefact_altered"
    assert "model_card.json" in str(error) and "subject_id" in str(error)


def test_edited_grant_id_is_refused(trained_world, model_copy, performer_clip, tmp_path) -> None:
    registry = trained_world.workspace.registry
    fresh = issue_grant(registry, "mina", "studio", USES, valid_until=now_utc() + timedelta(days=30), purpose="new")
    trained_world.revoke_grant()  # the grant the model was trained under
    _edit_card(model_copy, grant_id=fresh)
    error = _refused(trained_world, model_copy, performer_clip, tmp_path / "o.mp4")
    assert error.reason == "artefact_altered" and "grant_id" in str(error)
    # Unedited, the model stays bound to its revoked training grant: revocation bites.
    with pytest.raises(ConsentError) as revoked:
        trained_world.render(
            trained_world.model_dir, performer_clip, tmp_path / "p.mp4", options=RenderOptions(write_report=False)
        )
    assert revoked.value.reason == "revoked"


def test_swapped_onnx_with_the_card_hash_edited_is_refused(trained_world, model_copy, performer_clip, tmp_path) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    # Another working model (weights changed), and the card's hash edited to match it.
    model = onnx.load(str(model_copy / "model.onnx"))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    changed = numpy_helper.to_array(weight) * 0.5
    weight.CopyFrom(numpy_helper.from_array(changed.astype(np.float32), weight.name))
    payload = model.SerializeToString()
    (model_copy / "model.onnx").write_bytes(payload)
    _edit_card(model_copy, onnx_sha256=hashlib.sha256(payload).hexdigest())
    error = _refused(trained_world, model_copy, performer_clip, tmp_path / "o.mp4")
    assert error.reason == "artefact_altered" and "onnx_sha256" in str(error)


def test_model_folder_copied_to_another_workspace_is_refused(
    trained_world, model_copy, performer_clip, tmp_path
) -> None:
    from likeness.config import Settings
    from likeness.workspace import Workspace

    # Another workspace with the same names and consent, but not the event that exported the model.
    elsewhere = Workspace.init(Settings(home=tmp_path / "elsewhere"))
    try:
        registry = elsewhere.registry
        registry.add_org("studio", "Studio Haneul")
        add_subject(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
        add_subject(registry, "jun", "Jun", kind="performer")
        until = now_utc() + timedelta(days=30)
        issue_grant(registry, "mina", "studio", USES, valid_until=until, purpose="copy")
        issue_release(registry, "jun", "studio", valid_until=until, purpose="copy")
        with pytest.raises(ConsentError) as refused:
            render_media(
                elsewhere,
                model_copy,
                performer_clip,
                tmp_path / "o.mp4",
                use="music_video",
                org="studio",
                options=RenderOptions(write_report=False),
            )
        assert refused.value.reason == "artefact_altered"
        assert "no model.exported event on this workspace's ledger" in str(refused.value)
        assert not (tmp_path / "o.mp4").exists() and not elsewhere.ledger.find("render.completed")
    finally:
        elsewhere.close()


def test_unsigned_model_card_is_refused_with_a_remedy(trained_world, model_copy, performer_clip, tmp_path) -> None:
    path = model_copy / "model_card.json"
    card = json.loads(path.read_text())
    del card["seal"]  # as exported before cards were signed
    path.write_text(json.dumps(card))
    error = _refused(trained_world, model_copy, performer_clip, tmp_path / "o.mp4")
    assert error.reason == "artefact_unsigned" and "export the model again" in str(error)


def test_render_records_the_subject_and_grant_of_the_model_event(trained_world, performer_clip, tmp_path) -> None:
    card = json.loads((trained_world.model_dir / "model_card.json").read_text())
    (exported,) = trained_world.workspace.ledger.find("model.exported", signature=card["seal"]["signature"])
    assert exported.payload["content_sha256"] == card["seal"]["content_sha256"]
    assert exported.payload["onnx_sha256"] == card["onnx_sha256"] == card["seal"]["onnx_sha256"]
    assert exported.payload["checkpoint_sha256"] == card["checkpoint_sha256"]
    report = trained_world.render(
        trained_world.model_dir, performer_clip, tmp_path / "ok.mp4", options=RenderOptions(write_report=False)
    )
    assert report.subject_slug == "mina" and report.performer_slug == "jun"
    (rendered,) = trained_world.workspace.ledger.find("render.completed", job_id=report.job_id)
    assert rendered.payload["subject_id"] == exported.payload["subject_id"]


def test_resealed_with_a_swapped_organisation_key_is_refused(
    trained_world, sora_grant, model_copy, performer_clip, tmp_path
) -> None:
    """A database editor without the organisation's key swaps the org row's public key for their
    own, reseals a relabelled card with it and appends a matching model.exported event."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import text

    from likeness.consent import keys
    from likeness.consent.artefacts import MODEL_EVENT, event_fields
    from likeness.consent.canonical import canonical_bytes

    workspace = trained_world.workspace
    trained_world.revoke_grant()
    own = Ed25519PrivateKey.generate()
    raw = keys.public_raw(own)
    org = workspace.registry.get_org("studio")
    with workspace.engine.begin() as connection:
        connection.execute(
            text("UPDATE organisations SET public_key = :k, key_fingerprint = :f WHERE id = :i"),
            {"k": raw.hex(), "f": keys.fingerprint(raw), "i": org.id},
        )
    sora = workspace.registry.get_subject("sora")
    card_path = model_copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card.update(subject_id=sora.id, subject_slug="sora", grant_id=sora_grant)
    seal = dict(card.pop("seal"))
    seal.pop("signature")
    seal.update(subject_id=sora.id, subject_slug="sora", grant_id=sora_grant, key_fingerprint=keys.fingerprint(raw))
    from likeness.consent.artefacts import document_sha256

    seal["content_sha256"] = document_sha256(card)
    seal["signature"] = keys.sign(own, canonical_bytes(seal))
    card["seal"] = seal
    card_path.write_text(json.dumps(card, indent=2))
    workspace.ledger.append(
        MODEL_EVENT, {**{k: card.get(k) for k in ("subject_id", "subject_slug", "grant_id")}, **event_fields(seal)}
    )
    error = _refused(trained_world, model_copy, performer_clip, tmp_path / "o.mp4")
    assert error.reason == "artefact_altered"
    assert "org.created" in str(error)


def test_replayed_checkpoint_event_with_another_performer_slug_swaps_onto_no_one_else(
    trained_world, performer_clip, tmp_path
) -> None:
    """INSERT only, no keys: a copy of the genuine sealed ``model.checkpointed`` event is appended
    with ``performer_slug`` changed to ``lee``, an enrolled performer without a release. Slugs are
    not what the seal binds: export and render name and pick faces by the sealed ids, so the
    card still says jun and render swaps onto jun's face only."""
    import cv2

    from likeness.errors import FaceError
    from likeness.faceset import enroll_reference_photos
    from likeness.media.synthetic_identities import synthetic_identity
    from likeness.train import export_from_folder

    workspace = trained_world.workspace
    add_subject(workspace.registry, "lee", "Lee", kind="performer")
    lee_photo = tmp_path / "lee.png"
    # A person of lee's own: the astronaut is mina's, and another holder's subject's face is not enrolled.
    cv2.imwrite(str(lee_photo), cv2.cvtColor(synthetic_identity("mina"), cv2.COLOR_RGB2BGR))
    assert enroll_reference_photos(workspace, "lee", [lee_photo]).added == 1
    (genuine,) = workspace.ledger.find("model.checkpointed")
    workspace.ledger.append("model.checkpointed", {**genuine.payload, "performer_slug": "lee"})

    exported = tmp_path / "exported"
    result = export_from_folder(workspace, trained_world.model_dir, out_dir=exported, org="studio")
    assert result.card["performer_slug"] == "jun" and result.card["subject_slug"] == "mina"
    (event,) = workspace.ledger.find("model.exported", signature=result.card["seal"]["signature"])
    assert event.payload["performer_slug"] == "jun"
    with pytest.raises(FaceError) as refused:
        render_media(
            workspace,
            exported,
            lee_photo,
            tmp_path / "lee-swapped.png",
            use="music_video",
            org="studio",
            options=RenderOptions(write_report=False),
        )
    assert "no swappable face of the released performer" in str(refused.value)
    assert not (tmp_path / "lee-swapped.png").exists()
    assert not workspace.ledger.find("render.completed")
