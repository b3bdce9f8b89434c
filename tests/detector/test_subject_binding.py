"""A detector's evaluation is bound to the subject verify will use it for (issue #31, the gap after
the agency example): verify scores subject S's detector only on face tracks it recognises as S,
so the gates are measured on the units recognised as S, and only an evaluation for S can be
registered for S. Before this, a detector evaluated on anyone registered for anyone, and its gates
could pass on fakes verify would never score."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector.evaluation import GateFailed, TooFewUnits, evaluate_detector, evaluation_subject
from likeness.detector.registered import (
    REGISTERED_EVENT,
    check_registered,
    detector_folder,
    register_detector,
    registered_detectors,
)
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.errors import ModelError
from likeness.media.synthetic import grace_hopper

from .handmade import GateMedia, enrol_as_units, gate_media, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> GateMedia:
    """Units of someone else (grace_hopper): verify would not give them mina's detector."""
    return gate_media(tmp_path_factory.mktemp("other-media"), units=2, portrait=grace_hopper(), seed=12)


@pytest.fixture
def mina(workspace, tmp_path):
    from tests.conftest import add_subject

    workspace.registry.add_org("studio", "Studio")  # its key seals each reference's ledger event
    add_subject(workspace.registry, "mina", "Mina", kind="artist")
    add_subject(workspace.registry, "yuna", "Yuna", kind="artist")
    return enrol_as_units(workspace, "mina", tmp_path / "mina-references")


@pytest.fixture
def chroma(media: GateMedia, tmp_path: Path) -> Path:
    return write_detector(tmp_path / "chroma", "chroma", media.calibration)


def test_units_not_recognised_as_the_subject_are_left_out_of_the_gates_and_listed(
    chroma: Path, media: GateMedia, others: GateMedia, mina
) -> None:
    """Someone else's *untinted* clips handed in as fakes would drag AUC and recall down if they
    counted; verify would never score them with mina's detector, so they do not count."""
    evaluation = evaluate_detector(chroma, media.real + others.real[:1], media.fake + others.real[1:], subject=mina)
    figures = evaluation["figures"]
    assert figures["units"] == {"real": 5, "fake": 5}
    assert figures["video_auc"] == 1.0 and evaluation["passed"]
    assert evaluation["units"]["fake"] == [str(p) for p in media.fake]
    by_unit = {seen["unit"]: seen for seen in evaluation["recognition"]}
    assert len(by_unit) == 12
    for path in media.real + media.fake:
        seen = by_unit[str(path)]
        assert seen["analysed_by_verify"] and seen["recognised_as"] == "mina"
        assert seen["distance"] < seen["threshold"]
    left_out = evaluation["verify_would_not_analyse"]
    assert left_out == [
        f"{others.real[0]} (real): {by_unit[str(others.real[0])]['says']}",
        f"{others.real[1]} (fake): {by_unit[str(others.real[1])]['says']}",
    ]
    for path in others.real:
        seen = by_unit[str(path)]
        assert not seen["analysed_by_verify"] and seen["recognised_as"] is None
        assert seen["says"].startswith("no enrolled match (distance to mina ")
    assert evaluation["subject"]["id"] == mina.subject_id and evaluation["subject"]["slug"] == "mina"
    assert evaluation["subject"]["references"] >= 2 and len(evaluation["subject"]["references_sha256"]) == 64
    assert json.loads((chroma / CARD_FILE).read_text())["evaluation"] == evaluation

    # the same files without the subject: every unit counts, and the gates fail
    unbound = evaluate_detector(chroma, media.real + others.real[:1], media.fake + others.real[1:])
    assert unbound["figures"]["units"] == {"real": 6, "fake": 6} and unbound["figures"]["video_auc"] < 1.0
    assert unbound["subject"] is None and unbound["recognition"] == []


def test_a_unit_recognised_as_another_enrolled_subject_says_so(
    chroma: Path, media: GateMedia, others: GateMedia, workspace, mina, tmp_path
) -> None:
    enrol_as_units(workspace, "yuna", tmp_path / "yuna-references", portrait=grace_hopper())
    mina_now = evaluation_subject(workspace, "mina")  # the gallery as verify syncs it now
    evaluation = evaluate_detector(chroma, media.real, media.fake + others.fake, subject=mina_now)
    assert evaluation["figures"]["units"] == {"real": 5, "fake": 5}
    for path in others.fake:
        [seen] = [s for s in evaluation["recognition"] if s["unit"] == str(path)]
        assert not seen["analysed_by_verify"] and seen["recognised_as"] == "yuna"
        assert seen["says"].startswith("recognised as yuna")


