"""CLI tests, in-process with Typer's runner, on a temporary workspace."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.media import write_image

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    result = runner.invoke(app, ["--home", str(home), "init", "--org", "studio"])
    assert result.exit_code == 0, result.output
    return home


def run(home, *args: str, code: int = 0):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output, result.stderr if hasattr(result, "stderr") else "")
    return result


def holder_key(home, name: str):
    """``(private, public)`` key files made with ``holder keygen`` on the holder's machine (a
    folder beside the workspace)."""
    machine = home.parent / "holder-machine"
    if not (machine / f"{name}.pem").exists():
        run(home, "holder", "keygen", "--out", str(machine), "--name", name)
    return machine / f"{name}.pem", machine / f"{name}.pub.pem"


def enrol(home, slug: str, *options: str):
    """``subject add`` with a holder key made on the holder's machine; the private key file."""
    private, public = holder_key(home, f"{slug}-holder")
    run(home, "subject", "add", slug, "--holder-public-key", str(public), *options)
    return private


def signed_by_holder(home, private, *request: str, code: int = 0) -> str:
    """``consent request|release request ARGS`` → ``holder sign --yes`` → ``consent import``;
    the imported record's id."""
    folder = home.parent / "exchange"
    folder.mkdir(exist_ok=True)
    token = uuid.uuid4().hex[:8]
    request_file, signed_file = folder / f"request-{token}.json", folder / f"signed-{token}.json"
    run(home, *request, "--out", str(request_file))
    run(home, "holder", "sign", str(request_file), "--key", str(private), "--out", str(signed_file), "--yes")
    out = run(home, "consent", "import", str(signed_file), code=code).output
    return out.split(" imported")[0].split()[-1] if code == 0 else out


def revoked_by_holder(home, private, record_id: str, reason: str = "") -> None:
    receipt = next(p for p in (home.parent / "exchange").glob("signed-*.json") if record_id in p.read_text())
    revocation = home.parent / "exchange" / f"revocation-{uuid.uuid4().hex[:8]}.json"
    run(home, "holder", "revoke", str(receipt), "--key", str(private), "--out", str(revocation), "--reason", reason)
    run(home, "consent", "import", str(revocation))


def test_grant_check_revoke_cycle(home):
    mina = enrol(home, "mina", "--virtual", "--owner-org", "studio", "--name", "Mina")
    grant_id = signed_by_holder(
        home,
        mina,
        "consent",
        "request",
        "mina",
        "--use",
        "training",
        "--use",
        "music_video",
        "--until",
        "+30d",
        "--purpose",
        "debut MV",
    )
    assert "authorized" in run(home, "consent", "check", "mina", "--use", "training", "--org", "studio").output
    refused = run(home, "consent", "check", "mina", "--use", "tribute", "--org", "studio", code=1)
    assert "use_not_granted" in refused.output
    listing = run(home, "consent", "list").output
    assert grant_id[:8] in listing and "active" in listing
    shown = json.loads(run(home, "consent", "show", grant_id[:10], "--json").output)
    assert shown["uses"] == ["music_video", "training"] and shown["purpose"] == "debut MV"
    revoked_by_holder(home, mina, grant_id, "contract ended")
    assert "revoked" in run(home, "consent", "check", "mina", "--use", "training", code=1).output


def test_prohibited_grant_is_an_error_not_a_traceback(home, tmp_path):
    enrol(home, "ari")
    result = run(
        home,
        "consent",
        "request",
        "ari",
        "--use",
        "sexual_content",
        "--until",
        "+3d",
        "--out",
        str(tmp_path / "r"),
        code=1,
    )
    assert "prohibited_use" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_release_request_sign_import_list_revoke(home):
    jun = enrol(home, "jun", "--performer")
    release_id = signed_by_holder(home, jun, "release", "request", "jun", "--until", "2099-01-01")
    assert "active" in run(home, "release", "list").output
    revoked_by_holder(home, jun, release_id)
    assert "revoked" in run(home, "release", "list").output


def test_subject_add_without_the_holder_public_key_is_refused(home):
    result = run(home, "subject", "add", "ari", code=1)
    assert "likeness holder keygen" in result.output and "Traceback" not in result.output
    assert not (home / "keys" / "holders").exists()


