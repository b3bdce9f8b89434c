"""Offline consent (issue 29): the organisation requests, the rights holder signs on their own
machine, the organisation imports; each way an import can be wrong is refused with its reason."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from likeness.cli import app
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc
from likeness.consent.grant_requests import ConsentRequest, SignedConsent, describe
from likeness.consent.holder import HolderMachine, keygen, sign_request
from likeness.errors import ConfigError, ConsentError, ConsentRequestError, RegistryError
from likeness.media import synthetic, write_image
from tests.conftest import add_holder, holder_machine
from tests.consent.test_cli_consent import holder_key

runner = CliRunner()


def run(home, *args: str, code: int = 0, stdin: str | None = None):
    result = runner.invoke(app, ["--home", str(home), *args], input=stdin)
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    return result


def refusal(call) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call()
    return info.value


def _request(world, **options) -> ConsentRequest:
    options.setdefault("valid_until", now_utc() + timedelta(days=10))
    return world.workspace.registry.request_grant("mina", "studio", options.pop("uses", ["music_video"]), **options)


def _forged(request: ConsentRequest | None, payload: dict, key: Ed25519PrivateKey) -> SignedConsent:
    """A signed consent over ``payload`` made with ``key``, bypassing the holder tool's checks."""
    return SignedConsent(payload, keys.sign(key, canonical_bytes(payload)), keys.public_raw(key).hex(), "", request)


# --- the round trip ---------------------------------------------------------------------------


def test_round_trip_request_sign_on_the_holder_machine_import_then_render_is_authorized(tmp_path):
    home = tmp_path / "home"
    run(home, "init", "--org", "studio")
    keygen_out = run(home, "holder", "keygen", "--out", str(tmp_path / "mina-laptop"), "--name", "mina").output
    private, public = tmp_path / "mina-laptop" / "mina.pem", tmp_path / "mina-laptop" / "mina.pub.pem"
    assert private.stat().st_mode & 0o777 == 0o600 and (tmp_path / "mina-laptop").stat().st_mode & 0o777 == 0o700
    run(home, "subject", "add", "mina", "--virtual", "--owner-org", "studio", "--holder-public-key", str(public))
    stills = tmp_path / "previews"
    stills.mkdir()
    still = write_image(stills / "shot-01.png", synthetic.astronaut()[:64, :64])
    request_file, signed_file = tmp_path / "request.json", tmp_path / "signed.json"
    outputs = [keygen_out]
    outputs.append(
        run(
            home,
            "consent",
            "request",
            "mina",
            "--use",
            "music_video",
            "--until",
            "+30d",
            "--max-renders",
            "20",
            "--purpose",
            "Debut MV",
            "--preview",
            str(still),
            "--out",
            str(request_file),
        ).output
    )
    outputs.append(
        run(
            home,
            "holder",
            "sign",
            str(request_file),
            "--key",
            str(private),
            "--out",
            str(signed_file),
            "--previews",
            str(stills),
            "--yes",
        ).output
    )
    outputs.append(run(home, "consent", "import", str(signed_file)).output)
    outputs.append(run(home, "consent", "check", "mina", "--use", "music_video").output)
    assert "authorized" in outputs[-1]

    from likeness.config import Settings
    from likeness.workspace import Workspace

    ws = Workspace.open(Settings(home=home))
    try:
        authz = ws.policy.authorize("mina", "music_video", "studio")
        authz.consume_render("job-1")  # the render slot a render reserves
        assert ws.registry.grant_record(authz.grant_id).max_renders == 20
        requested = ws.ledger.find("grant.requested", grant_id=authz.grant_id)[0]
        assert requested.payload["preview_sha256"] == [hashlib.sha256(still.read_bytes()).hexdigest()]
        report = audit_workspace(ws)
        assert report.ok, report.problems
        assert not any("private key" in w for w in report.warnings)
        secret = b"".join(private.read_bytes().splitlines()[1:-1])
        assert secret not in (home / "likeness.db").read_bytes()
        assert all(secret.decode() not in json.dumps(e.payload) for e in ws.ledger.events())
        assert all(secret.decode() not in text for text in outputs)
        assert not list(home.rglob("*holder*")) and not (ws.keys_dir / "holders").exists()
    finally:
        ws.close()


