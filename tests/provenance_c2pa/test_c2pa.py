"""Signing setup and C2PA sign/read round trips (JPEG, PNG, WebP, MP4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from likeness.errors import MediaError, ProvenanceError
from likeness.provenance.c2pa_manifest import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    ConsentClaim,
    build_manifest,
    read_manifest,
    sign_file,
)
from likeness.provenance.certificates import (
    CHAIN_NAME,
    ROOT_KEY_NAME,
    SIGNER_CERT_NAME,
    SIGNER_KEY_NAME,
    ensure_signing_setup,
    load_signing_setup,
    split_pem_certificates,
)

PAYLOAD = bytes.fromhex("0011223344556677")
CLAIM = ConsentClaim(
    grant_id="g-123",
    subject_id="s-1",
    subject_slug="mina",
    subject_kind="virtual_idol",
    use="music_video",
    org_slug="studio",
    holder_fingerprint="ab" * 32,
    grant_signature_sha256="cd" * 32,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    return ensure_signing_setup(tmp_path_factory.mktemp("keys") / "c2pa", "Studio Haneul")


@pytest.fixture(scope="module")
def foreign_setup(tmp_path_factory: pytest.TempPathFactory):
    return ensure_signing_setup(tmp_path_factory.mktemp("other") / "c2pa", "Other Agency")


def _noise_image(path: Path, *, seed: int = 0, size: tuple[int, int] = (192, 160)) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, quality=90) if path.suffix != ".png" else Image.fromarray(rgb).save(path)
    return rgb


def _noise_mp4(path: Path, *, frames: int = 8, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _manifest(*, composite: bool = False, title: str = "out") -> dict:
    return build_manifest(
        title=title,
        consent=CLAIM,
        watermark_algorithm="likeness.test-wm.v1",
        watermark_payload=PAYLOAD,
        job_id="f" * 32,
        composite=composite,
    )


# --- signing setup -----------------------------------------------------------------------------


def test_signing_certificate_profile(setup) -> None:
    chain = split_pem_certificates(setup.cert_chain_pem)
    assert len(chain) == 2
    signer, root = (x509.load_pem_x509_certificate(c.encode()) for c in chain)
    assert signer.issuer == root.subject and signer.subject != root.subject  # end-entity first
    assert isinstance(signer.public_key(), ec.EllipticCurvePublicKey)
    assert signer.public_key().curve.name == "secp256r1"
    basic = signer.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert ExtendedKeyUsageOID.SERVER_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski
    assert signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest != root_ski
    root_basic = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert root_basic.ca is True
    signer.verify_directly_issued_by(root)
    assert setup.trust_anchor_pem == chain[1]


def test_private_keys_are_owner_only_and_never_in_the_setup(setup) -> None:
    for name in (ROOT_KEY_NAME, SIGNER_KEY_NAME):
        assert stat.S_IMODE(os.stat(setup.keys_dir / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(setup.keys_dir).st_mode) == 0o700
    assert "PRIVATE KEY" not in repr(setup)
    assert "PRIVATE KEY" not in setup.cert_chain_pem + setup.trust_anchor_pem


def test_setup_is_idempotent(tmp_path: Path) -> None:
    first = ensure_signing_setup(tmp_path / "c2pa", "Studio Haneul")
    key_bytes = (tmp_path / "c2pa" / SIGNER_KEY_NAME).read_bytes()
    again = ensure_signing_setup(tmp_path / "c2pa", "Another Name")
    assert again == first
    assert (tmp_path / "c2pa" / SIGNER_KEY_NAME).read_bytes() == key_bytes
    assert (tmp_path / "c2pa" / CHAIN_NAME).read_text() == first.cert_chain_pem


def test_incomplete_or_mismatched_setup_is_reported(tmp_path: Path, foreign_setup) -> None:
    ensure_signing_setup(tmp_path / "a", "Studio")
    (tmp_path / "a" / SIGNER_KEY_NAME).unlink()
    with pytest.raises(ProvenanceError, match="incomplete"):
        ensure_signing_setup(tmp_path / "a", "Studio")
    ensure_signing_setup(tmp_path / "b", "Studio")
    (tmp_path / "b" / SIGNER_CERT_NAME).write_text(foreign_setup.signer_cert_path.read_text())
    with pytest.raises(ProvenanceError, match="does not match"):
        ensure_signing_setup(tmp_path / "b", "Studio")
    with pytest.raises(ProvenanceError, match="organisation name"):
        ensure_signing_setup(tmp_path / "c", "  ")


# --- manifest ----------------------------------------------------------------------------------


def test_build_manifest_states_what_was_made_and_under_which_grant() -> None:
    created = _manifest()
    labels = [a["label"] for a in created["assertions"]]
    assert labels == ["c2pa.actions", "com.likeness.consent", "c2pa.soft-binding", "cawg.training-mining"]
    action = created["assertions"][0]["data"]["actions"][0]
    assert action["action"] == "c2pa.created" and action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    edited = _manifest(composite=True)["assertions"][0]["data"]["actions"][0]
    assert edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    consent = created["assertions"][1]["data"]
    assert consent["grant_id"] == "g-123" and consent["use"] == "music_video"
    assert consent["holder_fingerprint"] == "ab" * 32 and consent["grant_signature_sha256"] == "cd" * 32
    entries = created["assertions"][3]["data"]["entries"]
    assert entries and {e["use"] for e in entries.values()} == {"notAllowed"}
    with pytest.raises(ProvenanceError, match="8 bytes"):
        build_manifest(
            title="x", consent=CLAIM, watermark_algorithm="a", watermark_payload=b"short", job_id="j", composite=False
        )


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_image_round_trip_is_trusted_with_our_anchor(tmp_path: Path, setup, suffix: str) -> None:
    src, dst = tmp_path / f"src{suffix}", tmp_path / f"out{suffix}"
    _noise_image(src)
    manifest_bytes = sign_file(src, dst, _manifest(title=dst.name), setup)
    assert manifest_bytes < 16_000  # no default thumbnail
    reading = read_manifest(dst, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.present and reading.state == "Trusted", reading.reasons
    assert reading.reasons == ()
    assert [a["action"] for a in reading.actions] == ["c2pa.created"]
    assert reading.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert reading.consent_assertion["grant_id"] == "g-123"
    assert reading.consent_assertion["grant_signature_sha256"] == "cd" * 32
    assert reading.soft_binding["alg"] == "likeness.test-wm.v1"
    assert reading.soft_binding_payload == PAYLOAD
    assert {e["use"] for e in reading.training_mining["entries"].values()} == {"notAllowed"}
    assert reading.signer["issuer"] == "Studio Haneul"
    # The signed file still decodes to the same pixels.
    assert np.array_equal(np.asarray(Image.open(dst).convert("RGB")), np.asarray(Image.open(src).convert("RGB")))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mp4_round_trip_with_parent_ingredient(tmp_path: Path, setup) -> None:
    src, parent, dst = tmp_path / "render.mp4", tmp_path / "target.png", tmp_path / "out.mp4"
    _noise_mp4(src)
    _noise_image(parent, seed=5)
    sign_file(src, dst, _manifest(composite=True), setup, parent=parent)
    reading = read_manifest(dst, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.state == "Trusted", reading.reasons
    assert [a["action"] for a in reading.actions] == ["c2pa.opened", "c2pa.edited"]
    assert reading.digital_source_type == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert [(i["title"], i["relationship"]) for i in reading.ingredients] == [("target.png", "parentOf")]
    with av.open(str(dst)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_parent_in_a_container_c2pa_cannot_parse_is_recorded_by_name(tmp_path: Path, setup) -> None:
    src, parent, dst = tmp_path / "render.jpg", tmp_path / "target.mkv", tmp_path / "out.jpg"
    _noise_image(src)
    parent.write_bytes(np.random.default_rng(3).bytes(4096))
    sign_file(src, dst, _manifest(composite=True), setup, parent=parent)
    reading = read_manifest(dst, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.state == "Trusted"
    assert reading.ingredients[0]["title"] == "target.mkv"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".mp4"])
def test_a_flipped_byte_makes_it_invalid(tmp_path: Path, setup, suffix: str) -> None:
    src, dst = tmp_path / f"src{suffix}", tmp_path / f"out{suffix}"
    _noise_mp4(src) if suffix == ".mp4" else _noise_image(src, size=(256, 256))
    sign_file(src, dst, _manifest(), setup)
    signed = bytearray(dst.read_bytes())
    original = src.read_bytes()
    # Flip a byte of the media payload (not the manifest): find where the original's tail sits.
    tail = original[-4096:-1024]
    offset = bytes(signed).find(tail)
    assert offset > 0
    signed[offset + 100] ^= 0x01
    dst.write_bytes(bytes(signed))
    reading = read_manifest(dst, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.present and reading.state == "Invalid"
    assert any("mismatch" in code for code in reading.codes), reading.reasons


def test_a_flipped_byte_in_the_manifest_makes_it_invalid(tmp_path: Path, setup) -> None:
    src, dst = tmp_path / "src.png", tmp_path / "out.png"
    _noise_image(src)
    sign_file(src, dst, _manifest(), setup)
    signed = bytearray(dst.read_bytes())
    offset = bytes(signed).find(b"g-123")  # inside the consent assertion
    assert offset > 0
    signed[offset] = ord("h")
    dst.write_bytes(bytes(signed))
    reading = read_manifest(dst, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.state == "Invalid" and reading.reasons


def test_foreign_or_missing_anchor_is_valid_not_trusted(tmp_path: Path, setup, foreign_setup) -> None:
    src, dst = tmp_path / "src.jpg", tmp_path / "out.jpg"
    _noise_image(src)
    sign_file(src, dst, _manifest(), setup)
    for anchors in ([foreign_setup.trust_anchor_pem], []):
        reading = read_manifest(dst, trust_anchors_pem=anchors)
        assert reading.state == "Valid"
        assert "signingCredential.untrusted" in reading.codes
    both = read_manifest(dst, trust_anchors_pem=[foreign_setup.trust_anchor_pem, setup.trust_anchor_pem])
    assert both.state == "Trusted"


def test_stripped_manifest_reads_as_absent(tmp_path: Path, setup) -> None:
    src, dst, resaved = tmp_path / "src.png", tmp_path / "out.png", tmp_path / "resaved.jpg"
    _noise_image(src)
    sign_file(src, dst, _manifest(), setup)
    Image.open(dst).convert("RGB").save(resaved, quality=90)
    reading = read_manifest(resaved, trust_anchors_pem=[setup.trust_anchor_pem])
    assert reading.present is False and reading.state is None
    assert read_manifest(src, trust_anchors_pem=[setup.trust_anchor_pem]).present is False


def test_bad_inputs_get_typed_errors_and_leave_nothing(tmp_path: Path, setup) -> None:
    with pytest.raises(MediaError, match="file not found"):
        read_manifest(tmp_path / "missing.jpg", trust_anchors_pem=[])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all" * 10)
    reading = read_manifest(junk, trust_anchors_pem=[])
    assert reading.present is False and reading.reasons
    src = tmp_path / "src.png"
    _noise_image(src)
    with pytest.raises(ProvenanceError, match="trust anchor #1"):
        read_manifest(src, trust_anchors_pem=["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
    with pytest.raises(ProvenanceError, match="no PEM"):
        read_manifest(src, trust_anchors_pem=["hello"])
    with pytest.raises(ProvenanceError, match="parent"):
        sign_file(src, tmp_path / "a.png", _manifest(composite=True), setup)
    with pytest.raises(MediaError):
        sign_file(src, tmp_path / "b.png", _manifest(composite=True), setup, parent=tmp_path / "nope.png")
    (tmp_path / "src.bmp").write_bytes(b"BM")
    with pytest.raises(MediaError, match="supports"):
        sign_file(tmp_path / "src.bmp", tmp_path / "c.bmp", _manifest(), setup)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ProvenanceError, match="signing failed"):
        sign_file(corrupt, tmp_path / "d.png", _manifest(), setup)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["corrupt.png", "junk.jpg", "src.bmp", "src.png"]


# --- CLI ---------------------------------------------------------------------------------------


def test_keys_cli_creates_and_shows_without_key_material(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    runner = CliRunner()
    home = str(tmp_path / "home")
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    shown = runner.invoke(app, ["--home", home, "keys", "show"])
    assert shown.exit_code == 1 and "likeness keys init" in shown.output
    assert runner.invoke(app, ["--home", home, "org", "add", "studio", "--name", "Studio Haneul"]).exit_code == 0
    created = runner.invoke(app, ["--home", home, "keys", "init", "--org", "studio"])
    assert created.exit_code == 0, created.output
    setup = ensure_signing_setup(tmp_path / "home" / "keys" / "c2pa", "unused")
    assert setup.org_name == "Studio Haneul"
    assert setup.signer_fingerprint in created.output
    shown = runner.invoke(app, ["--home", home, "keys", "show"])
    assert shown.exit_code == 0 and setup.signer_fingerprint in shown.output
    for output in (created.output, shown.output):
        assert "PRIVATE KEY" not in output and "BEGIN" not in output
    again = runner.invoke(app, ["--home", home, "keys", "init"])
    assert again.exit_code == 0 and setup.signer_fingerprint in again.output  # idempotent


@pytest.mark.parametrize("name", ["signer.key", "root-ca.key"])
def test_a_signing_key_others_may_read_is_refused(tmp_path: Path, name: str) -> None:
    """Trial 11: a key file made 0644 (a copy, a restored backup, a careless chmod) was used as
    it was, and ``keys show`` still said "(0600)"; the organisation's Ed25519 key was refused."""
    keys_dir = tmp_path / "c2pa"
    ensure_signing_setup(keys_dir, "Studio Haneul")
    (keys_dir / name).chmod(0o644)
    with pytest.raises(
        ProvenanceError,
        match=rf"{name}: private key file may be read by others \(mode 0644\); expected 0600 \(chmod 600 it\)",
    ):
        load_signing_setup(keys_dir)
    (keys_dir / name).chmod(0o600)
    assert load_signing_setup(keys_dir).org_name == "Studio Haneul"


