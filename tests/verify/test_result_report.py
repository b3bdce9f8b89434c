"""The stable JSON shape and the evidence pack (JSON + self-contained HTML + zip)."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest

from likeness.verify.report import (
    EvidenceMedia,
    EvidencePicture,
    crop_box,
    evidence_stem,
    fit_within,
    render_html,
    write_evidence,
    write_index,
)
from likeness.verify.result import (
    SCHEMA_VERSION,
    ArtistMatch,
    C2paEvidence,
    FaceEvidence,
    FacesEvidence,
    GrantEvidence,
    RenderRecord,
    VerificationResult,
    WatermarkEvidence,
    declares_ai_generation,
)
from likeness.verify.verdict import decide

REQUIRED_KEYS = {"path", "sha256", "verdict", "c2pa", "watermark", "faces", "errors"}


def sample_result(path: str = "/tmp/clip <script>.png", sha: str = "ab" * 32) -> VerificationResult:
    grant = GrantEvidence(grant_id="g1", state="active", subject_id="s1", subject_slug="mina", use="music_video")
    render = RenderRecord(
        job_id="job1",
        grant_id="g1",
        subject_id="s1",
        org_id="o1",
        use="music_video",
        output_sha256=sha,
        output_name="out.png",
        ledger_seq=4,
        ledger_event_id="e4",
        recorded_at="2025-01-01T00:00:00Z",
    )
    c2pa = C2paEvidence(
        present=True,
        state="Trusted",
        signer="Studio Haneul",
        actions=("c2pa.created",),
        digital_source_type="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        declares_ai=True,
        consent_assertion={"grant_id": "g1"},
        consent=grant,
    )
    mark = WatermarkEvidence(
        algorithm="tiled-ss",
        found=True,
        payload="0123456789abcdef",
        bit_confidence=0.93,
        frame_timestamps_s=(0.0,),
        render=render,
        grant=grant,
    )
    match = ArtistMatch(subject_id="s1", slug="mina", name="Mina <b>", distance=0.31234, similarity=0.6876)
    faces = FacesEvidence(
        frames_analysed=1,
        frame_timestamps_s=(0.0,),
        gallery_subjects=2,
        gallery_references=2,
        threshold=0.5,
        faces=(
            FaceEvidence(
                face_id=0,
                bbox=(10, 20, 110, 140),
                detection_score=0.97,
                frames=1,
                timestamps_s=(0.0,),
                best_timestamp_s=0.0,
                match=match,
                nearest=match,
            ),
        ),
    )
    return VerificationResult(
        path=path,
        sha256=sha,
        size_bytes=1234,
        media_type="image",
        verdict=decide(c2pa=c2pa, watermark=mark, faces=faces),
        c2pa=c2pa,
        watermark=mark,
        faces=faces,
        duration_s=0.123456,
    )


def test_json_has_documented_keys_and_round_trips():
    result = sample_result()
    obj = json.loads(result.to_json())
    assert set(obj) >= REQUIRED_KEYS
    assert obj["schema"] == SCHEMA_VERSION
    assert obj["verdict"] == "authorized-synthetic" and obj["verdict_rule"] == "R2"
    assert obj["manipulation"]["status"] == "not analysed" and "score" not in obj["manipulation"]
    assert obj["watermark"]["ledger_entry"]["job_id"] == "job1"
    assert obj["faces"]["faces"][0]["match"]["similarity"] == 0.6876
    assert obj["faces"]["detected"] == 1
    again = VerificationResult.from_dict(obj)
    assert again.to_dict() == obj


def test_from_dict_rejects_other_schema_versions():
    obj = sample_result().to_dict()
    obj["schema"] = "likeness.verify/0"
    with pytest.raises(ValueError, match="schema"):
        VerificationResult.from_dict(obj)


def test_failed_result_is_error_verdict_with_reason():
    result = VerificationResult.failed("x.jpg", sha256=None, size_bytes=0, stage="read", reason="empty file (0 bytes)")
    obj = result.to_dict()
    assert obj["verdict"] == "error" and not result.readable
    assert obj["errors"] == [{"stage": "read", "reason": "empty file (0 bytes)"}]
    assert obj["c2pa"] is None and obj["watermark"] is None and obj["faces"] is None


def test_ai_source_type_detection():
    assert declares_ai_generation("http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia")
    assert declares_ai_generation("trainedAlgorithmicMedia")
    assert not declares_ai_generation("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")
    assert not declares_ai_generation(None)


def test_referenced_grants_lists_watermark_and_manifest_grants():
    assert [g.grant_id for g in sample_result().referenced_grants()] == ["g1", "g1"]


def test_html_is_self_contained_and_escaped():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    media = EvidenceMedia(
        thumbnail=frame,
        frames=[EvidencePicture(frame, "0.00 s")],
        face_crops={0: frame[:100, :100]},
        references={"s1": frame[100:, 100:]},
    )
    html = render_html(sample_result(), media)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Mina &lt;b&gt;" in html
    assert html.count("data:image/jpeg;base64,") == 4
    assert 'src="http' not in html and "href=" not in html
    assert "authorized-synthetic" in html and "job1" in html and "not analysed" in html


def test_a_found_file_s_name_and_its_manifest_s_signer_are_shown_as_written():
    """Whoever made a found file names it and signs its manifest: a right-to-left override in
    either read otherwise in the evidence page ('takedown\u202egnp.mp4' as 'takedown4pm.png')."""
    from dataclasses import replace

    result = sample_result(path="/found/takedown\u202egnp.mp4")
    result = replace(result, c2pa=replace(result.c2pa, signer="Studio \u202elueanaH"))
    html = render_html(result)
    assert "\u202e" not in html
    assert "takedown\\u202egnp.mp4" in html and "Studio \\u202elueanaH" in html


def test_evidence_page_embeds_nanumgothic_for_its_hangul():
    """A legal team's or a police officer's browser may have no CJK font: the page carries the
    NanumGothic cut to the characters it shows (a Korean file name here)."""
    import base64
    import io
    import re

    from fontTools.ttLib import TTFont

    page = render_html(sample_result(path="/tmp/직캠 원본.mp4"))
    match = re.search(r"@font-face\{font-family:'NanumGothic';src:url\(data:font/woff;base64,([^)]+)\)", page)
    assert match and 'font-family: "NanumGothic", sans-serif' in page
    cmap = TTFont(io.BytesIO(base64.b64decode(match.group(1)))).getBestCmap()
    hangul = {ch for ch in re.sub(r"<[^>]+>", "", page) if "\uac00" <= ch <= "\ud7a3"}
    assert {"직", "캠", "원", "본"} <= hangul
    assert all(ord(ch) in cmap for ch in hangul)
    assert len(match.group(1)) < 40_000  # a cut, not the 4.7 MB face


def test_write_evidence_writes_json_html_and_zip_with_original(tmp_path):
    original = tmp_path / "found.png"
    original.write_bytes(b"\x89PNG fake bytes for the pack")
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    result = sample_result(path=str(original), sha=sha)
    paths = write_evidence(result, EvidenceMedia(), tmp_path / "report")
    assert json.loads(paths.json.read_text())["sha256"] == sha
    assert paths.html.read_text().startswith("<!DOCTYPE html>")
    with zipfile.ZipFile(paths.zip) as bundle:
        names = set(bundle.namelist())
        assert names == {paths.json.name, paths.html.name, "original/found.png", "SHA256SUMS"}
        sums = dict(line.split("  ")[::-1] for line in bundle.read("SHA256SUMS").decode().splitlines())
        for name in names - {"SHA256SUMS"}:
            assert sums[name] == hashlib.sha256(bundle.read(name)).hexdigest()
    assert not list((tmp_path / "report").glob(".*"))  # no temporary files left


def test_zip_leaves_out_an_original_that_changed_or_is_too_big(tmp_path):
    original = tmp_path / "found.png"
    original.write_bytes(b"now different")
    paths = write_evidence(sample_result(path=str(original)), None, tmp_path / "r1")
    with zipfile.ZipFile(paths.zip) as bundle:
        assert "original/found.png" not in bundle.namelist()
        assert "changed since it was verified" in bundle.read("SHA256SUMS").decode()
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    paths = write_evidence(sample_result(path=str(original), sha=sha), None, tmp_path / "r2", max_original_bytes=4)
    with zipfile.ZipFile(paths.zip) as bundle:
        assert "original/found.png" not in bundle.namelist()


def test_index_lists_every_result(tmp_path):
    results = [
        sample_result(sha="aa" * 32),
        VerificationResult.failed("bad.jpg", sha256=None, size_bytes=0, stage="read", reason="empty"),
    ]
    index = json.loads(write_index(results, tmp_path).read_text())
    assert [r["verdict"] for r in index["results"]] == ["authorized-synthetic", "error"]
    assert index["results"][1]["evidence_stem"] == "bad.jpg-unhashed"


def test_evidence_stem_is_safe():
    stem = evidence_stem(sample_result(path="/x/../we ird/클립 name?.png"))
    assert "/" not in stem and " " not in stem and stem.endswith("-" + "ab" * 6)


def test_fit_within_and_crop_box():
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    assert fit_within(rgb, max_side=480).shape == (270, 480, 3)
    assert fit_within(rgb[:100, :100], max_side=480).shape == (100, 100, 3)
    assert crop_box(rgb, (100, 100, 200, 300)).shape == (300, 150, 3)
    assert crop_box(rgb, (-50, -50, 20, 20)).shape[:2] == (38, 38)  # 20 + 17.5 margin, rounded up
    with pytest.raises(Exception, match="outside"):
        crop_box(rgb, (5000, 5000, 5100, 5100))
    with pytest.raises(Exception, match="uint8 RGB"):
        fit_within(rgb[..., 0], max_side=10)


def test_an_evidence_pack_and_the_index_are_written_whole_and_the_owner_s_alone(tmp_path, monkeypatch):
    """Each was renamed into place unsynced; now fsynced under a temporary, placed, and the folder
    fsynced, 0600 as before."""
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    log = watch_disk(monkeypatch)
    paths = write_evidence(sample_result(), None, tmp_path, include_original=False)
    written = [paths.json, paths.html, paths.zip, write_index([sample_result()], tmp_path)]
    for path in written:
        assert_written_whole(log, path)
        assert path.stat().st_mode & 0o777 == 0o600
    assert hidden_files(tmp_path) == []
