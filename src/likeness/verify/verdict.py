"""The verdict decision table: a pure function over typed evidence.

Rows are tried top to bottom; the first that fires decides. ``docs/verify.md`` has the same table
with the reasoning behind each precedence choice, and ``tests/verify/test_verdict.py`` pins every
row and every precedence conflict.

====  =============================  =====================================================
rule  verdict                        fires when
====  =============================  =====================================================
R0    error                          the file could not be read (nothing else is trusted)
R1    tampered                       a C2PA manifest is present and its state is Invalid
                                     (a file that was never signed is damaged, not tampered:
                                     see ``manifest_store.holds_manifest_store``)
R2    authorized-synthetic           our provenance (watermark traced on the ledger, or a
                                     Trusted manifest with our consent assertion) and every
                                     grant it names is active today
R3    synthetic-consent-revoked      our provenance, but a grant it names is not active
                                     (revoked, expired, not yet valid, altered, unknown)
R4    synthetic-other-issuer         a Valid/Trusted manifest, not ours, declares AI generation
R5    no-face                        no face detected
R5a   enrolled-artist-suspected-     a face track that matches an enrolled artist scores over
      manipulation                   the threshold of the artist's registered detector (one
                                     that passed its measured gates: docs/detector.md)
R5b   suspected-manipulation         a face track scores over its registered detector's
                                     threshold, and it is not an enrolled artist (an enrolled
                                     performer's own detector)
R6    enrolled-artist-unlabelled     a detected face matches an enrolled subject
R7    no-enrolled-artist             faces, none of them an enrolled artist (enrolled performers
                                     are reported as known performers)
====  =============================  =====================================================

Example::

    >>> from likeness.verify.result import C2paEvidence
    >>> decide(c2pa=C2paEvidence(present=True, state="Invalid"), watermark=None, faces=None).code
    'tampered'
"""

from __future__ import annotations

from likeness.verify.result import (
    C2paEvidence,
    FacesEvidence,
    GrantEvidence,
    LabelEvidence,
    ManipulationEvidence,
    Verdict,
    WatermarkEvidence,
)

ERROR = "error"
TAMPERED = "tampered"
AUTHORIZED_SYNTHETIC = "authorized-synthetic"
SYNTHETIC_CONSENT_REVOKED = "synthetic-consent-revoked"
SYNTHETIC_OTHER_ISSUER = "synthetic-other-issuer"
NO_FACE = "no-face"
ENROLLED_ARTIST_SUSPECTED_MANIPULATION = "enrolled-artist-suspected-manipulation"
SUSPECTED_MANIPULATION = "suspected-manipulation"
ENROLLED_ARTIST_UNLABELLED = "enrolled-artist-unlabelled"
NO_ENROLLED_ARTIST = "no-enrolled-artist"

#: Every verdict code, in decision-table order.
VERDICTS = (
    ERROR,
    TAMPERED,
    AUTHORIZED_SYNTHETIC,
    SYNTHETIC_CONSENT_REVOKED,
    SYNTHETIC_OTHER_ISSUER,
    NO_FACE,
    ENROLLED_ARTIST_SUSPECTED_MANIPULATION,
    SUSPECTED_MANIPULATION,
    ENROLLED_ARTIST_UNLABELLED,
    NO_ENROLLED_ARTIST,
)

SUMMARIES = {
    ERROR: "The file could not be read; no verdict about its content.",
    TAMPERED: "Its C2PA manifest does not verify: the file or its manifest changed after signing.",
    AUTHORIZED_SYNTHETIC: "Synthetic media made by this workspace under a consent grant that is in force.",
    SYNTHETIC_CONSENT_REVOKED: "Synthetic media made by this workspace, but its consent grant is no longer in force.",
    SYNTHETIC_OTHER_ISSUER: "A valid C2PA manifest from another issuer declares AI generation.",
    NO_FACE: "No face found and no provenance that decides; nothing to match.",
    ENROLLED_ARTIST_SUSPECTED_MANIPULATION: "An enrolled artist appears, with no provenance, and the artist's own "
    "detector scores the face over its threshold: suspected manipulation, needs human review.",
    SUSPECTED_MANIPULATION: "No provenance, and a registered detector scores a face over its threshold: "
    "suspected manipulation, needs human review.",
    ENROLLED_ARTIST_UNLABELLED: "An enrolled artist appears and there is no provenance: needs human review.",
    NO_ENROLLED_ARTIST: "Faces found, none of them an enrolled artist; no provenance.",
}


