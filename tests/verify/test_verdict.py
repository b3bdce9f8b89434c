"""The decision table, row by row, and every precedence conflict between rows."""

from __future__ import annotations

import itertools

import pytest

from likeness.verify import verdict as v
from likeness.verify.result import (
    ArtistMatch,
    C2paEvidence,
    FaceEvidence,
    FacesEvidence,
    GrantEvidence,
    ManipulationEvidence,
    RenderRecord,
    TrackManipulation,
    WatermarkEvidence,
)

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def grant(state: str = "active", grant_id: str = "g1") -> GrantEvidence:
    return GrantEvidence(grant_id=grant_id, state=state, subject_id="s-mina", subject_slug="mina")


def mark(state: str | None = "active", *, grant_id: str = "g1", traced: bool = True) -> WatermarkEvidence:
    if not traced:
        return WatermarkEvidence(algorithm="wm", found=True, payload="00" * 8, bit_confidence=0.9)
    render = RenderRecord(
        job_id="job1",
        grant_id=grant_id,
        subject_id="s-mina",
        org_id="o1",
        use="music_video",
        output_sha256="ab" * 32,
        output_name="out.png",
        ledger_seq=7,
        ledger_event_id="e7",
        recorded_at="2025-01-01T00:00:00Z",
    )
    return WatermarkEvidence(
        algorithm="wm",
        found=True,
        payload="0123456789abcdef",
        bit_confidence=0.97,
        render=render,
        grant=None if state is None else grant(state, grant_id),
    )


NO_MARK = WatermarkEvidence.no_mark("wm", bit_confidence=0.5)
NO_C2PA = C2paEvidence.absent()


def manifest(state: str, *, ai: bool = True, consent: GrantEvidence | None = None, reasons=()) -> C2paEvidence:
    return C2paEvidence(
        present=True,
        state=state,
        reasons=tuple(reasons),
        signer="Other Studio",
        actions=("c2pa.created",),
        digital_source_type=AI if ai else "digitalCapture",
        declares_ai=ai,
        consent=consent,
    )


def faces(*matches: str | None) -> FacesEvidence:
    entries = []
    for i, slug in enumerate(matches):
        m = (
            None
            if slug is None
            else ArtistMatch(subject_id=f"s-{slug}", slug=slug, name=slug, distance=0.3, similarity=0.7)
        )
        nearest = m or ArtistMatch(subject_id="s-x", slug="x", name="x", distance=0.8, similarity=0.2)
        entries.append(
            FaceEvidence(
                face_id=i,
                bbox=(0, 0, 10, 10),
                detection_score=0.9,
                frames=1,
                timestamps_s=(0.0,),
                best_timestamp_s=0.0,
                match=m,
                nearest=nearest,
            )
        )
    return FacesEvidence(
        frames_analysed=1,
        frame_timestamps_s=(0.0,),
        gallery_subjects=2,
        gallery_references=3,
        threshold=0.5,
        faces=tuple(entries),
    )


def scored(score: float, face_id: int = 0) -> ManipulationEvidence:
    """Face ``face_id`` scored by a registered detector whose threshold is 1.0."""
    track = TrackManipulation(
        face_id=face_id,
        model="agency.mina",
        sha256="ab" * 32,
        ledger_seq=7,
        threshold_logit=1.0,
        threshold_probability=0.73,
        target_false_positive_rate=0.05,
        score=score,
        calibrated_probability=0.9 if score >= 1 else 0.5,
        suspected=score >= 1.0,
        face_scores=(score,),
        face_timestamps_s=(0.0,),
    )
    return ManipulationEvidence(status="analysed", tracks=(track,))


SUSPECTED = scored(2.0)


def decide(c2pa=NO_C2PA, watermark=NO_MARK, found=None, read_error=None):
    return v.decide(c2pa=c2pa, watermark=watermark, faces=faces() if found is None else found, read_error=read_error)


# --- one test per row --------------------------------------------------------------------------


def test_r0_read_error_is_error_with_reason():
    out = decide(c2pa=manifest("Invalid"), watermark=mark(), read_error="read: truncated JPEG")
    assert (out.code, out.rule) == ("error", "R0")
    assert out.evidence == ("read: truncated JPEG",)


