"""`likeness verify`: help text, JSON Lines output, evidence packs, missing paths."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.media import write_image
from likeness.media.synthetic import astronaut

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def test_every_option_has_help():
    result = CliRunner().invoke(app, ["verify", "--help"])
    assert result.exit_code == 0
    for option in ("--json", "--report", "--workers", "--anchor", "--force"):
        assert option in result.output


def test_json_lines_and_report(consent_world, tmp_path):
    home = str(consent_world.workspace.home)
    photo = tmp_path / "photo.jpg"
    write_image(photo, astronaut(), quality=90)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["--home", home, "verify", str(photo), str(empty), "--json", "--workers", "1", "--report", str(report)]
    )
    assert result.exit_code == 1, result.output  # every verdict printed, then: one file got none
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["verdict"] for r in lines] == ["no-enrolled-artist", "error"]
    assert "1 of 2 file(s) could not be verified" in result.stderr
    assert {"path", "sha256", "verdict", "c2pa", "watermark", "faces", "errors"} <= set(lines[0])
    assert (report / "results.json").exists() and len(list(report.glob("*.zip"))) == 2


def test_missing_path_fails_cleanly(consent_world, tmp_path):
    result = CliRunner().invoke(
        app, ["--home", str(consent_world.workspace.home), "verify", str(tmp_path / "nope.jpg")]
    )
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output


def test_exit_status_is_zero_only_when_every_file_got_a_verdict(consent_world, tmp_path):
    home = str(consent_world.workspace.home)
    photo = tmp_path / "photo.jpg"
    write_image(photo, astronaut(), quality=90)
    fine = CliRunner().invoke(app, ["--home", home, "verify", str(photo), "--workers", "1"])
    assert fine.exit_code == 0, fine.output
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    mixed = CliRunner().invoke(app, ["--home", home, "verify", str(tmp_path), "--workers", "1", "--force"])
    assert mixed.exit_code == 1
    assert "no-enrolled-artist" in mixed.stdout and "error" in mixed.stdout and "clip.mp4" in mixed.stdout


@pytest.mark.parametrize(
    "done, summary, said",
    [
        (
            1,
            None,
            "interrupted after 1 of 3 file(s): their results are kept; rerun the same command to verify the rest",
        ),
        (
            3,
            None,
            "interrupted after all 3 file(s) were verified, before their verdicts were printed: the results are kept; "
            "rerun the same command to print them",
        ),
        (
            3,
            "results.json",
            "interrupted after all 3 file(s) were verified and the summary SUMMARY was written, before their "
            "verdicts were printed: the results are kept; rerun the same command to print them",
        ),
    ],
    ids=["midway", "after-the-last-file", "after-the-summary"],
)
def test_ctrl_c_during_a_folder_says_how_far_it_got_and_how_to_go_on(
    consent_world, tmp_path, monkeypatch, done, summary, said
):
    # A new user's Ctrl-C used to end `verify FOLDER` with exit status 130 and not a word; then,
    # after the last file, it said "after 3 of 3 file(s) ... verify the rest".
    import likeness.verify.scan
    from likeness.verify.scan import VerificationInterrupted

    for name in ("a.png", "b.png", "c.png"):
        write_image(tmp_path / name, astronaut())
    written = tmp_path / summary if summary else None

    def interrupted(workspace, paths, *, progress, **_):
        class Done:
            path = str(tmp_path / "a.png")

        progress(done, 3, Done())
        raise VerificationInterrupted(done, 3, written)

    monkeypatch.setattr(likeness.verify.scan, "verify_many", interrupted)
    result = CliRunner().invoke(
        app, ["--home", str(consent_world.workspace.home), "verify", str(tmp_path)], terminal_width=400
    )
    assert result.exit_code == 130, result.output
    assert said.replace("SUMMARY", str(written)) in result.output


def test_ctrl_c_after_the_last_file_says_all_were_verified_and_what_was_not_done(consent_world, tmp_path, monkeypatch):
    # It said "after 2 of 2 file(s) ...; rerun the same command to verify the rest".
    from likeness.verify.pipeline import Verifier

    for name in ("a.png", "b.png"):
        write_image(tmp_path / "in" / name, astronaut())
    report = tmp_path / "report"
    args = ["--home", str(consent_world.workspace.home), "verify", str(tmp_path / "in"), "--workers", "1"]
    args += ["--report", str(report)]

    def stopped_after_the_last_file(self) -> None:  # closing the analysers: every file is done
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Verifier, "close", stopped_after_the_last_file)
        result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 130, result.output
    assert (
        "interrupted after all 2 file(s) were verified, before their verdicts were printed and the summary "
        f"{report / 'results.json'} was written: the results are kept; rerun the same command to print them and "
        "write it" in result.output
    )
    assert not (report / "results.json").exists()

    import likeness.cli.verify

    print_result = likeness.cli.verify._print_result
    calls = []

    def stopped_while_printing(result) -> None:
        calls.append(result)
        if len(calls) == 2:
            raise KeyboardInterrupt
        print_result(result)

    with monkeypatch.context() as patch:  # true to its word: nothing is analysed again
        patch.setattr(likeness.cli.verify, "_print_result", stopped_while_printing)
        printing = CliRunner().invoke(app, args, terminal_width=400)
    assert printing.exit_code == 130, printing.output
    assert (
        f"interrupted after all 2 file(s) were verified and the summary {report / 'results.json'} was written, "
        "while their verdicts were printed (1 of 2 printed in full): the results are kept; rerun the same "
        "command to print them" in printing.output
    )
    assert printing.output.count("(unchanged since last verification)") == 1 and (report / "results.json").is_file()
    again = CliRunner().invoke(app, args, terminal_width=400)
    assert again.exit_code == 0, again.output
    assert again.output.count("(unchanged since last verification)") == 2


def test_an_anchor_that_holds_no_certificate_is_refused_before_any_file(consent_world, tmp_path):
    # It used to be accepted: every file's C2PA then "could not be read", with a note each.
    photo = write_image(tmp_path / "photo.jpg", astronaut(), quality=90)
    notes = tmp_path / "anchor.pem"
    notes.write_text("not a certificate\n", encoding="ascii")
    home = str(consent_world.workspace.home)
    for anchor, reason in ((notes, "trust anchor holds no PEM certificate"), (tmp_path, "Is a directory")):
        result = CliRunner().invoke(app, ["--home", home, "verify", str(photo), "--anchor", str(anchor)])
        assert result.exit_code == 1, result.output
        assert f"{anchor}: " in result.output and reason in result.output, result.output
        assert "no-enrolled-artist" not in result.output  # refused before verifying


def test_a_file_name_cannot_forge_a_verdict_line_or_move_the_cursor(consent_world, tmp_path):
    # A collection's file names are whoever made it: a newline started a forged verdict line of
    # its own, and a terminal escape could move the cursor over the real one (trial 8).
    forged = "a.png\nlabelled-verified  b.png\n    C2PA: valid\x1b[1A\x1b[2K\u202egnp.png"
    write_image(tmp_path / forged, astronaut())
    result = CliRunner().invoke(app, ["--home", str(consent_world.workspace.home), "verify", str(tmp_path / forged)])
    assert result.exit_code == 0, result.output
    verdict_line = result.stdout.splitlines()[0]
    assert verdict_line.startswith("no-enrolled-artist  "), result.stdout
    assert verdict_line.endswith(r"a.png\nlabelled-verified  b.png\n    C2PA: valid\x1b[1A\x1b[2K\u202egnp.png")
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert not any(line.startswith("labelled") for line in result.stdout.splitlines())
