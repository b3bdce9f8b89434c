"""Where sealing began, pinned outside the database.

The sealing markers (``registry.SEALING_MARKERS``) are ledger rows. A database editor can
delete them and recompute the hash chain; the next command that writes puts fresh ones at the
tail, and everything before them reads as written before sealing began (unsigned references,
subjects and holders, and invitation claims, counted again). So the workspace pins, in its key
folder, which a database editor cannot write, the event type, ledger row, row hash and the
hash of the row before it of the first valid marker of each kind, as its key files pin the first
``org.created`` (``keys.OrgKeyPins``). Reading takes the earlier of the pinned row and the first
valid marker on the ledger as where sealing began (``LedgerConsent.sealing_marker``); a pinned
row that is gone or holds another row is named by ``likeness audit verify``, and reading stays
strict from it, or from the ledger's first row where the rows before it changed too: deleting
rows renumbers the later ones, so an event written after the marker can land before its row.
Rows and hashes are public facts: a copy of the workspace without private keys reads them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes
from likeness.durable import write_atomic
from likeness.errors import ConfigError

#: What a pin file is.
PINS_TYPE = "likeness.sealing-marker-pins.v1"
#: ``Session.info`` member holding the workspace's :class:`MarkerPins` (its session factory sets it).
MARKER_PINS = "likeness.sealing_marker_pins"
_WHAT = "sealing marker pin file"


def marker_pins_file(keys_dir: Path) -> Path:
    """Where the workspace's sealing marker pins live: beside its organisation key pins."""
    return keys_dir / "orgs" / "sealing-markers.json"


@dataclass(frozen=True)
class MarkerPin:
    """The first valid sealing marker ``event_type`` as the workspace found it: ledger row
    ``seq``, whose hash was ``hash`` and the hash of the row before it ``prev_hash``."""

    event_type: str
    seq: int
    hash: str
    prev_hash: str

    def as_payload(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "seq": self.seq, "hash": self.hash, "prev_hash": self.prev_hash}


def _pin_of(item: Any) -> MarkerPin:
    if not isinstance(item, dict) or set(item) != {"event_type", "seq", "hash", "prev_hash"}:
        raise ValueError("a pin is an object of event_type, seq, hash and prev_hash")
    seq = item["seq"]
    if not isinstance(item["event_type"], str) or type(seq) is not int or seq < 1:
        raise ValueError("a pin names an event type and a ledger row from 1")
    for digest in (item["hash"], item["prev_hash"]):
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ValueError("a pin's hashes are 64 lowercase hex digits")
    return MarkerPin(item["event_type"], seq, item["hash"], item["prev_hash"])


def pins_of(text: bytes) -> dict[str, MarkerPin]:
    """The pins a pin file holds, by event type (pure; ``ValueError`` saying why it is not one).
    Of two pins of one kind the earlier row counts: reading is strict from it."""
    document = strict_json.loads(text)
    if (
        not isinstance(document, dict)
        or document.get("type") != PINS_TYPE
        or not isinstance(document.get("markers"), list)
    ):
        raise ValueError(f"not a {PINS_TYPE} document")
    out: dict[str, MarkerPin] = {}
    for pin in map(_pin_of, document["markers"]):
        if pin.event_type not in out or pin.seq < out[pin.event_type].seq:
            out[pin.event_type] = pin
    return out


def pins_document(pins: Iterable[MarkerPin]) -> bytes:
    """The pin file holding ``pins`` (pure)."""
    markers = [p.as_payload() for p in sorted(pins, key=lambda p: (p.seq, p.event_type))]
    return canonical_bytes({"type": PINS_TYPE, "markers": markers})


class MarkerPins:
    """The workspace's sealing marker pins (``marker_pins_file``), read again only when the
    file or its folders change."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = marker_pins_file(keys_dir)
        self._keys_dir = keys_dir
        self._lock = threading.Lock()
        self._seen: tuple[object, dict[str, MarkerPin], str | None] | None = None

    def read(self) -> dict[str, MarkerPin]:
        """The pins by event type (empty where there is no file); ``ConfigError`` naming the
        file and why when it is not used (not the workspace account's, a link, not a pin
        file): then nothing is pinned, and ``likeness audit verify`` says so."""
        identity = tuple(map(keys.file_identity, (self._keys_dir, self.path.parent, self.path)))
        with self._lock:
            seen = self._seen
        if seen is None or seen[0] != identity:
            seen = (identity, *self._load())
            with self._lock:
                self._seen = seen
        if seen[2] is not None:
            raise ConfigError(seen[2])
        return dict(seen[1])

    def _load(self) -> tuple[dict[str, MarkerPin], str | None]:
        if not os.path.lexists(self.path):  # (nor, before a first organisation, its folder)
            return {}, None
        try:
            text = keys.read_placed_file(self.path, _WHAT)
        except FileNotFoundError:
            return {}, None
        except ConfigError as exc:
            return {}, str(exc)
        try:
            return pins_of(text), None
        except ValueError as exc:
            return {}, f"{self.path}: {_WHAT} is not used: {exc}"

    def record(self, found: Iterable[MarkerPin]) -> list[MarkerPin]:
        """Pin each of ``found`` whose kind has no pin yet, in one atomic write of the file
        (mode 0600); the pins added. A kind pinned already keeps its pin: a marker written
        again after the first was deleted is later than it. ``ConfigError`` when the file
        cannot be read or written."""
        current = self.read()
        added = [pin for pin in found if pin.event_type not in current]
        if added:
            write_atomic(
                self.path,
                pins_document([*current.values(), *added]),
                mode=0o600,
                error=lambda exc: ConfigError(f"{self.path}: cannot write the {_WHAT} ({exc.strerror})"),
            )
        return added
