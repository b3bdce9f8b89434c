"""Attacker trial 4 on the detector path (issue #31): a database editor's hand-made
``detector.registered`` row, and a subject's references changed after its detector was evaluated.
Each case crashed ``detector list`` / ``audit verify`` or kept the detector in use before its fix."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector.registered import (
    REGISTERED_EVENT,
    WorkspaceDetectors,
    check_registered,
    detectors_fingerprint,
    registered_detectors,
)

from .handmade import GateMedia, enrol_as_units, gate_media

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> GateMedia:
    return gate_media(tmp_path_factory.mktemp("gate-media"))


@pytest.fixture
def mina(workspace, tmp_path):
    from tests.conftest import add_subject

    add_subject(workspace.registry, "mina", "Mina", kind="artist")
    return enrol_as_units(workspace, "mina", tmp_path / "mina-references")


@pytest.mark.parametrize(
    "payload",
    [
        {"note": "no sha256s"},
        {"onnx_sha256": 5, "card_sha256": None},
        {"onnx_sha256": "a" * 64, "card_sha256": "b" * 64, "gates": 7},
    ],
    ids=["missing-fields", "wrong-types", "gates-not-a-list"],
)
def test_a_malformed_registration_row_is_named_not_a_traceback(workspace, settings, mina, payload) -> None:
    """A database editor appends a ``detector.registered`` row (a valid hash chain is easy to
    compute) that names the subject and nothing else: ``detector list``, ``audit verify`` and a
    scan's fingerprint raised ``KeyError`` on it, so the one command that should name it could not run."""
    from likeness.consent.audit import audit_workspace

    workspace.ledger.append(REGISTERED_EVENT, {"subject_id": mina.subject_id, **payload})
    [registered] = registered_detectors(workspace)
    why = check_registered(workspace, registered)
    assert isinstance(why, str) and "is malformed" in why, why
    problems = [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    assert len(problems) == 1 and "is malformed" in problems[0].message
    assert isinstance(detectors_fingerprint(workspace), str)
    found = WorkspaceDetectors(workspace).for_subject(mina.subject_id)
    assert isinstance(found, str) and "is malformed" in found

    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    assert "NOT used by verify" in listed.output and "is malformed" in listed.output
    audited = CliRunner().invoke(app, ["--home", str(settings.home), "audit", "verify"])
    assert audited.exit_code == 1 and "Traceback" not in audited.output
    assert "detector_altered" in audited.output
