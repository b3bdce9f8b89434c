"""Anchors: signed ledger heads kept outside the workspace.

The hash chain shows an edited, inserted or reordered row, but not a tail that was cut off or
rewritten from some row on: the shortened ledger is a valid chain. A signed head (sequence
number and hash of the newest row, see ``Workspace.signed_head``) written somewhere the
workspace's users cannot change catches both: if the ledger no longer has that row, its tail was
truncated; if the row's hash differs, the ledger was rewritten at or before it.

An anchor is one JSON file ``ledger-head-<seq>-<time>-<token>.json`` in an anchor folder. Files
accumulate (one per anchor, written atomically, never overwritten), so an anchor taken before an
attack survives whatever is anchored after it. The head carries the signer's public key; an
anchor counts only when that key is the organisation's key as recorded on the ledger.

Example::

    head = workspace.signed_head()
    path = FolderAnchors(outside_workspace(Path("/mnt/audit"), workspace.home)).put(head)
    problems = check_anchor(read_anchor(path), where=str(path), ledger=workspace.ledger)
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from likeness import strict_json
from likeness.consent.canonical import canonical_bytes
from likeness.consent.keys import fingerprint, verify
from likeness.consent.ledger import Ledger
from likeness.durable import write_atomic
from likeness.errors import ConfigError

HEAD_TYPE = "likeness.ledger-head.v1"
ANCHOR_GLOB = "ledger-head-*.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Problem:
    """One thing ``audit verify`` found wrong: a stable ``kind``, what it is about, and why."""

    kind: str
    subject: str
    message: str


@dataclass(frozen=True)
class Anchor:
    """A signed head read back from ``location`` (a file path, or a receipt's address)."""

    location: str
    head: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.head["seq"])

    @property
    def at(self) -> str:
        return str(self.head.get("at", ""))


class AnchorStore(Protocol):
    """Somewhere outside the workspace that keeps signed heads: a folder on another disk today,
    the holder portal's receipts later."""

    def put(self, head: dict[str, Any]) -> str:
        """Keep ``head`` as a new anchor (never replacing one); return where it is kept."""
        ...

    def anchors(self) -> tuple[list[Anchor], list[Problem]]:
        """Every anchor kept here, and a problem for each one that cannot be read."""
        ...


def outside_workspace(folder: Path, home: Path) -> Path:
    """``folder`` resolved, refused (``ConfigError``) when it lies inside the workspace ``home``:
    an anchor that the workspace's users can rewrite proves nothing."""
    resolved = folder.expanduser().resolve()
    workspace = home.expanduser().resolve()
    if resolved == workspace or resolved.is_relative_to(workspace):
        raise ConfigError(
            f"{resolved}: anchor folder is inside the workspace {workspace}; anchors must be kept "
            "outside it (another disk, another machine)"
        )
    return resolved


def anchor_file_name(head: dict[str, Any]) -> str:
    """``ledger-head-000000000042-20250101T120000Z-1a2b3c4d.json``: sorts by ledger position, and
    a random token keeps two anchors of the same head in the same second apart."""
    stamp = re.sub(r"[^0-9TZ]", "", str(head.get("at", "")))
    return f"ledger-head-{int(head['seq']):012d}-{stamp}-{secrets.token_hex(4)}.json"


@dataclass(frozen=True)
class FolderAnchors:
    """Anchors as files in one folder (which ``outside_workspace`` has approved)."""

    folder: Path

    def put(self, head: dict[str, Any]) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = write_atomic(
                self.folder / anchor_file_name(head), _anchor_text(head).encode("utf-8"), mode=0o644, overwrite=False
            )
        except OSError as exc:
            raise ConfigError(f"{self.folder}: cannot write an anchor there ({exc.strerror or exc})") from None
        return str(path)

    def latest(self) -> Anchor | None:
        """The newest readable anchor by file name (names sort by ledger row, then time), read
        without opening the older files; ``None`` when the folder holds none."""
        try:
            paths = sorted(self.folder.glob(ANCHOR_GLOB), reverse=True)
        except OSError:
            return None
        for path in paths:
            try:
                return read_anchor(path)
            except ConfigError:
                continue
        return None

    def anchors(self) -> tuple[list[Anchor], list[Problem]]:
        if not self.folder.is_dir():
            return [], [
                Problem(
                    "anchor_folder_missing",
                    str(self.folder),
                    "anchor folder is missing or not mounted; the ledger's tail cannot be checked",
                )
            ]
        found: list[Anchor] = []
        problems: list[Problem] = []
        for path in sorted(self.folder.glob(ANCHOR_GLOB)):
            try:
                found.append(read_anchor(path))
            except ConfigError as exc:
                problems.append(Problem("anchor_unreadable", str(path), str(exc)))
        return found, problems


