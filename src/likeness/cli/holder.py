"""CLI for the rights holder's own machine: make a key, read and sign a request, revoke.

None of these commands opens a workspace: they run where the holder keeps their key (an
air-gapped machine is fine), and only ``*.pub.pem`` and signed files travel to the organisation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from likeness import strict_json
from likeness.cli.common import console, fail, mapped_errors, printable, read_input, write_new_json

Parsed = TypeVar("Parsed")

holder_app = typer.Typer(
    help="For rights holders, on their own machine: keygen, sign a consent request or an adoption, revoke, vouch "
    "for a passkey.",
    no_args_is_help=True,
)

KeyOption = Annotated[Path, typer.Option("--key", help="Your Ed25519 private key (from 'likeness holder keygen').")]


def read_json(path: Path) -> Any:
    from likeness.errors import ConsentRequestError

    try:
        return strict_json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConsentRequestError(f"{path}: no such file") from None
    except OSError as exc:  # a folder, an unreadable file
        raise ConsentRequestError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConsentRequestError(f"{path}: not JSON ({exc})") from None


def read_consent_file(path: Path, parse: Callable[[Any], Parsed]) -> Parsed:
    """``parse`` (a ``from_json``) of the JSON in ``path``; its refusal names the file."""
    from likeness.errors import ConsentRequestError

    data = read_json(path)
    try:
        return parse(data)
    except ConsentRequestError as exc:
        raise ConsentRequestError(f"{path}: {exc}") from None


@holder_app.command("keygen")
def holder_keygen(
    out: Annotated[Path, typer.Option("--out", help="Folder on your own machine for the key pair.")],
    name: Annotated[str, typer.Option("--name", help="File name of the key pair (NAME.pem, NAME.pub.pem).")] = "holder",
) -> None:
    """Create your Ed25519 key pair: the private key (0600) stays here; give the .pub.pem to
    the organisation. Refused inside a likeness workspace."""
    from likeness.consent.holder import keygen

    with mapped_errors():
        files = keygen(out, name)
    console.print(f"private key {printable(files.private_key)} (0600: keep it here, never send it)")
    console.print(f"public key  {printable(files.public_key)} (give this to the organisation)")
    console.print(f"fingerprint {files.fingerprint}")


@holder_app.command("sign")
def holder_sign(
    request: Annotated[Path, typer.Argument(help="The request file the organisation sent (REQUEST.json).")],
    key: KeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed consent (SIGNED.json).")],
    previews: Annotated[
        Path | None, typer.Option("--previews", help="Folder with the preview stills; their digests are checked.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Sign without asking (you have read the request).")] = False,
) -> None:
    """Show a consent request in plain language and, once you confirm, sign it with your key."""
    from likeness.consent.grant_requests import ConsentRequest, describe, preview_problems, signable_request
    from likeness.consent.holder import sign_request

    def check_previews(parsed: ConsentRequest) -> None:
        if previews is None:
            return
        problems = preview_problems(parsed, previews)
        if problems:
            fail("preview stills do not match the request: " + "; ".join(problems))
        console.print(
            f"preview stills in {printable(previews)}: all {len(parsed.signed_previews)} the request signs are there"
        )

    parsed = _show_and_sign(
        request,
        key,
        out,
        yes,
        parse=signable_request,
        addressed_to=lambda parsed: str(parsed.payload.get("holder_fingerprint")),
        describe=describe,
        check=check_previews,
        sign=sign_request,
        question=lambda parsed: f"Sign this {parsed.kind}",
        refused="not signed",
        what="request",
    )
    console.print(f"signed {parsed.kind} {printable(parsed.record_id)} → {printable(out)} (send this file back)")


def _confirmed(question: str) -> bool:
    """The holder's yes or no; with nothing to read the answer from (no terminal, empty input),
    say how to sign instead of Click's bare 'Aborted!'."""
    try:
        return typer.confirm(question, default=False)
    except (typer.Abort, click.exceptions.Abort):
        fail("no answer to the question (no terminal?): read the request above, then sign with --yes")
        raise  # unreachable: fail() exits


@holder_app.command("revoke")
def holder_revoke(
    signed_file: Annotated[Path, typer.Argument(help="The signed grant or release you gave earlier (SIGNED.json).")],
    key: KeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed revocation.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the organisation's ledger).")] = "",
) -> None:
    """Sign the revocation of a grant or release you signed; it takes effect when imported."""
    from likeness.consent.grant_requests import SignedConsent
    from likeness.consent.holder import load_holder_key, sign_revocation

    with mapped_errors():
        signed = read_consent_file(signed_file, SignedConsent.from_json)
        revocation = sign_revocation(signed, load_holder_key(key), reason=reason)
        write_new_json(out, revocation.as_json())
    console.print(f"revocation signed → {printable(out)} (the organisation imports it with 'likeness consent import')")


