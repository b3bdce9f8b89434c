"""``likeness audit verify`` names a ``grant_requests`` row that disagrees with the ledger (issue 29).

The portal already refuses to show or sign a request whose row was edited (``grant_altered``);
before this check, audit said the workspace was intact. Each edit below is named, kind
``grant_request``, and a workspace with requests pending, signed and declined has none."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from likeness.cli import app
from likeness.consent.integrity import consent_row_problems
from tests.portal.conftest import PasskeyWorld


def request_problems(world: PasskeyWorld) -> list[str]:
    return [p.problem for p in consent_row_problems(world.workspace) if p.kind == "grant_request"]


def execute(world: PasskeyWorld, statement: str, **params: object) -> None:
    with world.workspace.engine.begin() as connection:
        connection.execute(text(statement), params)


@pytest.fixture
def answered(passkey_world: PasskeyWorld) -> dict[str, str]:
    """One request each: pending, signed (with the passkey), declined."""
    world = passkey_world
    pending, signed, declined = world.request(), world.request(), world.request()
    world.sign(signed)
    world.portal.decline(declined.request_id, world.holder_id, reason="no")
    return {"pending": pending.request_id, "signed": signed.request_id, "declined": declined.request_id}


def test_requests_pending_signed_and_declined_are_not_named(passkey_world, answered) -> None:
    assert request_problems(passkey_world) == []
    assert consent_row_problems(passkey_world.workspace) == []


def test_terms_edited_in_sql_are_named_with_what_differs(passkey_world, answered) -> None:
    request_id = answered["pending"]
    execute(
        passkey_world,
        "UPDATE grant_requests SET payload = replace(payload, :old, :new) WHERE id = :id",
        old='"max_renders":20',
        new='"max_renders":2000',
        id=request_id,
    )
    (problem,) = request_problems(passkey_world)
    assert request_id in problem and "max_renders: drafted 20, the row says 2000" in problem


def test_a_row_inserted_without_an_event_is_named(passkey_world, answered) -> None:
    execute(
        passkey_world,
        "INSERT INTO grant_requests (id, subject_id, org_id, payload, request_sha256, state, created_by, created_at) "
        "SELECT :copy, subject_id, org_id, payload, request_sha256, 'pending', created_by, created_at "
        "FROM grant_requests WHERE id = :id",
        id=answered["pending"],
        copy=copy_id(answered["pending"]),
    )
    assert any("no grant.requested event" in p for p in request_problems(passkey_world))


def copy_id(request_id: str) -> str:
    """Another id of the same shape (one in 16 ids began with the 'f' the copy used to take)."""
    return ("e" if request_id[0] == "f" else "f") + request_id[1:]


@pytest.mark.parametrize(
    ("which", "state", "named"),
    [
        ("signed", "pending", "its state 'pending' (grant"),  # set back to pending after it was signed
        ("declined", "signed", "its state 'signed' (grant"),  # a refusal shown as consent
        ("pending", "declined", "its state 'declined' (grant"),  # a request hidden from the holder
    ],
)
def test_a_state_the_ledger_contradicts_is_named(passkey_world, answered, which, state, named) -> None:
    execute(passkey_world, "UPDATE grant_requests SET state = :s WHERE id = :id", s=state, id=answered[which])
    (problem,) = request_problems(passkey_world)
    assert named in problem and answered[which] in problem


def test_the_subject_or_drafter_edited_is_named(passkey_world, answered) -> None:
    execute(
        passkey_world, "UPDATE grant_requests SET created_by = 'someone else' WHERE id = :id", id=answered["pending"]
    )
    (problem,) = request_problems(passkey_world)
    assert "created_by 'someone else' is not the ledger's 'legal'" in problem
    other = passkey_world.workspace.registry.add_subject("sora", "Sora", kind="artist", holder="haneul-holder")
    execute(
        passkey_world, "UPDATE grant_requests SET subject_id = :s WHERE id = :id", s=other.id, id=answered["signed"]
    )
    assert any("its subject_id" in p and answered["signed"] in p for p in request_problems(passkey_world))


def test_audit_verify_prints_it_and_fails(passkey_world, answered) -> None:
    execute(passkey_world, "UPDATE grant_requests SET state = 'pending' WHERE id = :id", id=answered["signed"])
    result = CliRunner().invoke(app, ["--home", str(passkey_world.workspace.home), "audit", "verify"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "grant_request" in said and answered["signed"] in said and "NOT intact" in said
