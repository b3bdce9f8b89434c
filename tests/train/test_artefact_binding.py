"""Facesets and checkpoints are bound to their ledger events: relabelled, unsigned or foreign
artefacts are refused by training and export, and export needs the performer's release."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from likeness.consent import USES
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.faceset import load_faceset, verify_faceset
from likeness.train import (
    CHECKPOINT_NAME,
    TrainConfig,
    export_from_folder,
    export_model,
    load_checkpoint,
    save_checkpoint,
    train_from_facesets,
    train_swap_model,
)
from tests.conftest import add_subject, issue_grant, revoke_grant

from .conftest import face_pair, tiny_config, train_consented

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


@pytest.fixture
def sora(consent_world):
    """A second enrolled artist, ``sora``, with a grant to studio for every use."""
    registry = consent_world.workspace.registry
    add_subject(registry, "sora", "Sora", kind="virtual_idol", owner_org="studio")
    return issue_grant(
        registry, "sora", "studio", USES, valid_until=now_utc() + timedelta(days=30), purpose="second artist"
    )


def _edit_json(path, **changes) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_extracted_style_faceset_is_signed_and_bound_to_its_event(consent_world, faceset_writer, tmp_path):
    folder = faceset_writer(tmp_path / "mina", consent_world.workspace, consent_world.authorize(), identity=1)
    manifest = json.loads((folder / "manifest.json").read_text())
    event = verify_faceset(consent_world.workspace, load_faceset(folder))
    assert event.event_type == "faceset.created"
    assert event.payload["signature"] == manifest["seal"]["signature"]
    assert event.payload["faceset_sha256"] == manifest["faceset_sha256"] == manifest["seal"]["faceset_sha256"]
    assert event.payload["subject_id"] == consent_world.workspace.registry.get_subject("mina").id


def test_relabelled_faceset_manifest_is_refused_by_training(consent_world, sora, faceset_writer, tmp_path):
    # Sora's faces, extracted under her grant; she revokes; the manifest is relabelled as mina's.
    workspace, registry = consent_world.workspace, consent_world.workspace.registry
    source = faceset_writer(
        tmp_path / "sora", workspace, workspace.policy.authorize("sora", "training", "studio"), identity=1
    )
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2)
    revoke_grant(registry, sora, reason="withdrawn")
    mina = registry.get_subject("mina")
    _edit_json(source / "manifest.json", subject_id=mina.id, subject_slug="mina", grant_id=consent_world.grant_id)

    with pytest.raises(ConsentError) as refused:
        train_from_facesets(workspace, source, target, tmp_path / "m", tiny_config(), org="studio")
    assert refused.value.reason == "artefact_altered"
    assert "manifest.json" in str(refused.value) and "subject_id" in str(refused.value)
    assert not (tmp_path / "m" / CHECKPOINT_NAME).exists()
    # The library entry point checks the faceset too, whatever authorization it is handed.
    with pytest.raises(ConsentError) as direct:
        train_consented(consent_world, (load_faceset(source), load_faceset(target)), tmp_path / "d", tiny_config())
    assert direct.value.reason == "artefact_altered"
    assert not workspace.ledger.find("model.checkpointed")


def test_unsigned_faceset_is_refused_with_a_remedy(consent_world, faceset_writer, tmp_path):
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1)
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2)
    manifest = json.loads((source / "manifest.json").read_text())
    del manifest["seal"]  # as written before facesets were signed
    (source / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConsentError) as refused:
        train_from_facesets(workspace, source, target, tmp_path / "m", tiny_config(), org="studio")
    assert refused.value.reason == "artefact_unsigned"
    assert "extract the faceset again" in str(refused.value)


def test_faceset_from_another_workspace_is_refused(consent_world, faceset_writer, tmp_path):
    from likeness.config import Settings
    from likeness.workspace import Workspace

    source = faceset_writer(tmp_path / "mina", consent_world.workspace, consent_world.authorize(), identity=1)
    elsewhere = Workspace.init(Settings(home=tmp_path / "elsewhere"))
    try:
        elsewhere.registry.add_org("studio", "Studio Haneul")
        with pytest.raises(ConsentError) as refused:
            verify_faceset(elsewhere, load_faceset(source))
        assert refused.value.reason == "artefact_altered"
        assert "no faceset.created event on this workspace's ledger" in str(refused.value)
    finally:
        elsewhere.close()


@pytest.fixture
def sora_model(consent_world, sora, tmp_path):
    """A checkpoint trained on sora's (generated) faces under her training grant."""
    out = tmp_path / "sora-model"
    faces = face_pair(12, 32)
    authz = consent_world.workspace.policy.authorize("sora", "training", "studio")
    train_swap_model(
        authz, consent_world.authorize_release(), *faces, out, tiny_config(), workspace=consent_world.workspace
    )
    return out