def test_holder_sign_reads_the_request_in_plain_language_and_asks(consent_world, tmp_path):
    request = _request(
        consent_world, uses=["music_video", "fan_message"], max_renders=20, purpose="Debut music video for Mina"
    )
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request.as_json()))
    key = holder_machine(consent_world.workspace.registry).key_path("mina-holder")
    declined = run(
        tmp_path,
        "holder",
        "sign",
        str(request_file),
        "--key",
        str(key),
        "--out",
        str(tmp_path / "s"),
        code=1,
        stdin="n\n",
    )
    text = " ".join(declined.output.split())
    for words in (
        "Studio Haneul asks",
        "Mina",
        "Uses: fan messages, music videos.",
        "they may not use it for these): training a model of your face, virtual stage performances",
        "At most 20 rendered",
        "visible 'AI 생성 · AI-generated' label",
        "Purpose: Debut music video for Mina",
        "Never grantable, whatever anyone signs: sexual content, political persuasion",
        "not signed",
    ):
        assert words in text, words
    assert not (tmp_path / "s").exists()
    run(tmp_path, "holder", "sign", str(request_file), "--key", str(key), "--out", str(tmp_path / "s"), stdin="y\n")
    assert SignedConsent.from_json(json.loads((tmp_path / "s").read_text())).payload == request.payload
    assert "MAY BE LEFT OFF" in " ".join(describe(_request(consent_world, allow_unlabelled=True)))
    # Nothing to read a yes from (a script without --yes): say how, not Click's bare "Aborted!".
    unanswered = run(
        tmp_path, "holder", "sign", str(request_file), "--key", str(key), "--out", str(tmp_path / "t"), code=1, stdin=""
    )
    assert "then sign with --yes" in unanswered.output and "Aborted" not in unanswered.output
    assert not (tmp_path / "t").exists()


# --- refusals ---------------------------------------------------------------------------------


def test_a_request_naming_a_prohibited_use_is_refused_at_request_sign_and_import(consent_world):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    assert refusal(lambda: _request(consent_world, uses=["music_video", "sexual_content"])).reason == "prohibited_use"
    # A request file edited to name a prohibited use (its digest recomputed): the holder's tool refuses ...
    request = _request(consent_world)
    widened = dataclasses.replace(request, payload={**request.payload, "uses": ["music_video", "sexual_content"]})
    assert refusal(lambda: machine.sign(widened)).reason == "prohibited_use"
    # ... and a grant naming one that was signed anyway is refused at import, on the ledger.
    forged = _forged(widened, widened.payload, machine.key("mina-holder"))
    assert refusal(lambda: reg.import_signed(forged)).reason == "prohibited_use"
    refused = consent_world.workspace.ledger.find("grant.refused", grant_id=request.record_id)
    assert refused and refused[0].payload["reason"] == "prohibited_use"
    assert reg.grant_state(request.record_id) == "unknown"


@pytest.mark.parametrize(
    "member, value", [("uses", ["advertising", "music_video"]), ("max_renders", None), ("allow_unlabelled", True)]
)
def test_a_payload_altered_after_the_request_is_refused(consent_world, member, value):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    request = _request(consent_world, max_renders=3)
    signed = machine.sign(request)
    edited = dataclasses.replace(signed, payload={**signed.payload, member: value})
    error = refusal(lambda: reg.import_signed(edited))
    assert error.reason == "grant_altered" and member in str(error)
    # Even re-signed by the holder's own key, it is not what the organisation asked for.
    resigned = _forged(request, edited.payload, machine.key("mina-holder"))
    assert refusal(lambda: reg.import_signed(resigned)).reason == "grant_altered"
    assert reg.import_signed(signed) == request.record_id  # the genuine one still imports


