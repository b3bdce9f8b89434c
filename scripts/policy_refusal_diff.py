"""Attacker edits of the consent database and ledger, and every decision the policy engine then
makes (recheck, authorize for an allowed and a forbidden use, a release, an unknown party, a
render slot, a release record): the refusal reason, message and the ledger events it appends,
ids and times masked, one JSON line per edit to $DIFF_OUT. Run it under two source trees and
compare the files to check that a refactor of consent/policy.py or registry.py is
behaviour-identical (docs/security.md, trial 8):

    git archive OLD src tests | tar -x -C /tmp/old
    DIFF_OUT=/tmp/new.jsonl PYTHONPATH=src python -m pytest -q -p tests.conftest scripts/policy_refusal_diff.py
    cd /tmp/old && DIFF_OUT=/tmp/old.jsonl PYTHONPATH=src python -m pytest -q -p tests.conftest \
        --rootdir=. /path/to/scripts/policy_refusal_diff.py
    diff <(sort /tmp/old.jsonl) <(sort /tmp/new.jsonl)
"""

import json
import os
import re
import sqlite3
from collections.abc import Callable

import pytest
from sqlalchemy import text

from likeness.errors import ConsentError, LikenessError
from tests.conftest import build_consent_world


def masked(decisions: object) -> object:
    """``decisions`` with ids and times masked: two runs make different ones."""
    text_ = json.dumps(decisions, sort_keys=True, default=str)
    text_ = re.sub(r"[0-9a-f]{32}", "<id>", text_)
    text_ = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|\+00:00)?", "<t>", text_)
    return json.loads(text_)


def edit_database(database: str, statement: str) -> None:
    """Run ``statement`` as an attacker with the file would: the ledger's append-only triggers
    dropped first, foreign keys off (sqlite3's default), ``:a``/``:p`` naming mina and jun."""
    connection = sqlite3.connect(database)
    for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        connection.execute(f'DROP TRIGGER "{name}"')
    connection.execute(statement, {"a": "mina", "p": "jun"} if ":" in statement else {})
    connection.commit()
    connection.close()


EDITS = {
    "none": [],
    "del_subject": ["PRAGMA foreign_keys=OFF", "DELETE FROM subjects WHERE slug=:a"],
    "subject_slug": ["UPDATE subjects SET slug='mona' WHERE slug=:a"],
    "subject_kind": ["UPDATE subjects SET kind='artist' WHERE slug=:a"],
    "subject_kind_p": ["UPDATE subjects SET kind='virtual_idol' WHERE slug=:p"],
    "subject_owner": ["UPDATE subjects SET owner_org_id=NULL WHERE slug=:a"],
    "del_org": ["PRAGMA foreign_keys=OFF", "DELETE FROM organisations"],
    "org_slug": ["UPDATE organisations SET slug='rival'"],
    "org_name": ["UPDATE organisations SET name='Rival'"],
    "del_grant": ["PRAGMA foreign_keys=OFF", "DELETE FROM grants"],
    "grant_until": ["UPDATE grants SET valid_until='2099-01-01T00:00:00Z'"],
    "grant_past": ["UPDATE grants SET valid_until='2001-01-01T00:00:00Z'"],
    "grant_max": ["UPDATE grants SET max_renders=1"],
    "grant_uses": ["UPDATE grants SET uses='[\"training\"]'"],
    "grant_org": ["UPDATE grants SET org_id='x'"],
    "grant_sig": ["UPDATE grants SET signature='00'"],
    "del_release": ["PRAGMA foreign_keys=OFF", "DELETE FROM releases"],
    "release_until": ["UPDATE releases SET valid_until='2099-01-01T00:00:00Z'"],
    "release_past": ["UPDATE releases SET valid_until='2001-01-01T00:00:00Z'"],
    "release_perf": ["UPDATE releases SET performer_id=(SELECT id FROM subjects WHERE slug=:a)"],
    "del_authz": ["PRAGMA foreign_keys=OFF", "DELETE FROM authorizations"],
    "authz_use": ["UPDATE authorizations SET use='nsfw'"],
    "authz_org": ["UPDATE authorizations SET org_id='x'"],
    "del_holder": ["PRAGMA foreign_keys=OFF", "DELETE FROM rights_holders"],
    "ledger_del_last": ["DELETE FROM ledger WHERE seq=(SELECT max(seq) FROM ledger)"],
    "ledger_del_grant": ["DELETE FROM ledger WHERE event_type='grant.issued'"],
    "ledger_del_release": ["DELETE FROM ledger WHERE event_type='release.issued'"],
    "ledger_del_subject": ["DELETE FROM ledger WHERE event_type='subject.created'"],
    "ledger_del_org": ["DELETE FROM ledger WHERE event_type='org.created'"],
    "ledger_edit_payload": [
        "UPDATE ledger SET payload=replace(payload, 'studio', 'rival') WHERE event_type='org.created'"
    ],
    "ledger_del_authz_issued": ["DELETE FROM ledger WHERE event_type='authorization.issued'"],
    "revocation_del": ["PRAGMA foreign_keys=OFF", "DELETE FROM grant_revocations", "DELETE FROM release_revocations"],
}


def outcome(decision: Callable[[], object]) -> object:
    try:
        decision()
        return "ok"
    except ConsentError as exc:
        return ["ConsentError", exc.reason, str(exc)]
    except LikenessError as exc:
        return [type(exc).__name__, str(exc)]
    except Exception as exc:  # recorded, so that the other tree's answer is compared with it
        return ["EXC", type(exc).__name__, str(exc)[:200]]


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("revoked", [False, True])
def test_decisions_after_an_edit(workspace, tmp_path, edit, revoked):
    world = build_consent_world(workspace, tmp_path)
    ws = workspace
    a = world.authorize("training")
    r = world.authorize_release()
    if revoked:
        world.revoke_grant()
        world.revoke_release()
    for statement in EDITS[edit]:
        edit_database(ws.engine.url.database, statement)
    out = {}

    def events_after(n: int) -> list:
        with ws.engine.connect() as c:
            rows = c.execute(text("SELECT event_type, payload FROM ledger ORDER BY seq")).all()
        return [[t, json.loads(p)] for t, p in rows[n:]] if len(rows) >= n else ["shrunk", len(rows)]

    for name, decision in [
        ("recheck", a.recheck),
        ("recheck_release", r.recheck),
        ("authorize", lambda: world.authorize("training")),
        ("authorize_nsfw", lambda: world.authorize("nsfw")),
        ("authorize_release", world.authorize_release),
        ("authorize_other_org", lambda: ws.policy.authorize("mina", "training", "nobody")),
        ("authorize_unknown", lambda: ws.policy.authorize("nobody", "training", "studio")),
        ("consume", lambda: a.consume_render("j1")),
        ("record", lambda: r.record("render.completed", {"x": 1})),
    ]:
        with ws.engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM ledger")).scalar_one()
        out[name] = [outcome(decision), events_after(n)]
    with open(os.environ["DIFF_OUT"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"edit": edit, "revoked": revoked, "out": masked(out)}, sort_keys=True) + "\n")