def _revoke_and_relabel_as_mina(consent_world, sora, sora_model):
    """sora revokes her grant, then her checkpoint's consent is edited to name mina and mina's
    grant; returns mina's subject record."""
    registry = consent_world.workspace.registry
    revoke_grant(registry, sora, reason="withdrawn")
    state = load_checkpoint(sora_model / CHECKPOINT_NAME)
    mina = registry.get_subject("mina")
    state["consent"].update(subject_id=mina.id, subject_slug="mina", grant_id=consent_world.grant_id)
    save_checkpoint(sora_model / CHECKPOINT_NAME, state)
    return mina


def test_relabelled_checkpoint_is_refused_at_export_and_resume(consent_world, sora, sora_model):
    workspace = consent_world.workspace
    _revoke_and_relabel_as_mina(consent_world, sora, sora_model)

    with pytest.raises(ConsentError) as refused:
        export_model(workspace, consent_world.authorize(), consent_world.authorize_release(), sora_model)
    assert refused.value.reason == "artefact_altered"
    assert "checkpoint.pt" in str(refused.value) and "subject_id" in str(refused.value)
    with pytest.raises(ConsentError) as via_folder:
        export_from_folder(workspace, sora_model, org="studio")
    assert via_folder.value.reason == "artefact_altered"
    assert not (sora_model / "model.onnx").exists() and not (sora_model / "model_card.json").exists()
    with pytest.raises(ConsentError) as resumed:
        train_consented(consent_world, face_pair(12, 32), sora_model, TrainConfig(iterations=4), resume=True)
    assert resumed.value.reason == "artefact_altered"


def test_export_takes_the_subject_from_the_ledger_not_the_checkpoint(consent_world, sora, sora_model):
    # Unedited: mina's authorization cannot export sora's model, whatever it asks for.
    with pytest.raises(ConsentError) as refused:
        export_model(consent_world.workspace, consent_world.authorize(), consent_world.authorize_release(), sora_model)
    assert refused.value.reason == "no_grant" and "'sora'" in str(refused.value)


def test_export_is_refused_after_the_performers_release_is_revoked(consent_world, sora_model, tmp_path):
    workspace = consent_world.workspace
    authz = workspace.policy.authorize("sora", "training", "studio")
    release = consent_world.authorize_release()
    consent_world.revoke_release()
    with pytest.raises(ConsentError) as refused:
        export_model(workspace, authz, release, sora_model)
    assert refused.value.reason == "release_revoked"
    with pytest.raises(ConsentError) as via_folder:
        export_from_folder(workspace, sora_model, org="studio")
    assert via_folder.value.reason == "release_revoked"
    with pytest.raises(ConsentError) as without:
        export_model(workspace, authz, None, sora_model)
    assert without.value.reason == "no_release"
    assert not (sora_model / "model.onnx").exists()
    assert not workspace.ledger.find("model.exported")


def test_checkpoints_are_recorded_before_they_are_written(consent_world, sora_model):
    from likeness.digests import sha256_file

    (event,) = consent_world.workspace.ledger.find("model.checkpointed")
    assert event.payload["checkpoint_sha256"] == sha256_file(sora_model / CHECKPOINT_NAME)
    assert event.payload["subject_slug"] == "sora" and event.payload["performer_slug"] == "jun"
    (trained,) = consent_world.workspace.ledger.find("model.trained")
    assert trained.payload["checkpoint_sha256"] == event.payload["checkpoint_sha256"]


