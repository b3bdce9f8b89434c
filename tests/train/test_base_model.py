"""The shipped base model: checked on load, and a fine-tune from it is consent-bound like any run."""

from __future__ import annotations

import shutil

import pytest
import torch

import likeness.train.base_model as base_models
from likeness.assets import asset, asset_path, checked_asset
from likeness.errors import ConfigError, ConsentError, ModelError
from likeness.models import create_model
from likeness.train import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train_swap_model
from likeness.train.base_model import BASE_MODELS, base_card, load_base_weights

from .conftest import face_pair, train_consented

BASE = "df-tiny-64-base"


@pytest.fixture(scope="module")
def faces():
    return face_pair(12, 64)


def fine_tune_config(**overrides) -> TrainConfig:
    options = dict(
        model="df_tiny",
        resolution=64,
        base_model=BASE,
        iterations=1,
        batch_size=2,
        learning_rate=1e-9,
        checkpoint_every=1,
        preview_every=0,
        identity_metrics=False,
        expression_metrics=False,
        threads=1,
        workers=1,
    )
    return TrainConfig(**(options | overrides))


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Names of the base models whose weights were read."""
    seen: list[str] = []
    real = base_models.load_base_weights

    def recording(name, model):
        seen.append(name)
        return real(name, model)

    monkeypatch.setattr(base_models, "load_base_weights", recording)
    return seen


def test_the_shipped_base_is_in_the_asset_table_with_its_card() -> None:
    card = base_card(BASE)
    assert card["sha256"] == asset(BASE).sha256
    assert checked_asset(BASE).stat().st_size < 8 * 2**20  # a few MiB
    assert {"data", "training", "date", "licence"} <= card.keys()


def test_a_fine_tune_starts_from_the_base_and_records_it(consent_world, faces, tmp_path, loads) -> None:
    out = tmp_path / "m"
    train_consented(consent_world, faces, out, fine_tune_config())
    assert loads == [BASE]
    state = load_checkpoint(out / CHECKPOINT_NAME)
    assert state["base_model"] == {"name": BASE, "sha256": asset(BASE).sha256}
    reference = create_model("df_tiny", resolution=64)
    load_base_weights(BASE, reference)
    start = reference.state_dict()
    # One step at a negligible rate: the weights are the base's, not a random start.
    assert all(torch.allclose(state["model_state"][k], start[k], atol=1e-4) for k in start)


def test_a_fine_tune_without_a_grant_is_refused_before_the_base_is_read(consent_world, faces, tmp_path, loads) -> None:
    authz, release = consent_world.authorize(), consent_world.authorize_release()
    consent_world.revoke_grant()
    with pytest.raises(ConsentError) as refused:
        train_swap_model(authz, release, *faces, tmp_path / "m", fine_tune_config(), workspace=consent_world.workspace)
    assert refused.value.reason == "revoked"
    with pytest.raises(ConsentError):
        consent_world.authorize()
    assert loads == [] and not (tmp_path / "m").exists()


def test_a_fine_tune_with_a_lookalike_authorization_or_no_release_is_refused(
    consent_world, faces, tmp_path, loads
) -> None:
    class LookalikeAuthorization:
        use, subject_id, subject_slug = "training", "x", "mina"

        def recheck(self, *, at=None):
            return None

    release = consent_world.authorize_release()
    with pytest.raises(ConsentError) as forged:
        train_swap_model(
            LookalikeAuthorization(),
            release,
            *faces,
            tmp_path / "a",
            fine_tune_config(),
            workspace=consent_world.workspace,
        )
    assert forged.value.reason == "not_issued_here"
    with pytest.raises(ConsentError) as no_release:
        train_swap_model(
            consent_world.authorize(),
            None,
            *faces,
            tmp_path / "b",
            fine_tune_config(),
            workspace=consent_world.workspace,
        )
    assert no_release.value.reason == "no_release"
    assert loads == []


def test_an_altered_base_file_is_refused(monkeypatch, tmp_path) -> None:
    altered = tmp_path / "df_tiny_64_base.pt"
    shutil.copy(asset_path(BASE), altered)
    with altered.open("ab") as handle:
        handle.write(b"\0")
    monkeypatch.setattr("likeness.assets.asset_path", lambda name: altered)
    with pytest.raises(ModelError, match=BASE):
        load_base_weights(BASE, create_model("df_tiny", resolution=64))


def test_a_base_for_another_architecture_is_refused_before_training() -> None:
    with pytest.raises(ConfigError, match="df_tiny at 64 px"):
        fine_tune_config(resolution=32).validate()
    # ... and says what to give instead (a new user ran `--base-model` with the default df).
    with pytest.raises(ConfigError, match=r"\(train it with --model df_tiny --res 64\)"):
        fine_tune_config(model="df").validate()
    with pytest.raises(ConfigError, match="no base model 'df-huge'"):
        fine_tune_config(base_model="df-huge").validate()
    assert set(BASE_MODELS) == {BASE}
