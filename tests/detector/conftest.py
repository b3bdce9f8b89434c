"""Fixtures of the detector tests: the gate media and the enrolled artist they are evaluated for."""

from __future__ import annotations

import pytest

from .handmade import GateMedia, enrol_as_units, gate_media


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> GateMedia:
    """mina's (astronaut) real and tinted units."""
    return gate_media(tmp_path_factory.mktemp("gate-media"))


@pytest.fixture
def mina(workspace, tmp_path):
    """The artist ``mina`` (the astronaut of the gate media), enrolled: the subject to evaluate for."""
    from tests.conftest import add_subject

    workspace.registry.add_org("studio", "Studio")  # its key seals each reference's ledger event
    add_subject(workspace.registry, "mina", "Mina", kind="artist")
    return enrol_as_units(workspace, "mina", tmp_path / "mina-references")
