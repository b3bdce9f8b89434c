"""``likeness render``: help text, option validation, consent refusal mapped to exit code 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from likeness.cli import app


def test_render_help_documents_every_option() -> None:
    result = CliRunner().invoke(app, ["render", "--help"])
    assert result.exit_code == 0
    for option in (
        "--use",
        "--out",
        "--org",
        "--colour",
        "--blend",
        "--smoothing",
        "--mouth",
        "--eyes",
        "--thin-rims",
        "--unlabelled",
        "--precision",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    "option, message",
    [
        (["--colour", "sepia"], "--colour must be one of"),
        (["--precision", "fp16"], "--precision must be one of auto, float, int8"),
    ],
)
def test_render_rejects_unknown_option_values(tmp_path, option, message) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path),
            "render",
            str(tmp_path),
            str(tmp_path),
            "--use",
            "music_video",
            "--out",
            str(tmp_path / "o.mp4"),
            "--org",
            "studio",
            *option,
        ],
    )
    assert result.exit_code == 1
    assert message in result.output


def _render_card_only_model(consent_world, tmp_path, *org: str):
    """``likeness render`` of a model folder holding only a card for mina on jun, onto a missing target."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_card.json").write_text(json.dumps({"subject_slug": "mina", "performer_slug": "jun"}))
    home = consent_world.workspace.settings.home
    return CliRunner().invoke(
        app,
        [
            "--home",
            str(home),
            "render",
            str(model),
            str(tmp_path / "t.mp4"),
            "--use",
            "music_video",
            "--out",
            str(tmp_path / "o.mp4"),
            *org,
        ],
    )


@pytest.mark.parametrize(
    "flags, name, value",
    [
        ([], "eyes", False),
        (["--eyes"], "eyes", True),
        (["--no-eyes"], "eyes", False),
        ([], "thin_rims", False),
        (["--thin-rims"], "thin_rims", True),
    ],
)
def test_render_mask_flags_reach_the_render_options(consent_world, tmp_path, monkeypatch, flags, name, value) -> None:
    import likeness.render
    from likeness.errors import ConsentError

    seen = {}

    def stop_at_render(workspace, model, target, out, *, options, **_):
        seen["options"] = options
        raise ConsentError("no_grant", "stopped by the test once the options were built")

    monkeypatch.setattr(likeness.render, "render_media", stop_at_render)
    result = _render_card_only_model(consent_world, tmp_path, *flags)
    assert result.exit_code == 1 and "stopped by the test" in result.output
    assert getattr(seen["options"].refine, name) is value


def test_render_refuses_thin_rims_without_the_occlusion_mask(consent_world, tmp_path) -> None:
    result = _render_card_only_model(consent_world, tmp_path, "--no-occlusion", "--thin-rims")
    assert result.exit_code == 1, result.output
    # The CLI names its own flags; the API's message names the fields (thin_rims, occlusion).
    assert "error: --thin-rims adds to the occlusion mask: it needs --occlusion on" in result.output


def test_render_refusal_is_a_clear_message(consent_world, tmp_path) -> None:
    result = _render_card_only_model(consent_world, tmp_path, "--org", "elsewhere")
    assert result.exit_code == 1
    assert "refused" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_render_takes_the_workspace_s_only_organisation_without_org(consent_world, tmp_path) -> None:
    result = _render_card_only_model(consent_world, tmp_path)
    assert result.exit_code == 1
    # Got past the org: the unsigned card (never believed, whatever it names) is what stops it.
    assert "pick one with --org" not in result.output and "no organisation yet" not in result.output
    assert "artefact_unsigned" in result.output and "model_card.json" in result.output
    assert "Traceback" not in result.output


def test_render_use_help_lists_the_final_media_uses_from_the_consent_vocabulary() -> None:
    from likeness.consent import FINAL_MEDIA_USES

    result = CliRunner().invoke(app, ["render", "--help"], terminal_width=400)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # Rich's box, wrapped at any width
    for use in FINAL_MEDIA_USES:
        assert use in text
    assert "training' authorizes extraction and training only" in text


def test_ctrl_c_during_a_render_says_what_happened_and_how_to_resume(consent_world, tmp_path, monkeypatch) -> None:
    # A new user's Ctrl-C used to end the render with exit status 130 and not a word.
    import likeness.render

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(likeness.render, "render_media", interrupted)
    result = _render_card_only_model(consent_world, tmp_path)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "rerun the same command to resume" in result.output
    assert f"no output written to {tmp_path / 'o.mp4'}" in result.output


def test_render_says_which_sound_tracks_it_left_out(consent_world, tmp_path, monkeypatch) -> None:
    # Tracks past the most kept were dropped without a word.
    import likeness.render
    from likeness.render.report import RenderReport

    def rendered(*_, **__):
        report = RenderReport(None, "t.mp4", "o.mp4", "video", "model", "mina", "jun", "music_video", "studio", {})
        report.audio_note = "kept 16 of 18 sound tracks (at most 16)"
        return report

    monkeypatch.setattr(likeness.render, "render_media", rendered)
    result = _render_card_only_model(consent_world, tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: kept 16 of 18 sound tracks (at most 16)" in result.output


@pytest.mark.parametrize(
    "deinterlacer, line",
    [
        ("bwdif", "interlacing interlaced footage deinterlaced (bwdif, top field first) to 25p"),
        (None, "warning: interlaced footage (top field first) was rendered as whole frames"),
    ],
)
def test_render_says_how_it_made_interlaced_footage_progressive(
    consent_world, tmp_path, monkeypatch, deinterlacer, line
) -> None:
    # An interlaced take was a `warning:` telling the user to deinterlace it first; the render
    # now does it, and the line says what was done. Without a deinterlacer it stays a warning.
    import likeness.render
    from likeness.render.report import RenderReport, interlaced_note

    def rendered(*_, **__):
        report = RenderReport(None, "t.mp4", "o.mp4", "video", "model", "mina", "jun", "music_video", "studio", {})
        report.deinterlaced = deinterlacer
        report.interlaced_note = interlaced_note("tt", deinterlacer, 25.0)
        return report

    monkeypatch.setattr(likeness.render, "render_media", rendered)
    result = _render_card_only_model(consent_world, tmp_path)
    assert result.exit_code == 0, result.output
    assert line in result.output
    assert ("warning:" in result.output) == (deinterlacer is None)