def _anchor_text(head: dict[str, Any]) -> str:
    return json.dumps(head, indent=2, sort_keys=True) + "\n"


def read_anchor(path: Path) -> Anchor:
    """Read one anchor file; ``ConfigError`` naming the file when it is not a signed head."""
    try:
        head = strict_json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read anchor ({exc})") from None
    shape = head_shape_problem(head)
    if shape:
        raise ConfigError(f"{path}: not a signed ledger head ({shape})")
    return Anchor(str(path), head)


def head_shape_problem(head: Any) -> str | None:
    """``None`` when ``head`` has the fields of a signed head, else what is wrong with it."""
    if not isinstance(head, dict):
        return "expected a JSON object"
    if head.get("type") != HEAD_TYPE:
        return f"type is {head.get('type')!r}, expected {HEAD_TYPE!r}"
    seq = head.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "seq is not a row number"
    for name in ("org_id", "key_fingerprint", "signature", "hash"):
        if not isinstance(head.get(name), str):
            return f"{name} is missing"
    if not _HEX64.fullmatch(head["hash"]):
        return "hash is not 64 hex digits"
    return None


def ledger_org_fingerprint(ledger: Ledger, org_id: str) -> str | None:
    """The organisation's key fingerprint as its ``org.created`` event recorded it, when the
    workspace's own key file pins that key (``LedgerConsent.org_key``); else ``None``."""
    from likeness.consent.integrity import LedgerConsent  # (integrity imports the registry, which signs heads)

    with ledger.session() as session:
        key = LedgerConsent(session).org_key(org_id)
    return key[0] if key else None


def check_anchor(anchor: Anchor, *, ledger: Ledger, org_public_key: str | None = None) -> list[Problem]:
    """What is wrong between ``anchor`` and the ledger; empty when the ledger still holds it.

    The signature must verify with the key in the head (``org_public_key``, the organisation
    row's key as hex, stands in for heads exported before heads carried their key), and that
    key must be the organisation's key on the ledger. Then the anchored row must still be there
    with the anchored hash: a missing row means the tail was truncated, a different hash that it
    was rewritten.
    """
    where = anchor.location
    shape = head_shape_problem(anchor.head)
    if shape:
        return [Problem("anchor_unreadable", where, f"not a signed ledger head ({shape})")]
    body = {k: v for k, v in anchor.head.items() if k != "signature"}
    public_hex = str(body.get("public_key") or org_public_key or "")
    try:
        public_raw = bytes.fromhex(public_hex)
    except ValueError:
        public_raw = b""
    signed_fingerprint = str(body["key_fingerprint"])
    if (
        len(public_raw) != 32
        or fingerprint(public_raw) != signed_fingerprint
        or not verify(public_raw, canonical_bytes(body), str(anchor.head["signature"]))
    ):
        return [
            Problem(
                "anchor_signature_invalid",
                where,
                f"the anchor's signature does not verify with key {signed_fingerprint[:32]}…",
            )
        ]
    org_fingerprint = ledger_org_fingerprint(ledger, str(body["org_id"]))
    if org_fingerprint is None:
        return [
            Problem(
                "anchor_unknown_org",
                where,
                f"the anchor names organisation {body['org_id']}, which the ledger does not know or whose "
                "key no key file of this workspace pins",
            )
        ]
    seq = int(body["seq"])
    current = ledger.hash_at(seq) if seq else None
    if org_fingerprint != signed_fingerprint:
        held = seq == 0 or current == body["hash"]
        return [
            Problem(
                "anchor_wrong_key",
                where,
                f"the anchor is signed by key {signed_fingerprint[:32]}…, not by organisation "
                f"'{body.get('org', body['org_id'])}''s key {org_fingerprint[:32]}… on the ledger"
                + ("" if held else "; either the anchor is forged or the ledger was rewritten with a new key"),
            )
        ]
    if seq == 0:
        return []
    if current is None:
        last, _ = ledger.head()
        return [
            Problem(
                "tail_truncated",
                where,
                f"the anchor (taken {anchor.at}) holds ledger row {seq}, but the ledger ends at row "
                f"{last}: its tail was truncated (rows {last + 1} to {seq}, and any after, were removed)",
            )
        ]
    if current != body["hash"]:
        return [
            Problem(
                "tail_rewritten",
                where,
                f"ledger row {seq} differs from the anchor taken {anchor.at}: the ledger was "
                f"rewritten at or before row {seq}",
            )
        ]
    hashes = ledger.row_hashes(seq)
    if hashes is None or hashes[0] != hashes[1]:  # the stored hash was kept, the content edited
        return [
            Problem(
                "anchored_row_edited",
                where,
                f"ledger row {seq} (the row the anchor taken {anchor.at} holds) no longer matches its "
                f"own hash: its content was edited, or the row replaced, after the anchor was taken",
            )
        ]
    return []


