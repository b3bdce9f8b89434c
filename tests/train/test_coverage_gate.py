"""The coverage gate before training: a source that lacks what the performer does is refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.faceset.report import CoverageRefused, compare_coverage, coverage_check
from likeness.train import (
    CHECKPOINT_NAME,
    load_checkpoint,
    train_from_facesets,
)

from .conftest import QUIET_RUN, TINY_32, tiny_config, train_command

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

MOUTH_GAP = "the performer's mouth is open in 60 % of frames (12 of 20); the source has 0 open-mouth faces (of 7)"


@pytest.fixture
def photos_and_talking(consent_world, faceset_writer, tmp_path):
    """The issue's case: 7 closed-mouth photos of the artist, a performer talking in 12 of 20 frames."""
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1, n=7)
    target = faceset_writer(
        tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2, n=20, open_mouth=12
    )
    return source, target


def record(*, mouth=0.02, eyes=0.3, yaw=0.0, pitch=0.0):
    return {
        "yaw": yaw,
        "pitch": pitch,
        "roll": 0.0,
        "eye_openness": eyes,
        "mouth_openness": mouth,
        "brightness": 0.5,
        "sharpness": 100.0,
        "face_size": 200.0,
        "source": "a",
        "track_id": 0,
    }


def test_gaps_name_what_is_missing_with_figures_and_severity():
    from likeness.faceset.report import coverage_summary

    performer = coverage_summary([record(mouth=0.6)] * 31 + [record(eyes=0.05)] * 2 + [record(yaw=45)] * 17)
    photos = coverage_summary([record()] * 7)
    gaps = compare_coverage(performer, photos)
    by_condition = {gap.condition: gap for gap in gaps}
    assert by_condition["mouth_open"].sentence() == (
        "the performer's mouth is open in 62 % of frames (31 of 50); the source has 0 open-mouth faces (of 7)"
    )
    assert by_condition["mouth_open"].severe and by_condition["looking_subject_left"].severe
    # Blinking in 4 % of frames is a gap, but not severe (under a tenth of the performance).
    assert not by_condition["eyes_closed"].severe
    assert [gap.severe for gap in gaps] == sorted((gap.severe for gap in gaps), reverse=True)
    # A source that shows it often enough is no gap; one that shows it rarely still is, not severe.
    assert (
        compare_coverage(performer, coverage_summary([record(mouth=0.6)] * 3 + [record()] * 4))[0].condition
        != "mouth_open"
    )
    rare = compare_coverage(
        coverage_summary([record(mouth=0.6)] * 30 + [record()] * 70),
        coverage_summary([record(mouth=0.6)] * 3 + [record()] * 297),
    )
    assert [(gap.condition, gap.severe) for gap in rare] == [("mouth_open", False)]


def test_severe_gaps_refuse_unless_accepted():
    talking, photos = [record(mouth=0.6)] * 12 + [record()] * 8, [record()] * 7
    with pytest.raises(CoverageRefused) as refused:
        coverage_check(talking, photos, accept_gaps=False)
    assert MOUTH_GAP in str(refused.value) and "--accept-gaps" in str(refused.value)
    accepted = coverage_check(talking, photos, accept_gaps=True)
    assert accepted["accepted"] and accepted["severe"] == 1 and accepted["gaps"][0]["sentence"] == MOUTH_GAP
    same = coverage_check(photos, photos, accept_gaps=False)
    assert same["gaps"] == [] and not same["accepted"]


def test_closed_mouth_photos_against_a_talking_performer_are_refused(consent_world, photos_and_talking, tmp_path):
    source, target = photos_and_talking
    with pytest.raises(CoverageRefused) as refused:
        train_from_facesets(consent_world.workspace, source, target, tmp_path / "m", tiny_config(), org="studio")
    assert MOUTH_GAP in str(refused.value)
    assert not (tmp_path / "m").exists()  # nothing left behind


def test_accepted_gaps_train_and_are_recorded_in_the_folder_checkpoint_and_card(
    consent_world, photos_and_talking, tmp_path
):
    from likeness.train import export_from_folder

    source, target = photos_and_talking
    out = tmp_path / "m"
    result = train_from_facesets(
        consent_world.workspace, source, target, out, tiny_config(), org="studio", accept_gaps=True
    )
    assert result.iterations == 2 and result.coverage_check["accepted"]
    written = json.loads((out / "coverage_check.json").read_text())
    assert written["accepted"] and written["gaps"][0]["sentence"] == MOUTH_GAP
    assert load_checkpoint(out / CHECKPOINT_NAME)["coverage_check"] == written
    card = export_from_folder(consent_world.workspace, out, org="studio").card
    assert card["coverage_check"]["accepted"] and card["coverage_check"]["gaps"][0]["sentence"] == MOUTH_GAP


def test_cli_refuses_then_trains_with_accept_gaps(consent_world, photos_and_talking, tmp_path):
    source, target = photos_and_talking
    out = tmp_path / "cli-model"
    home = consent_world.workspace.settings.home
    command = train_command(
        home,
        source,
        target,
        *TINY_32,
        "--out",
        out,
        "--iters",
        "2",
        "--batch",
        "4",
        "--checkpoint-every",
        "2",
        *QUIET_RUN,
    )
    runner = CliRunner()
    refused = runner.invoke(app, command)
    assert refused.exit_code == 1
    flat = " ".join(refused.output.split())
    assert "training refused" in flat and MOUTH_GAP in flat and "--accept-gaps" in flat
    trained = runner.invoke(app, command + ["--accept-gaps"])
    assert trained.exit_code == 0, trained.output
    flat = " ".join(trained.output.split())
    assert "gap accepted" in flat and MOUTH_GAP in flat and "coverage_check.json" in flat