def test_r1_invalid_manifest_is_tampered_and_names_the_reason():
    out = decide(c2pa=manifest("Invalid", reasons=["assertion.dataHash.mismatch"]))
    assert (out.code, out.rule) == ("tampered", "R1")
    assert "assertion.dataHash.mismatch" in out.evidence[0]


def test_r2_our_watermark_with_active_grant_is_authorized():
    out = decide(watermark=mark("active"), found=faces("mina"))
    assert (out.code, out.rule) == ("authorized-synthetic", "R2")
    assert any("job1" in s and "g1" in s for s in out.evidence)


def test_r2_trusted_manifest_with_our_active_consent_is_authorized_without_watermark():
    out = decide(c2pa=manifest("Trusted", consent=grant("active")), watermark=NO_MARK)
    assert out.code == "authorized-synthetic"


@pytest.mark.parametrize("state", ["revoked", "expired", "not_yet_valid", "altered", "unknown"])
def test_r3_our_watermark_with_grant_not_in_force(state):
    out = decide(watermark=mark(state))
    assert (out.code, out.rule) == ("synthetic-consent-revoked", "R3")
    assert any(state in s for s in out.evidence)


def test_r3_traced_render_without_grant_evidence_is_not_authorized():
    assert decide(watermark=mark(None)).code == "synthetic-consent-revoked"


def test_r3_trusted_manifest_with_revoked_consent():
    assert decide(c2pa=manifest("Trusted", consent=grant("revoked"))).code == "synthetic-consent-revoked"


def test_r4_valid_ai_manifest_from_someone_else():
    out = decide(c2pa=manifest("Valid"), found=faces("mina"))
    assert (out.code, out.rule) == ("synthetic-other-issuer", "R4")
    assert "Other Studio" in out.evidence[0]


def test_r4_trusted_ai_manifest_from_someone_else():
    assert decide(c2pa=manifest("Trusted")).code == "synthetic-other-issuer"


def test_r5_no_face():
    out = decide(found=faces())
    assert (out.code, out.rule) == ("no-face", "R5")


def test_r5_face_stage_missing_counts_as_no_face():
    assert v.decide(c2pa=NO_C2PA, watermark=NO_MARK, faces=None).code == "no-face"


def test_r6_enrolled_artist_without_provenance():
    out = decide(found=faces(None, "mina"))
    assert (out.code, out.rule) == ("enrolled-artist-unlabelled", "R6")
    assert "mina" in out.evidence[0] and "face 1" in out.evidence[0]


def test_r5a_enrolled_artist_over_the_threshold_of_a_registered_detector():
    out = v.decide(c2pa=NO_C2PA, watermark=NO_MARK, faces=faces("mina"), manipulation=SUSPECTED)
    assert (out.code, out.rule) == ("enrolled-artist-suspected-manipulation", "R5a")
    assert "face 0 (mina, similarity 0.70): detector agency.mina scores 2.00" in out.evidence[0]


def test_r5b_a_face_over_the_threshold_that_is_not_an_enrolled_artist():
    out = v.decide(c2pa=NO_C2PA, watermark=NO_MARK, faces=faces(None), manipulation=SUSPECTED)
    assert (out.code, out.rule) == ("suspected-manipulation", "R5b")


def test_a_score_under_the_threshold_is_evidence_not_a_verdict():
    out = v.decide(c2pa=NO_C2PA, watermark=NO_MARK, faces=faces("mina"), manipulation=scored(0.5))
    assert out.code == "enrolled-artist-unlabelled"
    assert "face 0: detector agency.mina scores 0.50, under its threshold 1.00" in out.evidence


@pytest.mark.parametrize("state", ["active", "revoked"])
def test_our_watermark_still_decides_over_a_suspected_score(state):
    out = v.decide(c2pa=NO_C2PA, watermark=mark(state), faces=faces("mina"), manipulation=SUSPECTED)
    assert out.code == ("authorized-synthetic" if state == "active" else "synthetic-consent-revoked")


def test_another_issuers_ai_manifest_still_decides_over_a_suspected_score():
    out = v.decide(c2pa=manifest("Valid"), watermark=NO_MARK, faces=faces("mina"), manipulation=SUSPECTED)
    assert out.code == "synthetic-other-issuer"


def test_r7_faces_but_no_enrolled_artist():
    out = decide(found=faces(None, None))
    assert (out.code, out.rule) == ("no-enrolled-artist", "R7")