def test_a_grant_signed_with_a_wrong_key_is_refused_naming_the_key(consent_world):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    other = add_holder(reg, "other-holder", "Other", kind="artist")
    request = _request(consent_world)
    # The holder's tool will not sign a request addressed to another key ...
    error = refusal(lambda: machine.sign(request, "other-holder"))
    assert error.reason == "signature_invalid" and request.payload["holder_fingerprint"] in str(error)
    # ... and a signature by another key (another holder's, enrolled here) is refused at import.
    forged = _forged(request, request.payload, machine.key("other-holder"))
    error = refusal(lambda: reg.import_signed(forged))
    assert error.reason == "signature_invalid" and other.key_fingerprint in str(error)
    stranger = Ed25519PrivateKey.generate()
    forged = _forged(request, request.payload, stranger)
    assert refusal(lambda: reg.import_signed(forged)).reason == "signature_invalid"
    garbage = dataclasses.replace(machine.sign(request), signature="00" * 64)
    assert "does not verify" in str(refusal(lambda: reg.import_signed(garbage)))
    assert reg.grant_state(request.record_id) == "unknown"


def test_a_release_signed_with_a_wrong_key_is_refused(consent_world):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    request = reg.request_release("jun", "studio", valid_until=now_utc() + timedelta(days=3))
    forged = _forged(request, request.payload, machine.key("mina-holder"))
    assert refusal(lambda: reg.import_signed(forged)).reason == "release_signature_invalid"
    edited = dataclasses.replace(
        machine.sign(request), payload={**request.payload, "valid_until": "2099-01-01T00:00:00Z"}
    )
    assert refusal(lambda: reg.import_signed(edited)).reason == "release_altered"


def test_a_signed_grant_no_request_asked_for_is_refused(consent_world, tmp_path):
    """A grant drafted in another workspace (or made up) answers no request here."""
    request = _request(consent_world)
    other = dataclasses.replace(request, payload={**request.payload, "grant_id": "1" * 32})
    forged = _forged(other, other.payload, holder_machine(consent_world.workspace.registry).key("mina-holder"))
    assert refusal(lambda: consent_world.workspace.registry.import_signed(forged)).reason == "not_requested"


def test_a_grant_is_imported_once(consent_world):
    reg = consent_world.workspace.registry
    signed = holder_machine(reg).sign(_request(consent_world))
    reg.import_signed(signed)
    with pytest.raises(RegistryError, match="already imported"):
        reg.import_signed(signed)


def test_a_request_file_changed_after_drafting_is_refused_before_signing(consent_world, tmp_path):
    body = _request(consent_world).as_json()
    body["payload"]["uses"] = ["advertising", "music_video"]  # digest left as drafted
    with pytest.raises(ConsentRequestError, match="changed after it was drafted"):
        ConsentRequest.from_json(body)
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    key = holder_machine(consent_world.workspace.registry).key_path("mina-holder")
    out = run(
        tmp_path, "holder", "sign", str(request_file), "--key", str(key), "--out", str(tmp_path / "s"), "--yes", code=1
    )
    assert "changed after it was drafted" in out.output and not (tmp_path / "s").exists()


def test_preview_stills_that_differ_from_the_request_are_refused(consent_world, tmp_path):
    stills = tmp_path / "stills"
    stills.mkdir()
    still = write_image(stills / "shot.png", synthetic.astronaut()[:32, :32])
    request = _request(consent_world, previews=[still])
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request.as_json()))
    write_image(still, synthetic.grace_hopper()[:32, :32])  # not the still the request was made with
    key = holder_machine(consent_world.workspace.registry).key_path("mina-holder")
    out = run(
        tmp_path,
        "holder",
        "sign",
        str(request_file),
        "--key",
        str(key),
        "--out",
        str(tmp_path / "s"),
        "--previews",
        str(stills),
        "--yes",
        code=1,
    ).output
    assert request.preview_sha256[0] in out and "do not match" in out and not (tmp_path / "s").exists()