def error_verdict(reason: str) -> Verdict:
    """Row R0: the per-file error verdict for a file that could not be read."""
    return Verdict(code=ERROR, rule="R0", summary=SUMMARIES[ERROR], evidence=(reason,))


def our_provenance(
    c2pa: C2paEvidence | None, watermark: WatermarkEvidence | None
) -> list[tuple[str, GrantEvidence | None, str]]:
    """The pieces of evidence that tie a file to a render of *this* workspace.

    Returns ``(source, grant, sentence)`` for the traced watermark and for a Trusted manifest
    whose consent assertion names a grant this registry knows. An untrusted (``Valid``) manifest
    never counts as ours: anyone can sign a manifest that *claims* one of our grant ids.
    """
    found: list[tuple[str, GrantEvidence | None, str]] = []
    if watermark is not None and watermark.traced:
        render = watermark.render
        assert render is not None
        grant = watermark.grant
        state = grant.state if grant is not None else "unknown"
        found.append(
            (
                "watermark",
                grant,
                f"watermark {watermark.payload} traced to {render.job_words} {render.job_id} "
                f"(ledger #{render.ledger_seq}) under grant {render.grant_id}, {state} today",
            )
        )
    if (
        c2pa is not None
        and c2pa.present
        and c2pa.state == "Trusted"
        and c2pa.consent is not None
        and c2pa.consent.state != "unknown"
    ):
        found.append(
            (
                "manifest",
                c2pa.consent,
                f"trusted C2PA manifest signed by {c2pa.signer or 'unknown signer'} names grant "
                f"{c2pa.consent.grant_id}, {c2pa.consent.state} today",
            )
        )
    return found