@holder_app.command("rotate")
def holder_rotate(
    signed_file: Annotated[Path, typer.Argument(help="A grant or release you signed (it names you as holder).")],
    key: KeyOption,
    new_public_key: Annotated[
        Path, typer.Option("--new-public-key", help="Your new public key (.pub.pem from 'likeness holder keygen').")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed key rotation.")],
) -> None:
    """Move to a new key, signed with your current key; the organisation imports it with
    'likeness consent import'. What the old key signed stays valid; from then on only the new
    key signs for you."""
    from likeness.consent.grant_requests import SignedConsent
    from likeness.consent.holder import load_holder_key, sign_rotation

    with mapped_errors():
        signed = read_consent_file(signed_file, SignedConsent.from_json)
        rotation = sign_rotation(signed, load_holder_key(key), read_input(new_public_key, "new public key"))
        write_new_json(out, rotation.as_json())
    console.print(f"key rotation signed → {printable(out)} (new key {rotation.payload['key_fingerprint']})")


@holder_app.command("vouch-passkey")
def holder_vouch_passkey(
    statement: Annotated[
        Path, typer.Argument(help="The passkey registration statement the organisation sent (STATEMENT.json).")
    ],
    key: KeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed vouch.")],
    yes: Annotated[bool, typer.Option("--yes", help="Vouch without asking (you have read the statement).")] = False,
) -> None:
    """Show a passkey registration statement and, once you confirm, vouch with your key that
    the passkey is yours; the organisation imports it with 'likeness consent import'. From then
    on that passkey signs in your name in the portal, as your key does."""
    from likeness.consent.holder import describe_vouch, sign_vouch
    from likeness.consent.passkeys import vouch_malformed

    parsed = _show_and_sign(
        statement,
        key,
        out,
        yes,
        parse=_statement(vouch_malformed),
        addressed_to=_holder_fingerprint,
        describe=describe_vouch,
        sign=sign_vouch,
        question=lambda _: "Vouch for this passkey",
        refused="not vouched",
        what="statement",
    )
    console.print(
        f"passkey {printable(parsed['key_fingerprint'])} vouched for → {printable(out)} (send this file back)"
    )


@holder_app.command("sign-adoption")
def holder_sign_adoption(
    adoption: Annotated[Path, typer.Argument(help="The adoption the organisation sent (ADOPTION.json).")],
    key: KeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed adoption.")],
    yes: Annotated[bool, typer.Option("--yes", help="Sign without asking (you have read the adoption).")] = False,
) -> None:
    """Show an organisation's adoption (it says it enrolled you) and, once you confirm, sign it
    with your key; the organisation imports it with 'likeness consent import'. An adoption
    without your signature counts for nothing."""
    from likeness.consent.holder import describe_adoption, sign_adoption
    from likeness.consent.registry import adoption_malformed

    _show_and_sign(
        adoption,
        key,
        out,
        yes,
        parse=_statement(adoption_malformed),
        addressed_to=_holder_fingerprint,
        describe=describe_adoption,
        sign=sign_adoption,
        question=lambda _: "Sign this adoption",
        refused="not signed",
        what="adoption",
    )
    console.print(f"adoption signed → {printable(out)} (send this file back)")


def _show_and_sign(
    path: Path,
    key: Path,
    out: Path,
    yes: bool,
    *,
    parse: Callable[[Any], Parsed],
    addressed_to: Callable[[Parsed], str],
    describe: Callable[[Parsed], list[str]],
    sign: Callable[[Parsed, Any], Any],
    question: Callable[[Parsed], str],
    refused: str,
    what: str,
    check: Callable[[Parsed], None] | None = None,
) -> Parsed:
    """Read what the organisation sent in ``path`` (``parse``), show it in plain words, run
    ``check`` on it, and once the holder confirms (or ``yes``) sign it with their key into
    ``out``; returns what was read. A file ``parse`` refuses is refused before anything is shown
    (the holder is never asked to sign a page of blanks), and a key it is not addressed to
    (``addressed_to``: the holder key fingerprint it names) before the holder reads and confirms."""
    from likeness.consent.holder import check_addressed, load_holder_key

    with mapped_errors():
        parsed = read_consent_file(path, parse)
        signing_key = load_holder_key(key)
        check_addressed(addressed_to(parsed), signing_key, what)
        for line in describe(parsed):
            console.print(printable(line))  # the organisation's text: no terminal escape may redraw it
        if check is not None:
            check(parsed)
        if not yes and not _confirmed(f"{question(parsed)} with {printable(key)}?"):
            fail(refused, code=1)
        write_new_json(out, sign(parsed, signing_key).as_json())
    return parsed


def _statement(malformed: Callable[[Any], str | None]) -> Callable[[Any], dict[str, Any]]:
    """A ``parse`` for a statement kept as its JSON object, refused where ``malformed`` says why."""
    from likeness.consent.grant_requests import SIGNED_TYPE
    from likeness.errors import ConsentRequestError

    def parse(data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("type") == SIGNED_TYPE:
            raise ConsentRequestError(
                "already signed (a signed consent, not a statement to sign): nothing to sign; the organisation "
                "imports it with 'likeness consent import'"
            )
        why = malformed(data)
        if why:
            raise ConsentRequestError(why)
        return dict(data)

    return parse


def _holder_fingerprint(statement: dict[str, Any]) -> str:
    return str(statement.get("holder_fingerprint"))


def register(app: typer.Typer) -> None:
    app.add_typer(holder_app, name="holder")