def test_keys_are_never_made_or_used_inside_a_workspace(consent_world, tmp_path):
    ws = consent_world.workspace
    with pytest.raises(ConfigError, match="inside the likeness workspace"):
        keygen(ws.keys_dir / "holders", "mina")
    with pytest.raises(ConfigError, match="inside the likeness workspace"):
        HolderMachine(ws.home / "holders")
    out = run(ws.home, "holder", "keygen", "--out", str(ws.home / "mina"), code=1).output
    assert "inside the likeness workspace" in out
    inside = ws.home / "copied.pem"
    inside.write_bytes(holder_machine(ws.registry).key_path("mina-holder").read_bytes())
    inside.chmod(0o600)
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(_request(consent_world).as_json()))
    out = run(
        tmp_path,
        "holder",
        "sign",
        str(request_file),
        "--key",
        str(inside),
        "--out",
        str(tmp_path / "s"),
        "--yes",
        code=1,
    )
    assert "inside the likeness workspace" in out.output
    # The registry has no way to make a holder key: a holder is registered by a public key.
    with pytest.raises(TypeError):
        ws.registry.add_holder("keyless", "Keyless", kind="artist")  # type: ignore[call-arg]
    with pytest.raises(RegistryError, match="holder keygen"):
        ws.registry.add_subject("keyless", "Keyless")
    assert not (ws.keys_dir / "holders").exists()


def test_a_revocation_signed_by_another_key_is_refused_and_the_holder_s_own_works(consent_world):
    reg = consent_world.workspace.registry
    machine = holder_machine(reg)
    add_holder(reg, "other-holder", "Other", kind="artist")
    wrong = machine.revoke(consent_world.grant_id, name="other-holder")
    assert refusal(lambda: reg.import_signed(wrong)).reason == "signature_invalid"
    assert consent_world.authorize("training")
    genuine = machine.revoke(consent_world.grant_id, reason="withdrawn")
    backdated = _forged(None, {**genuine.payload, "revoked_at": "yesterday"}, machine.key("mina-holder"))
    with pytest.raises(ConsentRequestError, match="not a revocation"):
        reg.import_signed(backdated)
    reg.import_signed(genuine)
    assert refusal(lambda: consent_world.authorize("training")).reason == "revoked"


def test_signed_files_that_are_not_consent_are_refused_cleanly(consent_world, tmp_path):
    home = consent_world.workspace.home
    for name, text in (("garbage.json", "{not json"), ("list.json", "[1, 2]"), ("other.json", '{"type": "x"}')):
        (tmp_path / name).write_text(text)
        out = run(home, "consent", "import", str(tmp_path / name), code=1).output
        assert "error" in out
    signed = holder_machine(consent_world.workspace.registry).sign(_request(consent_world)).as_json()
    signed["signature"] = "zz"
    (tmp_path / "bad.json").write_text(json.dumps(signed))
    assert "64-byte hex" in run(home, "consent", "import", str(tmp_path / "bad.json"), code=1).output
    assert canonical_sha256(signed["payload"]) == signed["request"]["payload_sha256"]


def test_a_signed_grant_naming_its_uses_twice_is_refused_naming_the_file(consent_world, tmp_path):
    """``"uses": ["fan_message"], "uses": ["music_video"]``: a reader keeping the first member
    (SQLite's ``json_extract``, many JavaScript tools) shows the holder a fan message; before,
    the import kept the last, music_video, whose signature held, and imported the grant."""
    home, ledger = consent_world.workspace.home, consent_world.workspace.ledger
    signed = json.dumps(holder_machine(consent_world.workspace.registry).sign(_request(consent_world)).as_json())
    genuine = '"uses": ["music_video"]'
    assert genuine in signed
    path = tmp_path / "signed.json"
    path.write_text(signed.replace(genuine, '"uses": ["fan_message"], ' + genuine))
    events = ledger.count()
    out = run(home, "consent", "import", str(path), code=1).output
    assert "duplicate member name 'uses'" in out and "signed.json" in out, out
    # where: its JSON path and the second name's line and column
    column = path.read_text().index(genuine) + 1
    assert f"at $.payload.uses: line 1 column {column}" in " ".join(out.split()), out
    assert ledger.count() == events


def test_a_file_nested_too_deeply_is_refused_as_not_json_naming_the_file(consent_world, tmp_path):
    # 100,000 nested arrays (200 kB): before, Python's reader raised RecursionError, a traceback.
    home, ledger = consent_world.workspace.home, consent_world.workspace.ledger
    path = tmp_path / "signed.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    events = ledger.count()
    out = run(home, "consent", "import", str(path), code=1).output
    assert "not JSON" in out and "nested too deeply" in out and "signed.json" in out, out[-2000:]
    assert "Traceback" not in out and ledger.count() == events


