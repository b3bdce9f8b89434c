"""Paths, names and others' text print with control characters escaped (``printable``), in
every command, as verify already did: a newline in a file name cannot start a forged line of its
own, and an ESC cannot clear the screen or move the cursor over what the user reads. Before,
only verify escaped them; init, org list, subject photos add, holder sign and the error line
printed them raw."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from typer.testing import CliRunner

from likeness.cli import app, configure_logging
from likeness.consent.canonical import canonical_sha256
from tests.consent.test_cli_consent import enrol

runner = CliRunner()
#: A newline, a carriage return, and "clear the screen".
FORGED = "a\nb\rc\x1b[2J"
ESCAPED = r"a\nb\rc\x1b[2J"


def output(home: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    assert "\x1b" not in result.output and "\r" not in result.output, result.output
    return result.output


def test_a_workspace_folder_an_organisation_and_a_file_name(tmp_path: Path) -> None:
    home = tmp_path / f"home {FORGED}"
    said = output(home, "init", "--org", "studio").splitlines()
    assert said[0] == f"workspace ready at {tmp_path}/home {ESCAPED}", said
    assert f"  keys      {tmp_path}/home {ESCAPED}/keys" in said, said

    # A name with control characters is refused (``consent.names``), and the refusal escapes it.
    said = output(home, "org", "add", "acme", "--name", f"Acme {FORGED}", code=1)
    assert f"Acme {ESCAPED}" in said and "U+000A" in said, said

    enrol(home, "mina", "--virtual", "--owner-org", "studio")
    missing = tmp_path / f"{FORGED}.png"
    said = output(home, "subject", "photos", "add", "mina", str(missing), code=1)
    assert f"skipped {tmp_path}/{ESCAPED}.png: " in said, said

    # The error line (every command's ``fail``): a faceset folder that is not there.
    said = output(home, "faceset", "report", str(missing), code=1)
    assert said == f"error: {tmp_path}/{ESCAPED}.png: faceset folder not found\n", said


def test_a_request_cannot_redraw_what_the_holder_reads_before_signing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    output(home, "init", "--org", "studio")
    private = enrol(home, "mina", "--virtual", "--owner-org", "studio")
    request = tmp_path / "request.json"
    purpose = f"a fan message{FORGED}"
    # trial 11: such a purpose is refused when drafted (``names.request_purpose``) ...
    said = output(home, "consent", "request", "mina", "--use", "fan_message", "--until", "+30d", "--purpose",
                  purpose, "--out", str(request), code=1)  # fmt: skip
    assert "U+000D" in said and not request.exists(), said
    # ... and a request file edited to hold one is still shown escaped (its import would fail)
    output(home, "consent", "request", "mina", "--use", "fan_message", "--until", "+30d", "--purpose",
           "a fan message", "--out", str(request))  # fmt: skip
    edited = json.loads(request.read_text())
    edited["payload"]["purpose"] = purpose
    edited["payload_sha256"] = canonical_sha256(edited["payload"])
    request.write_text(json.dumps(edited))
    signed = tmp_path / "signed.json"
    said = output(home, "holder", "sign", str(request), "--key", str(private), "--out", str(signed), "--yes")
    assert f"Purpose: a fan message{ESCAPED}\n" in said, said


def test_log_records_are_escaped_too() -> None:
    library = logging.getLogger("likeness")
    before = list(library.handlers), library.level
    try:
        configure_logging()
        (handler,) = [h for h in library.handlers if h not in before[0]]
        record = logging.LogRecord("likeness.x", logging.WARNING, __file__, 1, "%s: skipped", (FORGED,), None)
        assert handler.format(record) == f"{ESCAPED}: skipped"
    finally:
        for handler in [h for h in library.handlers if h not in before[0]]:
            library.removeHandler(handler)
        library.setLevel(before[1])