def decide(
    *,
    c2pa: C2paEvidence | None,
    watermark: WatermarkEvidence | None,
    faces: FacesEvidence | None,
    read_error: str | None = None,
    damage: str | None = None,
    visible_label: LabelEvidence | None = None,
    manipulation: ManipulationEvidence | None = None,
) -> Verdict:
    """Apply the decision table (module docstring) to the evidence of one file.

    ``c2pa``/``watermark``/``faces`` are ``None`` when that stage did not run (its error is in
    the result's ``errors``); a stage that ran and found nothing is an evidence object saying so.
    ``damage``: why decoding stopped part-way in a file that was still analysed (truncated or
    corrupt); damage alone never makes a verdict, but a reviewer of ``tampered`` must see it.
    ``visible_label``: the label search; it adds evidence sentences, never a verdict.
    ``manipulation``: registered detectors' scores; only below our provenance and R4 can a
    score decide (a watermark or a valid manifest still decides for our own media).
    """
    if read_error is not None:
        return error_verdict(read_error)

    # A visible label never decides a row: anyone can draw one. It is said first among the
    # context, so a label without provenance is never read as proof.
    context = [
        *label_sentences(visible_label, c2pa, watermark),
        *_context_sentences(c2pa, watermark, faces),
        *_manipulation_context(manipulation),
    ]

    # R1: a manifest that fails validation is the strongest signal we have that someone changed
    # the bytes after signing; it outranks our own watermark (which survives the edit) so the
    # tampering is never hidden behind an "authorized" label.
    if c2pa is not None and c2pa.present and c2pa.state == "Invalid":
        why = "; ".join(c2pa.reasons) or "no reason given by the validator"
        sentences = [f"C2PA manifest is Invalid: {why}"]
        if damage:
            sentences.append(
                f"the file is also damaged ({damage}); a cut or corrupted copy fails the binding just as an edit does"
            )
        return _verdict(TAMPERED, "R1", [*sentences, *context])

    # R2/R3: our own provenance decides by the state of every grant it names, today. When the
    # watermark and the manifest name different grants, both must be active.
    ours = our_provenance(c2pa, watermark)
    if ours:
        sentences = [sentence for _, _, sentence in ours]
        grant_ids = {g.grant_id for _, g, _ in ours if g is not None}
        if len(grant_ids) > 1:
            sentences.append("watermark and manifest name different grants: " + ", ".join(sorted(grant_ids)))
        if (
            c2pa is not None
            and c2pa.present
            and c2pa.state in ("Valid", "Trusted")
            and not any(source == "manifest" for source, _, _ in ours)
        ):
            sentences.append(
                f"the file also carries a {c2pa.state} manifest from {c2pa.signer or 'an unknown signer'} "
                "(re-signed or edited after our render)"
            )
        if all(g is not None and g.in_force for _, g, _ in ours):
            return _verdict(AUTHORIZED_SYNTHETIC, "R2", [*sentences, *context])
        return _verdict(SYNTHETIC_CONSENT_REVOKED, "R3", [*sentences, *context])

    # R4: someone else's valid manifest declares generative content.
    if c2pa is not None and c2pa.present and c2pa.state in ("Valid", "Trusted") and c2pa.declares_ai:
        sentences = [
            f"{c2pa.state} C2PA manifest signed by {c2pa.signer or 'an unknown signer'} declares "
            f"{c2pa.digital_source_type}"
        ]
        if c2pa.consent is not None:
            sentences.append(
                f"it claims grant {c2pa.consent.grant_id} ({c2pa.consent.state} here) but is not "
                "signed by a trusted certificate of this workspace"
                if c2pa.state != "Trusted"
                else f"its consent assertion names grant {c2pa.consent.grant_id}, unknown to this registry"
            )
        return _verdict(SYNTHETIC_OTHER_ISSUER, "R4", [*sentences, *context])

    # R5-R7: no provenance that decides; fall back to who is in the picture.
    if faces is None or faces.detected == 0:
        return _verdict(NO_FACE, "R5", ["no face detected", *context])
    matched = faces.matched
    flagged = manipulation.suspected if manipulation is not None else ()
    if flagged:
        by_id = {face.face_id: face for face in faces.faces}
        sentences = [_suspected_sentence(track, by_id.get(track.face_id)) for track in flagged]
        artist = any(by_id.get(t.face_id) is not None and by_id[t.face_id].match is not None for t in flagged)
        code, rule = (ENROLLED_ARTIST_SUSPECTED_MANIPULATION, "R5a") if artist else (SUSPECTED_MANIPULATION, "R5b")
        return _verdict(code, rule, [*sentences, *context, *_performer_sentences(faces)])
    if matched:
        sentences = []
        for face in matched:
            assert face.match is not None
            sentences.append(
                f"face {face.face_id} matches enrolled subject {face.match.slug} "
                f"(similarity {face.match.similarity:.2f}, distance {face.match.distance:.3f} "
                f"<= {_limit(face.match, faces):.3f})"
            )
        return _verdict(ENROLLED_ARTIST_UNLABELLED, "R6", [*sentences, *context, *_performer_sentences(faces)])
    performers = _performer_sentences(faces)
    if performers:
        return _verdict(NO_ENROLLED_ARTIST, "R7", [*performers, *context])
    return _verdict(
        NO_ENROLLED_ARTIST,
        "R7",
        [
            f"{faces.detected} face(s), none within {faces.threshold:.3f} of the "
            f"{faces.gallery_subjects} enrolled subject(s)",
            *context,
        ],
    )


def _manipulation_context(manipulation: ManipulationEvidence | None) -> list[str]:
    """Scores under their threshold, and detectors that were not used, beside any verdict."""
    if manipulation is None:
        return []
    sentences = [
        f"face {t.face_id}: detector {t.model} scores {t.score:.2f}, under its threshold {t.threshold_logit:.2f}"
        for t in manipulation.tracks
        if not t.suspected
    ]
    return sentences + [f"manipulation not analysed for {why}" for why in manipulation.skipped]