def test_cli_holder_keygen_refuses_to_overwrite(tmp_path):
    home = tmp_path / "home"
    holder_key(home, "mina")
    out = run(home, "holder", "keygen", "--out", str(home.parent / "holder-machine"), "--name", "mina", code=1).output
    assert "refusing to overwrite" in out


def test_sign_request_is_the_canonical_payload_the_engine_verifies(consent_world):
    reg = consent_world.workspace.registry
    request = _request(consent_world)
    key = holder_machine(reg).key("mina-holder")
    signed = sign_request(request, key)
    assert keys.verify(keys.public_raw(key), canonical_bytes(request.payload), signed.signature)
    grant_id = reg.import_signed(signed)
    event = consent_world.workspace.ledger.find("grant.issued", grant_id=grant_id)[0]
    assert event.payload["payload_sha256"] == request.payload_sha256 and event.payload["signature"] == signed.signature
    assert reg.grant_state(grant_id) == "active"


def test_a_workspace_on_postgresql_is_recognised_without_its_sqlite_file(tmp_path):
    """A PostgreSQL workspace has no likeness.db: its keys/ and outputs/ folders mark it."""
    home = tmp_path / "pg-home"
    (home / "keys").mkdir(parents=True)
    (home / "outputs").mkdir()
    with pytest.raises(ConfigError, match="inside the likeness workspace"):
        keygen(home / "keys" / "holders", "mina")
    assert keygen(tmp_path / "laptop", "mina").private_key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1" * 5000, "a number of more than 4300 digits"),
        ("NaN", "nan is not representable"),
        ("1e400", "inf is not representable"),
        ("18014398509481985", "exceeds safe integer domain"),
        ('"\\ud800"', "non-UTF-8"),
    ],
)
def test_a_request_or_signed_file_holding_what_canonical_json_cannot_write_is_refused_naming_it(
    consent_world, tmp_path, value, why
):
    """``"max_renders": NaN`` (or 1e400, 2**54 + 1, a lone surrogate, 5,000 digits): before,
    ``holder sign`` and ``consent import`` ended in a traceback (RFC 8785's FloatDomainError,
    IntegerDomainError, CanonicalizationError; Python's ValueError for the digits)."""
    home, ledger = consent_world.workspace.home, consent_world.workspace.ledger
    registry = consent_world.workspace.registry
    genuine = '"max_renders": null'
    request = json.dumps(_request(consent_world).as_json())
    signed = json.dumps(holder_machine(registry).sign(_request(consent_world)).as_json())
    assert genuine in request and genuine in signed
    request_file, signed_file = tmp_path / "request.json", tmp_path / "signed.json"
    request_file.write_text(request.replace(genuine, f'"max_renders": {value}'))
    signed_file.write_text(signed.replace(genuine, f'"max_renders": {value}'))
    key = holder_machine(registry).key_path("mina-holder")
    out = run(
        home, "holder", "sign", str(request_file), "--key", str(key), "--out", str(tmp_path / "s"), "--yes", code=1
    )
    assert why in out.output and "request.json" in out.output, out.output[-2000:]
    events = ledger.count()
    out = run(home, "consent", "import", str(signed_file), code=1)
    assert why in out.output and "signed.json" in out.output, out.output[-2000:]
    assert ledger.count() == events and not (tmp_path / "s").exists()


def test_the_holders_public_key_and_receipts_are_written_whole(consent_world, tmp_path, monkeypatch):
    """The public key and each signed receipt were written straight under their names: a kill
    mid-write left a torn ``.pub.pem`` that every later ``keygen`` refused to replace (its
    private key already made), or a torn receipt that ``revoke`` could not read."""
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    log = watch_disk(monkeypatch)
    made = keygen(tmp_path / "phone", "sora")
    assert_written_whole(log, made.public_key)
    assert hidden_files(tmp_path / "phone") == []
    machine = holder_machine(consent_world.workspace.registry)
    request = _request(consent_world)
    signed = machine.sign(request)
    assert_written_whole(log, machine.folder / "receipts" / f"{request.record_id}.json")
    assert machine.receipt(request.record_id) == signed
