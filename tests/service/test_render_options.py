"""``likeness render --mouth/--eyes/--thin-rims`` through the service (issue #26): the render API
and the console's /render form take ``mouth``, ``eyes`` and ``thin_rims``, the job carries them as booleans and its
worker hands them to ``render_media`` as ``RefineOptions``; a bad value is a 422 naming the
field, and a job whose parameters someone edited in the database fails with the reason.

``render_media`` is replaced by a recorder here: the consent and model checks it makes are the
library's (tests/render), and the whole path with a really trained model is
tests/service/test_studio_jobs.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
from sqlalchemy import text

from likeness.media.synthetic import grace_hopper
from likeness.render import RefineOptions, RenderOptions
from likeness.service.job_kinds import uploads_root
from likeness.service.roles import Role
from likeness.service.worker import Worker


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "stage.png"
    cv2.imwrite(str(path), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def model_id(service_world, tmp_path) -> str:
    """A ``model.exported`` event of the studio's (the render form lists it; the recorder
    stands in for the model itself)."""
    org = service_world.workspace.registry.get_org("studio")
    event = service_world.workspace.ledger.append(
        "model.exported",
        {
            "org_id": org.id,
            "subject_slug": "mina",
            "performer_slug": "jun",
            "architecture": "df",
            "resolution": 64,
            "model_dir": str(tmp_path / "model"),
        },
    )
    return event.event_id


@pytest.fixture
def rendered(monkeypatch) -> list[RenderOptions]:
    """The options each render_media call got; each call "renders" the target unchanged."""
    calls: list[RenderOptions] = []

    def record(workspace, model_dir, target, out, *, use, org, options, progress=None):
        calls.append(options)
        out.write_bytes(target.read_bytes())
        return SimpleNamespace(
            job_id="r1",
            subject_slug="mina",
            performer_slug="jun",
            use=use,
            frames_rendered=1,
            frames_total=1,
            resumed_from_frame=0,
            faces={"swapped": 1},
            outputs=[{"path": str(out), "sha256": "0" * 64, "job_id": "r1", "watermark_payload": "ab"}],
            report_json=None,
            report_html=None,
        )

    monkeypatch.setattr("likeness.render.render_media", record)
    return calls


def _render(client, target: Path, **fields):
    with target.open("rb") as handle:
        return client.post("/api/v1/renders", data=fields, files={"file": (target.name, handle, "image/png")})


def _run(world, job_id: str) -> dict:
    ran = Worker(world.workspace).run_one()
    assert ran is not None and ran.id == job_id
    return world.token_client(Role.VIEWER).get(f"/api/v1/jobs/{job_id}").json()


@pytest.mark.parametrize(
    ("fields", "mouth", "eyes", "thin_rims"),
    [
        ({}, False, False, False),
        ({"mouth": "true"}, True, False, False),
        ({"eyes": "1"}, False, True, False),
        ({"mouth": "on", "eyes": "true"}, True, True, False),
        ({"mouth": "false", "eyes": "0", "thin_rims": "false"}, False, False, False),
        ({"mouth": ""}, False, False, False),
        ({"thin_rims": "on"}, False, False, True),
    ],
)
def test_render_fields_reach_render_media(service_world, target, model_id, rendered, fields, mouth, eyes, thin_rims):
    studio = service_world.token_client(Role.STUDIO)
    queued = _render(studio, target, model=model_id, use="music_video", **fields)
    assert queued.status_code == 202, queued.text
    params = queued.json()["params"]
    assert (params["mouth"], params["eyes"], params["thin_rims"]) == (mouth, eyes, thin_rims)
    job = _run(service_world, queued.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    (options,) = rendered
    # only the refinements differ from the defaults ``likeness render`` uses
    assert options.refine == RefineOptions(mouth=mouth, eyes=eyes, thin_rims=thin_rims)
    default = RenderOptions(checkpoint_every=service_world.workspace.settings.render_checkpoint_frames)
    assert {**vars(options), "refine": None} == {**vars(default), "refine": None}
    assert job["result"]["options"] == {"mouth": mouth, "eyes": eyes, "thin_rims": thin_rims}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mouth": "yes"}, "mouth"),
        ({"eyes": "2"}, "eyes"),
        ({"mouth": "true", "eyes": "off"}, "eyes"),
        ({"eyes": "true" * 100}, "eyes"),
        ({"mouth": "True"}, "mouth"),  # the exact words only: the schema's enum says which
        ({"eyes": " 1"}, "eyes"),
        ({"thin_rims": "yes"}, "thin_rims"),
    ],
)
def test_a_bad_render_flag_is_a_422_naming_the_field(service_world, target, model_id, rendered, fields, named):
    studio = service_world.token_client(Role.STUDIO)
    refused = _render(studio, target, model=model_id, use="music_video", **fields)
    assert refused.status_code == 422
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == 422 and problem["type"].endswith(":invalid-request")
    assert problem["detail"].startswith(f"{named} ") and "expected true, on or 1, or false or 0" in problem["detail"]
    assert service_world.workspace.ledger.find("render.completed") == []
    assert Worker(service_world.workspace).run_one() is None  # nothing was queued
    assert not any(path.is_file() for path in uploads_root(service_world.workspace).rglob("*"))


def test_a_bad_flag_sent_after_the_file_is_refused_and_the_upload_removed(service_world, target, model_id):
    """The multipart order is the client's: a flag after the file is read once the file is in,
    and refusing it then leaves no upload behind."""
    studio = service_world.token_client(Role.STUDIO)
    body = b"".join(
        [
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + model_id.encode() + b"\r\n",
            b'--b\r\nContent-Disposition: form-data; name="use"\r\n\r\nmusic_video\r\n',
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="stage.png"\r\n\r\n',
            target.read_bytes(),
            b'\r\n--b\r\nContent-Disposition: form-data; name="mouth"\r\n\r\nmaybe\r\n--b--\r\n',
        ]
    )
    refused = studio.post("/api/v1/renders", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("mouth 'maybe'")
    assert Worker(service_world.workspace).run_one() is None
    assert not any(path.is_file() for path in uploads_root(service_world.workspace).rglob("*"))


@pytest.mark.parametrize("edited", ['"true"', "1", "null", '{"on": true}'])
def test_a_render_param_edited_in_the_database_fails_the_job(service_world, target, model_id, rendered, edited):
    studio = service_world.token_client(Role.STUDIO)
    queued = _render(studio, target, model=model_id, use="music_video", mouth="on")
    job_id = queued.json()["id"]
    with service_world.workspace.engine.begin() as connection:
        params = json.loads(connection.execute(text("SELECT params FROM jobs WHERE id = :i"), {"i": job_id}).scalar())
        params["eyes"] = json.loads(edited)
        connection.execute(text("UPDATE jobs SET params = :p WHERE id = :i"), {"p": json.dumps(params), "i": job_id})
    job = _run(service_world, job_id)
    assert job["state"] == "failed"
    assert "render job parameter eyes" in job["error"] and "expected true or false" in job["error"]
    assert rendered == []  # refused before any render


def test_the_console_form_sends_the_check_boxes(service_world, target, model_id, rendered):
    client = service_world.client()
    csrf = service_world.login(client, Role.STUDIO.value)
    form = client.get("/render", headers={"accept-language": "ko"})
    assert form.status_code == 200
    assert all(f'name="{name}"' in form.text for name in ("mouth", "eyes", "thin_rims")) and "벌린 입" in form.text
    assert "checked" not in form.text.split("data-render-options", 1)[1].split("</fieldset>", 1)[0]
    with target.open("rb") as handle:
        sent = client.post(
            "/render",
            data={"csrf_token": csrf, "model": model_id, "use": "music_video", "eyes": "on", "thin_rims": "on"},
            files={"file": (target.name, handle, "image/png")},
            follow_redirects=False,
        )
    assert sent.status_code == 303, sent.text
    job_id = sent.headers["location"].rsplit("/", 1)[1]
    job = _run(service_world, job_id)
    assert job["state"] == "succeeded", job["error"]
    assert rendered[0].refine == RefineOptions(mouth=False, eyes=True, thin_rims=True)
    page = client.get(f"/jobs/{job_id}", headers={"accept-language": "ko"})
    kept = page.text.split("data-render-options>", 1)[1].split("</dd>", 1)[0]
    assert kept == "눈 깜빡임 · 얇은 안경테"
    english = client.get(f"/jobs/{job_id}", headers={"accept-language": "en"})
    assert english.text.split("data-render-options>", 1)[1].split("</dd>", 1)[0] == "blinks · thin spectacle rims"


def test_the_openapi_body_documents_the_render_flags(service_world):
    document = service_world.client().get("/api/v1/openapi.json").json()
    body = document["paths"]["/api/v1/renders"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    for name in ("mouth", "eyes", "thin_rims"):
        assert body["properties"][name]["enum"] == ["true", "on", "1", "false", "0", ""]
        assert f"--{name.replace('_', '-')}" in body["properties"][name]["description"]
        assert name not in body["required"]


@pytest.mark.parametrize("fields", [{"thin-rims": "true"}, {"Eyes": "on"}, {"thin_rims": "true", "mouht": "1"}])
def test_a_misspelt_render_option_is_a_422_not_a_render_without_it(service_world, target, model_id, rendered, fields):
    # Trial 7: `thin-rims` (the command line's spelling) or `Eyes` were ignored: the job was
    # queued and rendered without the option, and succeeded.
    studio = service_world.token_client(Role.STUDIO)
    refused = _render(studio, target, model=model_id, use="music_video", **fields)
    assert refused.status_code == 422, refused.text
    misspelt = next(name for name in fields if name not in ("mouth", "eyes", "thin_rims"))
    assert refused.json()["detail"].startswith(f"{misspelt!r}: not a field of this form")
    assert "thin_rims" in refused.json()["detail"]
    assert Worker(service_world.workspace).run_one() is None  # nothing was queued
    assert not any(path.is_file() for path in uploads_root(service_world.workspace).rglob("*"))