# --- precedence --------------------------------------------------------------------------------


def test_invalid_manifest_beats_our_active_watermark_and_keeps_the_trace_as_evidence():
    out = decide(c2pa=manifest("Invalid", consent=grant("active")), watermark=mark("active"), found=faces("mina"))
    assert out.code == "tampered"
    assert any("job1" in s for s in out.evidence)


def test_our_watermark_beats_another_issuers_valid_ai_manifest():
    # A platform re-signing our render must not hide who made it and under which consent.
    out = decide(c2pa=manifest("Valid"), watermark=mark("active"))
    assert out.code == "authorized-synthetic"
    assert any("re-signed" in s for s in out.evidence)


def test_our_revoked_watermark_beats_another_issuers_manifest():
    assert decide(c2pa=manifest("Trusted"), watermark=mark("revoked")).code == "synthetic-consent-revoked"


def test_watermark_and_manifest_both_ours_need_both_grants_active():
    out = decide(c2pa=manifest("Trusted", consent=grant("revoked", "g2")), watermark=mark("active", grant_id="g1"))
    assert out.code == "synthetic-consent-revoked"
    assert any("different grants" in s for s in out.evidence)
    both_active = decide(c2pa=manifest("Trusted", consent=grant("active", "g2")), watermark=mark("active"))
    assert both_active.code == "authorized-synthetic"


def test_untrusted_manifest_claiming_our_grant_is_not_ours():
    # Anyone can sign a manifest naming one of our grant ids; only a trusted chain counts.
    out = decide(c2pa=manifest("Valid", consent=grant("active")), found=faces("mina"))
    assert out.code == "synthetic-other-issuer"
    assert any("not signed by a trusted certificate" in s for s in out.evidence)


def test_trusted_manifest_naming_a_grant_unknown_here_is_another_issuer():
    out = decide(c2pa=manifest("Trusted", consent=grant("unknown")))
    assert out.code == "synthetic-other-issuer"


def test_watermark_payload_not_on_ledger_falls_through_to_faces():
    out = decide(watermark=mark(traced=False), found=faces("mina"))
    assert out.code == "enrolled-artist-unlabelled"
    assert any("not on this workspace's ledger" in s for s in out.evidence)


def test_valid_manifest_without_ai_declaration_falls_through_to_faces():
    assert decide(c2pa=manifest("Valid", ai=False), found=faces("mina")).code == "enrolled-artist-unlabelled"
    assert decide(c2pa=manifest("Trusted", ai=False), found=faces()).code == "no-face"


def test_provenance_outranks_missing_faces():
    assert decide(watermark=mark("active"), found=faces()).code == "authorized-synthetic"
    assert decide(c2pa=manifest("Valid"), found=faces()).code == "synthetic-other-issuer"


def test_unreadable_stages_fall_back_to_faces_and_say_so():
    out = v.decide(c2pa=None, watermark=None, faces=faces(None))
    assert out.code == "no-enrolled-artist"
    assert "C2PA could not be read" in out.evidence and "watermark could not be read" in out.evidence


def test_authorized_render_showing_another_subject_is_flagged():
    out = decide(watermark=mark("active"), found=faces("jun"))
    assert out.code == "authorized-synthetic"
    assert any("not the subject of the render's grant" in s for s in out.evidence)


def test_table_is_total_and_only_emits_known_verdicts():
    c2pas = [
        None,
        NO_C2PA,
        manifest("Invalid"),
        manifest("Valid"),
        manifest("Valid", ai=False),
        manifest("Trusted", consent=grant("active")),
        manifest("Trusted", consent=grant("revoked")),
        manifest("Trusted", consent=grant("unknown")),
    ]
    marks = [None, NO_MARK, mark("active"), mark("revoked"), mark(traced=False)]
    face_sets = [None, faces(), faces(None), faces("mina")]
    scores = [None, ManipulationEvidence.not_analysed("none registered"), scored(0.5), SUSPECTED]
    seen = set()
    for c2pa, watermark, found, manipulation in itertools.product(c2pas, marks, face_sets, scores):
        out = v.decide(c2pa=c2pa, watermark=watermark, faces=found, manipulation=manipulation)
        assert out.code in v.VERDICTS and out.summary == v.SUMMARIES[out.code] and out.evidence
        seen.add(out.code)
    assert seen == set(v.VERDICTS) - {"error"}