def test_a_fifo_in_a_signing_key_s_place_is_refused_not_waited_on(tmp_path: Path) -> None:
    """The signing keys were read with a plain open, so a FIFO put in the signer key's place
    held every render's labelling for ever; every key file is read by ``likeness.keyfiles``
    now, which opens without blocking and takes regular files only."""
    import os

    keys_dir = tmp_path / "c2pa"
    ensure_signing_setup(keys_dir, "Studio Haneul")
    (keys_dir / "signer.key").unlink()
    os.mkfifo(keys_dir / "signer.key", 0o600)
    with pytest.raises(ProvenanceError, match=r"signer.key: private key file is not a regular file"):
        load_signing_setup(keys_dir)


def test_a_signed_file_is_written_whole(tmp_path: Path, setup, monkeypatch) -> None:
    """The signer renamed its temporary into place unsynced; now its bytes are fsynced first and
    the folder after."""
    from tests.durability import assert_written_whole, watch_disk

    src, dst = tmp_path / "src.png", tmp_path / "out.png"
    _noise_image(src)
    log = watch_disk(monkeypatch)
    sign_file(src, dst, _manifest(title=dst.name), setup)
    assert_written_whole(log, dst)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_signing_setup_is_written_whole_keys_0600_from_their_temporaries_on(tmp_path: Path, monkeypatch) -> None:
    """Its folder was not fsynced after the keys and certificates were renamed into place."""
    from tests.durability import assert_written_whole, watch_disk

    log = watch_disk(monkeypatch)
    previous = os.umask(0)
    try:
        ensure_signing_setup(tmp_path / "c2pa", "Studio Haneul")
    finally:
        os.umask(previous)
    for name, mode in (
        (ROOT_KEY_NAME, 0o600),
        (SIGNER_KEY_NAME, 0o600),
        (SIGNER_CERT_NAME, 0o644),
        (CHAIN_NAME, 0o644),
    ):
        placement = assert_written_whole(log, tmp_path / "c2pa" / name)
        assert placement.mode == mode and stat.S_IMODE((tmp_path / "c2pa" / name).stat().st_mode) == mode