def latest(anchors: list[Anchor]) -> Anchor | None:
    """The anchor of the newest ledger row (then the newest time)."""
    return max(anchors, key=lambda a: (a.seq, a.at), default=None)


class LedgerCheck(Protocol):
    """What the policy engine asks before a consent decision: ``None`` when the ledger still
    holds what was anchored, else the problem. ``fresh=False`` may answer from a recent check."""

    def __call__(self, *, fresh: bool = False) -> Problem | None: ...


class AnchoredLedgerCheck:
    """The ledger against the latest anchor in ``folders``, for the policy engine's decisions.

    A decision needs the ledger as anchored: with a revocation's event deleted and the chain
    rewritten from there, the rows still form a valid chain, and only an anchor taken after the
    revocation shows that the ledger lost it. ``__call__`` returns the first problem of the
    latest anchor (``check_anchor``: ``tail_truncated``, ``tail_rewritten``,
    ``anchored_row_edited``, ``anchor_signature_invalid``, ``anchor_wrong_key``,
    ``anchor_unknown_org``), then of the chain up to the anchored row (``rows_deleted``: a gap
    in the row numbers; ``chain_broken``: a row edited, inserted or re-linked), each naming the
    first broken row; ``None`` when it holds or when no folder holds an anchor.

    The anchored row's hash is recomputed at every check (one row). The walk up to it (a hash
    per row) runs once per anchor and ledger row count in this process and is cached: a check
    after rows were added or deleted, or against a new anchor, walks again. ``fresh=True``
    (issuing an authorization) always checks; otherwise (rechecks during a render) a result
    younger than ``max_age_s`` seconds is reused.
    """

    def __init__(
        self,
        folders: Sequence[Path],
        ledger: Ledger,
        *,
        org_public_key: Callable[[str], str | None] = lambda _org_id: None,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stores = [FolderAnchors(Path(folder)) for folder in folders]
        self.ledger = ledger
        self.max_age_s = max_age_s
        self._org_public_key = org_public_key
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Problem | None] | None = None
        # (anchor file, anchored row, anchored hash, ledger row count) -> the walk's problem
        self._walks: dict[tuple[str, int, str, int], Problem | None] = {}

    def __call__(self, *, fresh: bool = False) -> Problem | None:
        now = self._clock()
        with self._lock:
            last = self._last
        if not fresh and last is not None and now - last[0] < self.max_age_s:
            return last[1]
        problem = self._check()
        with self._lock:
            self._last = (now, problem)
        return problem

    def _check(self) -> Problem | None:
        anchor = latest([a for a in (store.latest() for store in self.stores) if a is not None])
        if anchor is None:
            return None
        org_key = None if anchor.head.get("public_key") else self._org_public_key(str(anchor.head.get("org_id")))
        problems = check_anchor(anchor, ledger=self.ledger, org_public_key=org_key)
        if problems:
            return problems[0]
        if anchor.seq == 0:
            return None
        key = (anchor.location, anchor.seq, str(anchor.head["hash"]), self.ledger.count())
        with self._lock:
            if key in self._walks:
                return self._walks[key]
        problem = chain_problem(anchor, self.ledger)
        with self._lock:
            self._walks = {key: problem}  # only the latest anchor and row count matter
        return problem


def chain_problem(anchor: Anchor, ledger: Ledger) -> Problem | None:
    """The first broken row of the chain up to ``anchor``'s row (seq continuity, previous
    hashes, hashes recomputed from content), or ``None`` when it leads intact to the anchored
    hash. ``rows_deleted`` for a gap in the row numbers, else ``chain_broken``."""
    report = ledger.verify(through=anchor.seq)
    if report.ok and report.rows == anchor.seq and report.head_hash == anchor.head["hash"]:
        return None
    if not report.ok:
        kind = "rows_deleted" if report.cause == "sequence" else "chain_broken"
        return Problem(
            kind,
            anchor.location,
            f"the chain up to anchored row {anchor.seq} (anchor taken {anchor.at}) breaks at "
            f"ledger row {report.broken_seq}: {report.problem}",
        )
    return Problem(
        "rows_deleted",
        anchor.location,
        f"the anchor (taken {anchor.at}) holds ledger row {anchor.seq}, but only {report.rows} rows "
        f"lead up to it: {anchor.seq - report.rows} rows before it were deleted",
    )
