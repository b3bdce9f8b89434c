"""The attack of finding 3 through the CLI: a second agency enrols haneul's artist's photo as a
subject of its own, under a rights-holder key it made itself; the photo is refused."""

from __future__ import annotations

from pathlib import Path

from likeness.media import write_image
from tests.consent.test_cli_consent import enrol, holder_key, run


def test_a_second_agency_cannot_enrol_another_agency_s_artist_s_face(tmp_path: Path, astronaut) -> None:
    home = tmp_path / "home"
    run(home, "init", "--org", "haneul")
    run(home, "org", "add", "byeol")
    photo = write_image(tmp_path / "mina_reference.png", astronaut)
    enrol(home, "mina", "--org", "haneul", "--photo", str(photo))

    _, byeol_made = holder_key(home, "fake")  # byeol's own key, standing in for jiwoo's holder
    attack = (
        "subject",
        "add",
        "jiwoo",
        "--org",
        "byeol",
        "--holder-public-key",
        str(byeol_made),
        "--photo",
        str(photo),
    )
    run(home, *attack, code=1)
    refused = run(home, "subject", "photos", "add", "jiwoo", str(photo), "--org", "byeol", code=1).output
    said = " ".join(refused.split())
    assert f"{photo}: the face is mina's, a subject of another rights holder enrolled by organisation 'haneul'" in said
    assert "similarity 1.00" in said and "<= 0.38" in said
    listed = run(home, "subject", "list").output
    assert [line.split("│")[-2].strip() for line in listed.splitlines() if "jiwoo" in line] == ["0"]