def test_forged_checkpoint_event_appended_without_the_org_key_is_ignored(consent_world, sora, sora_model):
    # The attack (INSERT-only, no keys): sora revokes; her checkpoint's consent dict is set to
    # mina's, and a model.checkpointed event copied from the genuine one, with the new SHA-256 and
    # mina's fields, is appended to the ledger. Export must not seal a mina card for sora's model.
    from likeness.digests import sha256_file

    workspace = consent_world.workspace
    mina = _revoke_and_relabel_as_mina(consent_world, sora, sora_model)
    (genuine,) = workspace.ledger.find("model.checkpointed")
    workspace.ledger.append(
        "model.checkpointed",
        {
            **genuine.payload,
            "checkpoint_sha256": sha256_file(sora_model / CHECKPOINT_NAME),
            "subject_id": mina.id,
            "subject_slug": "mina",
            "grant_id": consent_world.grant_id,
        },
    )

    with pytest.raises(ConsentError) as via_folder:
        export_from_folder(workspace, sora_model, org="studio")
    assert via_folder.value.reason == "artefact_altered"
    assert "no valid organisation seal" in str(via_folder.value)
    with pytest.raises(ConsentError) as direct:
        export_model(workspace, consent_world.authorize(), consent_world.authorize_release(), sora_model)
    assert direct.value.reason == "artefact_altered"
    with pytest.raises(ConsentError) as resumed:
        train_consented(consent_world, face_pair(12, 32), sora_model, TrainConfig(iterations=4), resume=True)
    assert resumed.value.reason == "artefact_altered"
    assert not (sora_model / "model_card.json").exists() and not workspace.ledger.find("model.exported")


def test_genuine_checkpoint_events_are_sealed_by_the_organisation(consent_world, sora_model):
    from likeness.consent import keys
    from likeness.consent.artefacts import CHECKPOINT_BOUND
    from likeness.consent.canonical import canonical_bytes

    workspace = consent_world.workspace
    (event,) = workspace.ledger.find("model.checkpointed")
    body = {
        "type": "likeness.checkpoint.v1",
        **{k: event.payload[k] for k in ("org_id", "key_fingerprint", "content_sha256", *CHECKPOINT_BOUND)},
    }
    public = bytes.fromhex(workspace.registry.get_org("studio").public_key)
    assert keys.verify(public, canonical_bytes(body), event.payload["signature"])


def test_a_checkpoint_of_one_subject_s_faceset_cannot_be_recorded_under_another_s_grant(
    consent_world, sora, faceset_writer, tmp_path
):
    # Training lineage: the sealed faceset.created event says whose faces the source faceset holds.
    from likeness.train.checkpoint import record_checkpoint

    workspace = consent_world.workspace
    sora_faces = faceset_writer(
        tmp_path / "sora", workspace, workspace.policy.authorize("sora", "training", "studio"), identity=1
    )
    mina = workspace.registry.get_subject("mina")
    authz = consent_world.authorize()
    state = {
        "consent": {
            "subject_id": mina.id,
            "grant_id": consent_world.grant_id,
            "org_id": authz.org_id,
            "performer_id": authz.org_id,
            "release_id": consent_world.release_id,
        },
        "data": {"source_sha256": load_faceset(sora_faces).faceset_sha256, "target_sha256": "0" * 64},
    }
    with pytest.raises(ConsentError) as refused:
        record_checkpoint(workspace, authz, tmp_path / "m", state, "1" * 64)
    assert refused.value.reason == "artefact_altered" and "faceset.created" in str(refused.value)
    assert "'sora'" in str(refused.value)
    assert not workspace.ledger.find("model.checkpointed")