def test_fewer_than_two_recognised_units_is_a_typed_error_naming_how_many(
    chroma: Path, media: GateMedia, others: GateMedia, mina
) -> None:
    with pytest.raises(TooFewUnits) as refused:
        evaluate_detector(chroma, media.real, media.fake[:1] + others.fake, subject=mina)
    assert isinstance(refused.value, ModelError)
    assert [seen["analysed_by_verify"] for seen in refused.value.recognition] == [True] * 6 + [False] * 2
    message = str(refused.value)
    assert "needs at least 2 fake videos or folders recognised as mina" in message
    assert "got 1 of 3 with a face" in message
    assert f"verify would not analyse {others.fake[0].name}: no enrolled match" in message
    assert "evaluation" not in json.loads((chroma / CARD_FILE).read_text())


def test_evaluated_for_one_subject_registered_for_another_is_refused(chroma: Path, media: GateMedia, workspace, mina):
    assert evaluate_detector(chroma, media.real, media.fake, subject=mina)["passed"]
    with pytest.raises(GateFailed) as refused:
        register_detector(workspace, chroma, "yuna")
    assert refused.value.gate == "subject"
    assert f"evaluated for mina ({mina.subject_id}), not yuna; evaluate it with --subject yuna" in str(refused.value)
    assert workspace.ledger.events(REGISTERED_EVENT) == []
    registered = register_detector(workspace, chroma, "mina")  # the subject it was evaluated for
    event = workspace.ledger.events(REGISTERED_EVENT)[-1]
    assert event.payload["evaluation_subject"]["id"] == mina.subject_id == registered.subject_id


def test_an_evaluation_without_a_subject_cannot_be_registered(chroma: Path, media: GateMedia, workspace, mina):
    assert evaluate_detector(chroma, media.real, media.fake)["passed"]
    with pytest.raises(GateFailed) as refused:
        register_detector(workspace, chroma, "mina")
    assert refused.value.gate == "subject"
    assert "its evaluation names no subject" in str(refused.value)
    assert "evaluate it with --subject mina" in str(refused.value)
    assert workspace.ledger.events(REGISTERED_EVENT) == []


def test_a_registration_whose_evaluation_names_another_subject_is_not_used(
    chroma: Path, media: GateMedia, workspace, mina
) -> None:
    """A registration written before the binding (or by hand) for yuna, of an evaluation for mina:
    verify does not use it, and ``detector list`` and ``audit verify`` say why."""
    from likeness.consent.audit import audit_workspace

    evaluate_detector(chroma, media.real, media.fake, subject=mina)
    yuna = workspace.registry.get_subject("yuna")
    folder = detector_folder(workspace.home, yuna.id)
    folder.mkdir(parents=True)
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copyfile(chroma / name, folder / name)
    workspace.ledger.append(
        REGISTERED_EVENT,
        {
            "subject_id": yuna.id,
            "subject_slug": "yuna",
            "model": "test.handmade-chroma",
            "onnx_sha256": hashlib.sha256((chroma / MODEL_FILE).read_bytes()).hexdigest(),
            "card_sha256": hashlib.sha256((chroma / CARD_FILE).read_bytes()).hexdigest(),
        },
    )
    [registered] = registered_detectors(workspace)
    why = check_registered(workspace, registered)
    assert isinstance(why, str) and "fails gate subject: it was evaluated for mina" in why
    problems = [p for p in audit_workspace(workspace).problems if p.subject == "detector of yuna"]
    assert len(problems) == 1 and "evaluated for mina" in problems[0].message


def test_cli_evaluate_for_a_subject_lists_what_verify_would_not_analyse(
    chroma: Path, media: GateMedia, others: GateMedia, settings, workspace, mina
) -> None:
    runner = CliRunner()
    home = ["--home", str(settings.home)]
    units = [a for p in media.real for a in ("--real", str(p))] + [a for p in media.fake for a in ("--fake", str(p))]

    unbound = runner.invoke(app, [*home, "detector", "evaluate", str(chroma), *units])
    assert unbound.exit_code == 0, unbound.output
    assert "to register it, evaluate with --subject SUBJECT" in unbound.output
    refused = runner.invoke(app, [*home, "detector", "register", str(chroma), "--subject", "mina"])
    assert refused.exit_code == 1 and "gate subject fails" in refused.output
    assert "Traceback" not in refused.output

    extra = ["--real", str(others.real[0])]
    bound = runner.invoke(app, [*home, "detector", "evaluate", str(chroma), *units, *extra, "--subject", "mina"])
    assert bound.exit_code == 0, bound.output
    assert "5 real and 5 fake units" in bound.output
    assert f"{others.real[0]}: verify would not analyse: no enrolled match" in bound.output.replace("\n", "")
    done = runner.invoke(app, [*home, "detector", "register", str(chroma), "--subject", "mina"])
    assert done.exit_code == 0, done.output

    nobody = runner.invoke(app, [*home, "detector", "evaluate", str(chroma), *units, "--subject", "nobody"])
    assert nobody.exit_code == 1 and "Traceback" not in nobody.output