def _suspected_sentence(track, face) -> str:
    who = ""
    if face is not None and (face.match or face.performer) is not None:
        subject = face.match or face.performer
        who = f" ({subject.slug}, similarity {subject.similarity:.2f})"
    return (
        f"face {track.face_id}{who}: detector {track.model} scores {track.score:.2f} "
        f"(probability {track.calibrated_probability:.2f}) over {len(track.face_scores)} sighting(s), "
        f">= its threshold {track.threshold_logit:.2f} (set at {track.target_false_positive_rate:.0%} false "
        "positives on authentic faces)"
    )


def _limit(match, faces: FacesEvidence) -> float:
    return match.threshold if match.threshold is not None else faces.threshold


def _performer_sentences(faces: FacesEvidence) -> list[str]:
    """Faces that are enrolled performers: known people whose raw footage is expected, never an
    unlabelled artist."""
    return [
        f"face {face.face_id} is the enrolled performer {face.performer.slug} (known performer, not an "
        f"artist; similarity {face.performer.similarity:.2f}, distance {face.performer.distance:.3f} "
        f"<= {_limit(face.performer, faces):.3f})"
        for face in faces.faces
        if face.performer is not None
    ]


#: The evidence sentence for a visible label with nothing behind it (docs/verify.md).
LABEL_WITHOUT_PROVENANCE = (
    "a visible AI label is present but no likeness watermark or C2PA manifest was found: "
    "the label alone proves nothing about who made it"
)


def label_sentences(
    visible_label: LabelEvidence | None, c2pa: C2paEvidence | None, watermark: WatermarkEvidence | None
) -> list[str]:
    """What the visible label adds to the evidence: a claim, never proof.

    >>> from likeness.verify.result import LabelEvidence
    >>> label_sentences(LabelEvidence(present=True, score=0.8), C2paEvidence.absent(), None)[0][:31]
    'a visible AI label is present b'
    """
    if visible_label is None or not visible_label.present:
        return []
    has_mark = watermark is not None and watermark.found
    has_manifest = c2pa is not None and c2pa.present
    if not has_mark and not has_manifest:
        return [LABEL_WITHOUT_PROVENANCE]
    return [f"a visible AI label is present too (score {visible_label.score:.2f})"]


def _verdict(code: str, rule: str, evidence: list[str]) -> Verdict:
    return Verdict(code=code, rule=rule, summary=SUMMARIES[code], evidence=tuple(evidence))


def _context_sentences(
    c2pa: C2paEvidence | None, watermark: WatermarkEvidence | None, faces: FacesEvidence | None
) -> list[str]:
    """Evidence that did not decide the row but a reviewer should see beside it."""
    sentences: list[str] = []
    if c2pa is None:
        sentences.append("C2PA could not be read")
    elif not c2pa.present:
        sentences.append("no C2PA manifest")
    if watermark is None:
        sentences.append("watermark could not be read")
    elif not watermark.found:
        sentences.append("no watermark")
    elif watermark.render is None:
        sentences.append(f"watermark payload {watermark.payload} is not on this workspace's ledger")
    elif watermark.traced and c2pa is not None and c2pa.present and c2pa.state == "Invalid":
        render = watermark.render
        grant = watermark.grant
        sentences.append(
            f"the pixels still carry watermark {watermark.payload} of {render.job_words} {render.job_id} "
            f"under grant {render.grant_id} ({grant.state if grant else 'unknown'} today)"
        )
    if faces is not None:
        for face in faces.faces:
            if face.match is not None and watermark is not None and watermark.traced:
                traced = watermark.render
                assert traced is not None
                if traced.subject_id is not None and face.match.subject_id != traced.subject_id:
                    sentences.append(
                        f"face {face.face_id} looks like {face.match.slug}, not the subject of the render's grant"
                    )
    return sentences