@pytest.mark.parametrize("option", [("--holder-public-key", "other.pub.pem"), ("--holder-kind", "estate")])
def test_subject_add_under_an_enrolled_holder_refuses_a_key_or_kind_it_would_ignore(home, option):
    """A second subject under ``--holder`` with another ``--holder-public-key`` was enrolled
    under the holder's old key with exit 0: the agency believed it had registered the new one."""
    enrol(home, "mina")
    _, other = holder_key(home, "other")
    value = str(other) if option[0] == "--holder-public-key" else option[1]
    result = run(home, "subject", "add", "jin", "--holder", "mina-holder", option[0], value, code=1)
    text = " ".join(result.output.split())
    assert "rights holder 'mina-holder' is enrolled already" in text and "only for a new holder" in text
    assert "Traceback" not in result.output
    assert "jin" not in run(home, "subject", "list").output


def test_audit_verify_head_and_log(home, tmp_path):
    enrol(home, "ari")
    assert "ledger intact" in run(home, "audit", "verify").output
    head_file = tmp_path / "head.json"
    head = json.loads(run(home, "audit", "head", "--out", str(head_file)).output)
    assert head["seq"] >= 3 and len(head["signature"]) == 128
    assert "ledger intact" in run(home, "audit", "verify", "--head", str(head_file)).output
    log = run(home, "audit", "log", "--json").output.strip().splitlines()
    assert json.loads(log[-1])["event_type"] == "subject.created"
    # --out in a folder that does not exist: one line naming it (was a FileNotFoundError traceback)
    missing = tmp_path / "no" / "head.json"
    assert (
        f"{missing}: cannot write the signed head" in run(home, "audit", "head", "--out", str(missing), code=1).output
    )


def test_commands_outside_a_workspace_fail_cleanly(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path / "missing"), "consent", "list"])
    assert result.exit_code == 1
    assert "likeness init" in result.output


@pytest.mark.parametrize(
    "args",
    [("subject", "list"), ("org", "add", "acme"), ("audit", "log"), ("keys", "init"), ("verify", "PHOTO")],
    ids=" ".join,
)
def test_a_folder_never_initialised_is_refused_and_left_empty(tmp_path, args):
    # `--home EMPTY subject list` used to leave an empty likeness.db (and its -wal, -shm) there.
    empty = tmp_path / "empty"
    empty.mkdir()
    photo = write_image(tmp_path / "photo.png", np.full((32, 32, 3), 128, np.uint8))
    result = runner.invoke(app, ["--home", str(empty), *(str(photo) if a == "PHOTO" else a for a in args)])
    assert result.exit_code == 1, result.output
    assert f"{empty}: no workspace here (create one with: likeness init)" in result.output
    assert list(empty.iterdir()) == []


def test_an_empty_database_file_is_refused_and_nothing_is_added_beside_it(tmp_path):
    # What the bug above left behind: opening it turned it into a WAL database with two more files.
    (tmp_path / "likeness.db").touch()
    result = runner.invoke(app, ["--home", str(tmp_path), "subject", "list"])
    assert result.exit_code == 1 and "database schema is missing or old (run: likeness init)" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["likeness.db"] and (tmp_path / "likeness.db").stat().st_size == 0


def test_init_on_a_file_names_it_instead_of_a_traceback(tmp_path):
    # A new user's slip: --home given a file. It used to end in FileExistsError's traceback.
    taken = tmp_path / "notes.txt"
    taken.write_text("not a workspace", encoding="utf-8")
    for home in (taken, taken / "home"):
        result = runner.invoke(app, ["--home", str(home), "init"])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert f"{home}: " in result.output and "not a" in result.output.replace("Not a", "not a"), result.output