def test_a_checkpoint_cannot_be_recorded_for_a_performer_other_than_its_target_faceset_s(
    consent_world, sora, faceset_writer, tmp_path
):
    # Training lineage, target side: jun's faceset was extracted under jun's release, so a
    # checkpoint trained on it cannot name sora as its performer.
    from likeness.train.checkpoint import record_checkpoint

    workspace = consent_world.workspace
    jun_faces = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2)
    authz = consent_world.authorize()
    state = {
        "consent": {
            "subject_id": authz.subject_id,
            "grant_id": consent_world.grant_id,
            "org_id": authz.org_id,
            "performer_id": workspace.registry.get_subject("sora").id,
            "release_id": consent_world.release_id,
        },
        "data": {"source_sha256": "0" * 64, "target_sha256": load_faceset(jun_faces).faceset_sha256},
    }
    with pytest.raises(ConsentError) as refused:
        record_checkpoint(workspace, authz, tmp_path / "m", state, "1" * 64)
    assert refused.value.reason == "artefact_altered"
    assert "target faceset" in str(refused.value) and "'jun'" in str(refused.value)
    assert not workspace.ledger.find("model.checkpointed")


def test_replayed_checkpoint_event_with_other_slugs_changes_no_name(consent_world, sora, sora_model):
    # INSERT only, no keys: the genuine sealed event appended again with its (unsealed) slugs
    # changed. Whose model it is, and the names export writes, come from the sealed ids.
    from likeness.train.checkpoint import load_bound_checkpoint

    workspace = consent_world.workspace
    (genuine,) = workspace.ledger.find("model.checkpointed")
    workspace.ledger.append("model.checkpointed", {**genuine.payload, "subject_slug": "mina", "performer_slug": "mina"})
    _state, consent = load_bound_checkpoint(workspace, sora_model / CHECKPOINT_NAME)
    assert (consent["subject_slug"], consent["performer_slug"]) == ("sora", "jun")
    exported = export_from_folder(workspace, sora_model, org="studio")
    assert (exported.card["subject_slug"], exported.card["performer_slug"]) == ("sora", "jun")


@pytest.mark.parametrize("value", ["NaN", "18014398509481985", '"\\ud800"'])
@pytest.mark.parametrize("where", ["manifest", "seal"])
def test_a_faceset_manifest_edited_to_hold_what_canonical_json_cannot_write_is_altered(
    consent_world, faceset_writer, tmp_path, value, where
):
    """A leaked or edited folder whose manifest says ``"size": NaN`` (or 2**54 + 1, a lone
    surrogate), or whose seal gains such a member: before, checking it against its seal ended in
    RFC 8785's ``FloatDomainError`` (``IntegerDomainError``, ``CanonicalizationError``)
    traceback, not a refusal naming it."""
    folder = faceset_writer(tmp_path / "mina", consent_world.workspace, consent_world.authorize(), identity=1)
    manifest = folder / "manifest.json"
    document = json.loads(manifest.read_text())
    if where == "manifest":
        document["size"] = "@value@"
    else:  # a member the ledger event does not record, so only the signature check reads it
        document["seal"]["note"] = "@value@"
    manifest.write_text(json.dumps(document).replace('"@value@"', value))
    with pytest.raises(ConsentError) as refused:
        verify_faceset(consent_world.workspace, load_faceset(folder))
    assert refused.value.reason == "artefact_altered" and "manifest.json" in str(refused.value)
    expected = "canonical JSON cannot write" if where == "manifest" else "signature does not verify"
    assert expected in str(refused.value), str(refused.value)


@pytest.mark.parametrize("keep", [True, False])
def test_an_onnx_file_larger_than_onnx_allows_is_refused_from_its_size(tmp_path, keep):
    """A sparse 3 GiB model.onnx was read whole into memory before its hash was compared (or
    hashed to the end): one ONNX file cannot exceed 2 GiB, so it is refused from its size,
    naming it, before a byte is read."""
    import tracemalloc

    from likeness.errors import ModelError
    from likeness.train.swap_model import _check_hash

    path = tmp_path / "model.onnx"
    with path.open("wb") as handle:
        handle.truncate(3 * 2**30)
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match=r"model\.onnx: 3,221,225,472 bytes, larger than one ONNX file can be"):
            _check_hash(path, "0" * 64, keep=keep)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
