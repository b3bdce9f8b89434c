"""``POST /api/v1/portal/invitations`` checks everything before it creates anything (trial
finding 10): a refused invitation leaves no holder, subject or ledger event behind, and each
refusal has its own status (409 for a name taken, 400 for a bad value), never 404."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from likeness.service.roles import Role
from tests.portal.softauthn import ORIGIN
from tests.service.conftest import build_service_world

INVITATIONS = "/api/v1/portal/invitations"


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _footprint(world) -> tuple[int, int, int]:
    """Rights holder rows, subject rows, ledger rows."""
    workspace = world.workspace
    with workspace.engine.connect() as conn:
        holders = conn.execute(text("SELECT count(*) FROM rights_holders")).scalar_one()
        subjects = conn.execute(text("SELECT count(*) FROM subjects")).scalar_one()
    return holders, subjects, workspace.ledger.count()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"holder": "z-holder", "subject": "mina"}, 409, "subject 'mina' already exists"),
        ({"holder": "z-holder", "holder_kind": "martian"}, 400, "holder kind 'martian'"),
        ({"holder": "Z Holder"}, 400, "rights holder 'Z Holder'"),
        ({"holder": "z-holder", "subject": "Not A Slug"}, 400, "subject 'Not A Slug'"),
        # trial 11: the portal and the public card show names, not slugs (``consent.names``)
        ({"holder": "z-holder", "subject": "mina2", "subject_name": "MINA"}, 400, "reads like 'Mina'"),
        ({"holder": "z-holder", "subject": "mina2", "subject_name": "Mi\u200bna"}, 400, "U+200B"),
        ({"holder": "z-holder", "holder_name": "Guardian \u202eof Mina"}, 400, "U+202E"),
    ],
    ids=[
        "subject-taken",
        "bad-holder-kind",
        "bad-holder-slug",
        "bad-subject-slug",
        "lookalike-subject-name",
        "invisible-subject-name",
        "rtl-holder-name",
    ],
)
def test_a_refused_invitation_creates_nothing(world, body, status, words) -> None:
    client = world.token_client(Role.ADMIN, base_url=ORIGIN)
    before = _footprint(world)
    response = client.post(INVITATIONS, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]
    assert _footprint(world) == before


def test_a_subject_for_an_existing_holder_is_refused_not_ignored(world) -> None:
    client = world.token_client(Role.ADMIN, base_url=ORIGIN)
    made = client.post(INVITATIONS, json={"holder": "z-holder", "subject": "zia"})
    assert made.status_code == 201, made.text
    registry = world.workspace.registry
    assert registry.get_subject("zia").holder_slug == "z-holder"
    # a retry of the same invitation is a new link for the same holder and subject
    assert client.post(INVITATIONS, json={"holder": "z-holder", "subject": "zia"}).status_code == 201
    before = _footprint(world)
    other = client.post(INVITATIONS, json={"holder": "z-holder", "subject": "zoe"})
    assert other.status_code == 409 and "rights holder 'z-holder' already exists" in other.json()["detail"]
    mina = client.post(INVITATIONS, json={"holder": "z-holder", "subject": "mina"})
    assert mina.status_code == 409
    assert _footprint(world) == before