def test_a_missing_or_folder_input_file_is_named_not_a_traceback(home, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    for args, named in (
        (("subject", "add", "kim", "--performer", "--holder-public-key", str(tmp_path / "no.pub.pem")), "no.pub.pem"),
        (("subject", "add", "kim", "--performer", "--holder-public-key", str(folder)), str(folder)),
        (("consent", "import", str(folder)), str(folder)),
    ):
        result = run(home, *args, code=1)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert named in result.output and "cannot read" in result.output, (args, result.output)


def test_a_request_with_a_non_image_preview_or_no_folder_for_its_file_drafts_nothing(home, tmp_path):
    from likeness.config import Settings
    from likeness.workspace import Workspace

    enrol(home, "mina", "--virtual", "--owner-org", "studio")
    enrol(home, "jun", "--performer")
    notes = tmp_path / "still.png"
    notes.write_text("not a picture", encoding="utf-8")
    grant = ("consent", "request", "mina", "--use", "training", "--until", "+30d")
    for args, expected in (
        ((*grant, "--preview", str(notes), "--out", str(tmp_path / "r.json")), f"{notes}: not a readable image"),
        ((*grant, "--out", str(tmp_path / "no" / "r.json")), f"{tmp_path / 'no' / 'r.json'}: its folder"),
        (("release", "request", "jun", "--until", "+30d", "--out", str(tmp_path / "no" / "r.json")), "its folder"),
    ):
        result = run(home, *args, code=1)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert expected in result.output, (args, result.output)
    workspace = Workspace.open(Settings(home=home))
    try:  # refused before drafting: no request waits for a holder who never receives it
        assert workspace.ledger.find("grant.requested") == workspace.ledger.find("release.requested") == []
    finally:
        workspace.close()


def _all_commands(group, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if hasattr(command, "commands"):
            yield from _all_commands(command, path)


def test_every_command_has_help():
    import typer.main

    root = typer.main.get_command(app)
    commands = list(_all_commands(root))
    assert len(commands) >= 20
    for path, command in commands:
        assert (command.help or "").strip(), f"likeness {' '.join(path)} has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"likeness {' '.join(path)} {param.opts} has no help"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_audit_anchor_then_verify_names_a_truncated_tail(home, tmp_path):
    from sqlalchemy import create_engine, text

    anchors = tmp_path / "usb" / "anchors"
    enrol(home, "ari")
    unanchored = run(home, "audit", "verify").output
    assert "ledger intact" in unanchored and "no anchor" in unanchored
    out = run(home, "audit", "anchor", "--to", str(anchors)).output
    assert "anchored row" in out and len(list(anchors.glob("ledger-head-*.json"))) == 1
    assert "matches anchor at row" in run(home, "audit", "verify", "--anchor", str(anchors)).output
    engine = create_engine(f"sqlite:///{home / 'likeness.db'}")
    with engine.begin() as conn:  # someone with the files drops the guard and cuts the tail
        conn.execute(text("DROP TRIGGER ledger_no_delete"))
        conn.execute(text("DELETE FROM ledger WHERE seq > 2"))
    engine.dispose()
    broken = run(home, "audit", "verify", "--anchor", str(anchors), code=1).output
    assert "tail_truncated" in broken and "trigger_missing" in broken and "NOT intact" in broken
    refused = run(home, "audit", "anchor", "--to", str(anchors), code=1)
    assert "refusing to anchor" in refused.output and "Traceback" not in refused.output


def test_audit_anchor_refuses_a_folder_inside_the_workspace(home):
    result = run(home, "audit", "anchor", "--to", str(home / "anchors"), code=1)
    assert "inside the workspace" in result.output
    assert "inside the workspace" in run(home, "audit", "verify", "--anchor", str(home), code=1).output
    assert "no anchor folder" in run(home, "audit", "anchor", code=1).output


def test_audit_verify_help_documents_exit_codes():
    text = runner.invoke(app, ["audit", "verify", "--help"]).output
    assert "Exit codes" in text and "0" in text and "1 anything is wrong" in text


def test_subject_add_with_no_usable_photo_fails_with_the_reason(home, tmp_path):
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((256, 256, 3), 128, np.uint8))
    _, public = holder_key(home, "mina-holder")
    result = run(
        home,
        "subject",
        "add",
        "mina",
        "--virtual",
        "--owner-org",
        "studio",
        "--holder-public-key",
        str(public),
        "--photo",
        str(blank),
        code=1,
    )
    assert "no usable reference photo" in result.output and "no face found" in result.output
    assert "likeness subject photos add mina" in result.output and "Traceback" not in result.output


def test_the_request_the_signed_file_and_the_two_key_halves_given_for_one_another_say_which_to_give(home):
    # Each said what the file was not ("not a signed likeness consent (type
    # 'likeness.grant-request.v1')"), or told the holder to chmod 600 their public key.
    folder = home.parent / "exchange"
    folder.mkdir()
    private, public = holder_key(home, "mina-holder")
    request, signed = folder / "request.json", folder / "signed.json"
    run(home, "subject", "add", "mina", "--holder-public-key", str(public))
    run(home, "consent", "request", "mina", "--use", "training", "--until", "+30d", "--out", str(request))

    def error_line(*args: str) -> str:
        return run(home, *args, code=1).output.strip().splitlines()[-1]

    assert error_line("consent", "import", str(request)) == (
        f"error: {request}: an unsigned request, not a signed consent: give the file 'likeness holder sign' "
        "wrote from it (the rights holder signs on their own machine and sends it back)"
    )
    keygen = "'likeness holder keygen' wrote NAME.pem, the private key, and NAME.pub.pem, the public one"
    assert error_line("holder", "sign", str(request), "--key", str(public), "--out", str(signed), "--yes") == (
        f"error: {public}: a public key, where the private key goes; {keygen}: give the .pem"
    )
    public.chmod(0o600)  # as the old message said to
    assert error_line("holder", "sign", str(request), "--key", str(public), "--out", str(signed), "--yes") == (
        f"error: {public}: a public key, where the private key goes; {keygen}: give the .pem"
    )
    assert error_line("subject", "add", "jun", "--performer", "--holder-public-key", str(private)) == (
        "error: holder public key: this is a private key, which never leaves the holder's machine; "
        f"{keygen}: give the .pub.pem"
    )
    run(home, "holder", "sign", str(request), "--key", str(private), "--out", str(signed), "--yes")
    assert error_line("holder", "sign", str(signed), "--key", str(private), "--out", str(folder / "again.json")) == (
        f"error: {signed}: already signed (a signed consent, not a request): nothing to sign; the organisation "
        "imports it with 'likeness consent import'"
    )
    imported = " ".join(run(home, "consent", "import", str(signed)).output.split())
    # whom it binds, as the ledger names them: an operator importing a relabelled file gets a hint
    assert "imported for organisation 'studio' (studio), subject 'mina' (mina)" in imported


def test_init_run_again_as_the_readme_has_it_leaves_the_workspace_as_it_is(home):
    # The README's first line run a second time ended on "error: organisation 'studio' already exists".
    before = run(home, "audit", "log", "--json").output
    again = run(home, "init", "--org", "studio").output
    assert f"workspace ready at {home}" in again
    assert "organisation studio was already registered (likeness org list)" in again
    assert run(home, "audit", "log", "--json").output == before  # nothing added to the ledger
    renamed = run(home, "init", "--org", "studio", "--org-name", "Studio Two", code=1).output
    assert "error: organisation 'studio' already exists" in renamed


def test_init_says_it_registered_the_organisation(tmp_path):
    first = run(tmp_path / "fresh", "init", "--org", "studio", "--org-name", "Studio Haneul").output
    assert "organisation studio added (key " in first


def test_init_with_another_organisation_on_a_workspace_that_has_one_adds_nothing(home):
    """``init --org byeol`` on studio's workspace added byeol silently ("workspace ready"): a
    second organisation leaves holders enrolled before holders named theirs without one, which
    'org add' warns of."""
    before = run(home, "audit", "log", "--json").output
    refused = run(home, "init", "--org", "byeol", code=1)
    text = " ".join(refused.output.split())
    assert "has organisation(s) studio already" in text and "likeness org add byeol" in text
    assert "Traceback" not in refused.output
    assert run(home, "audit", "log", "--json").output == before
    assert "byeol" not in run(home, "org", "list").output


def test_audit_verify_tells_an_altered_row_from_a_broken_hash_chain(home):
    """Both read "ledger NOT intact: N problem(s)": an operator could not tell a database row
    edited beside an intact ledger from an edited ledger."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{home / 'likeness.db'}")
    with engine.begin() as conn:  # a consent row, not the ledger
        conn.execute(text("UPDATE organisations SET name = 'Studio Two' WHERE slug = 'studio'"))
    rows = " ".join(run(home, "audit", "verify", code=1).output.split())
    assert "ledger NOT intact: hash chain intact (" in rows and "rows), but 1 problem(s) in the consent rows" in rows
    with engine.begin() as conn:  # the ledger itself
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        conn.execute(text("UPDATE ledger SET created_at = '2020-01-01T00:00:00Z' WHERE seq = 1"))
    engine.dispose()
    chain = " ".join(run(home, "audit", "verify", code=1).output.split())
    assert "ledger NOT intact: hash chain broken at ledger row 1;" in chain
