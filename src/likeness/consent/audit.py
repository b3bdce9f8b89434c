"""``audit verify`` as a library call: the hash chain, the anchors kept outside the workspace,
the consent rows against their ledger events, and the database's append-only guards.

Example::

    report = audit_workspace(workspace)          # anchor folders from Settings.anchor_dirs
    if not report.ok:
        for problem in report.problems:
            print(problem.kind, problem.subject, problem.message)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from likeness.consent.anchor import (
    Anchor,
    AnchorStore,
    FolderAnchors,
    Problem,
    check_anchor,
    latest,
    outside_workspace,
    read_anchor,
)
from likeness.consent.integrity import ADOPTED, consent_recoveries, consent_row_problems, ownerless_holders
from likeness.consent.key_migration import legacy_keys_warning
from likeness.consent.ledger import ChainReport, watermark_index_problems
from likeness.errors import ConfigError, LedgerError, LedgerRowUnreadable, RegistryError

if TYPE_CHECKING:
    from likeness.workspace import Workspace

# The append-only guards the migrations create: trigger name -> (table, statements it refuses).
SQLITE_GUARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ledger_no_update": ("ledger", ("UPDATE",)),
    "ledger_no_delete": ("ledger", ("DELETE",)),
}
POSTGRES_GUARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ledger_append_only": ("ledger", ("UPDATE", "DELETE", "TRUNCATE")),
}
# pg_trigger.tgtype bits (see PostgreSQL's catalog/pg_trigger.h).
_PG_BEFORE = 1 << 1
_PG_EVENT_BITS = {"DELETE": 1 << 3, "UPDATE": 1 << 4, "TRUNCATE": 1 << 5}

T = TypeVar("T")

NO_ANCHOR_WARNING = (
    "no anchor: a truncated or rewritten tail of the ledger cannot be detected; keep signed heads "
    "outside the workspace with 'likeness audit anchor --to DIR' (or set LIKENESS_ANCHOR_DIRS)"
)


@dataclass(frozen=True)
class AuditReport:
    """Everything ``audit verify`` found. ``ok`` is true when there is no problem; warnings
    (no anchor, a database role that could drop the guards) do not make it false."""

    chain: ChainReport
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]
    anchor: Anchor | None  # the latest anchor the ledger was checked against
    anchors_found: int
    #: key and passkey recoveries and adoptions, described (``integrity.Recovery``): rare events to check
    #: with the holders
    recoveries: tuple[str, ...] = ()
    #: adoptions of holders the ledger named no onboarding organisation for, described the same way
    adoptions: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def failure_summary(self) -> str:
        """What failed, for the headline after the problems: a broken hash chain (the ledger
        itself was changed) is told apart from an intact chain whose consent rows, anchors or
        guards disagree with it (rows beside the ledger were changed, or the tail was cut)."""
        count = f"{len(self.problems)} problem(s)"
        if not self.chain.ok:
            return f"hash chain broken at ledger row {self.chain.broken_seq}; {count}"
        return (
            f"hash chain intact ({self.chain.rows} rows), but {count} in the consent rows, anchors or guards "
            "checked against it"
        )


def anchor_stores(folders: Sequence[Path], home: Path) -> list[AnchorStore]:
    """One store per folder; ``ConfigError`` for a folder inside the workspace."""
    return [FolderAnchors(outside_workspace(folder, home)) for folder in folders]


def audit_workspace(
    workspace: Workspace,
    *,
    anchor_dirs: Sequence[Path] | None = None,
    head_files: Sequence[Path] = (),
) -> AuditReport:
    """Check the workspace's ledger and consent rows; never raises for what it finds.

    ``anchor_dirs`` defaults to ``Settings.anchor_dirs``, where no anchor at all is a warning;
    a folder named in ``anchor_dirs`` that holds no anchor is a problem (``anchor_missing``):
    whoever names a folder expects the ledger to be checked against it. ``head_files`` are
    heads exported with ``audit head --out``, each checked like an anchor.
    """
    chain = workspace.ledger.verify()
    problems: list[Problem] = []
    warnings: list[str] = []
    if not chain.ok:
        problems.append(Problem("chain_broken", f"ledger row {chain.broken_seq}", chain.problem or ""))
    problems += append_only_problems(workspace.engine)
    warnings += role_warnings(workspace.engine)
    for check in (consent_problems, watermark_index_audit, detector_problems):
        problems += _unless_unreadable(check, workspace, problems)
    legacy_keys = legacy_keys_warning(workspace.keys_dir)
    if legacy_keys:
        warnings.append(legacy_keys)

    named = anchor_dirs is not None
    folders = workspace.settings.anchor_dirs if anchor_dirs is None else anchor_dirs
    anchors: list[Anchor] = []
    for folder, store in zip(folders, anchor_stores(folders, workspace.home), strict=True):
        found, unreadable = store.anchors()
        anchors += found
        problems += unreadable
        if named and not found and not unreadable:
            problems.append(no_anchor_in(folder))
    newest = latest(anchors)
    if newest is None:
        warnings.append(NO_ANCHOR_WARNING)
    else:
        problems += _anchor_problems(workspace, newest, anchors)
    for path in head_files:
        try:
            head = read_anchor(path)
        except ConfigError as exc:
            problems.append(Problem("anchor_unreadable", str(path), str(exc)))
            continue
        problems += check_head_file(workspace, head)
    warnings += _unless_unreadable_notes(ownerless_holders, workspace)
    signed = _unless_unreadable_notes(consent_recoveries, workspace)
    return AuditReport(
        chain,
        tuple(problems),
        tuple(warnings),
        newest,
        len(anchors),
        recoveries=tuple(r.describe() for r in signed if r.what != ADOPTED),
        adoptions=tuple(r.describe() for r in signed if r.what == ADOPTED),
    )


def _unless_unreadable_notes(read: Callable[[Workspace], list[T]], workspace: Workspace) -> list[T]:
    """What ``read`` lists for the report beside its problems; nothing where a ledger row it
    reads cannot be read (named already as a problem by the consent check)."""
    try:
        return read(workspace)
    except LedgerRowUnreadable:
        return []


def _unless_unreadable(
    check: Callable[[Workspace], list[Problem]], workspace: Workspace, found: list[Problem]
) -> list[Problem]:
    """``check``'s problems; a ledger row it cannot read ends it and is the problem, named once
    (those checks read events of every row of their kinds)."""
    try:
        return check(workspace)
    except LedgerRowUnreadable as exc:
        problem = Problem("ledger_unreadable", f"ledger row {exc.seq}", exc.problem)
        return [] if problem in found else [problem]


def no_anchor_in(folder: Path) -> Problem:
    """The problem for an explicitly named anchor folder without an anchor file."""
    return Problem(
        "anchor_missing",
        str(folder),
        f"no anchor in {folder}: the ledger cannot be checked against it (is it the folder "
        f"'likeness audit anchor --to' wrote to?)",
    )


def check_head_file(workspace: Workspace, head: Anchor) -> list[Problem]:
    """One anchor or exported head against this workspace's ledger."""
    return check_anchor(head, ledger=workspace.ledger, org_public_key=_org_key(workspace, head))


def anchor_workspace(
    workspace: Workspace, *, folders: Sequence[Path] | None = None, org: str | None = None
) -> tuple[dict, list[str]]:
    """Sign the ledger head and keep it in every folder (default ``Settings.anchor_dirs``).

    Returns the signed head and where it was written. Refused (``ConfigError``) without a
    folder or with one inside the workspace, and (``LedgerError``) when the chain is broken or
    the ledger no longer holds the folders' latest anchor: an anchor vouches for the ledger as
    it is, so it is never taken over a ledger that has already been tampered with.
    """
    chosen = workspace.settings.anchor_dirs if folders is None else folders
    if not chosen:
        raise ConfigError("no anchor folder: give --to DIR (outside the workspace) or set LIKENESS_ANCHOR_DIRS")
    stores = anchor_stores(chosen, workspace.home)
    chain = workspace.ledger.verify()
    if not chain.ok:
        raise LedgerError(f"ledger broken at row {chain.broken_seq}: {chain.problem}; refusing to anchor it")
    previous = latest([a for store in stores for a in store.anchors()[0]])
    if previous is not None:
        disagree = check_head_file(workspace, previous)
        if disagree:
            raise LedgerError(f"{disagree[0].subject}: {disagree[0].message}; refusing to anchor over it")
    head = workspace.signed_head(org)
    return head, [store.put(head) for store in stores]


def _anchor_problems(workspace: Workspace, newest: Anchor, anchors: list[Anchor]) -> list[Problem]:
    """The latest anchor's problems; when it holds, the first older anchor that does not (a
    newer anchor signed after a rewrite does not excuse the rewrite)."""
    found = check_head_file(workspace, newest)
    if found:
        return found
    seen = {(newest.seq, newest.head.get("hash"), newest.head.get("key_fingerprint"))}
    for anchor in sorted(anchors, key=lambda a: (a.seq, a.at), reverse=True):
        key = (anchor.seq, anchor.head.get("hash"), anchor.head.get("key_fingerprint"))
        if key in seen:
            continue
        seen.add(key)
        older = check_head_file(workspace, anchor)
        if older:
            return older
    return []


def _org_key(workspace: Workspace, anchor: Anchor) -> str | None:
    """The organisation row's public key: heads exported before heads carried their key."""
    if anchor.head.get("public_key"):
        return None
    try:
        return workspace.registry.get_org(str(anchor.head.get("org_id", ""))).public_key
    except RegistryError:
        return None


def consent_problems(workspace: Workspace) -> list[Problem]:
    """Consent rows (grants, releases, revocations, holder keys) that disagree with their
    ledger events, as ``likeness.consent.integrity`` finds them."""
    return [Problem(p.kind, p.record_id, p.problem) for p in consent_row_problems(workspace)]


def watermark_index_audit(workspace: Workspace) -> list[Problem]:
    """Rows of the watermark-payload index missing, extra or altered against the ledger."""
    with Session(workspace.engine) as session:
        return [Problem(p.kind, f"ledger row {p.seq}", p.problem) for p in watermark_index_problems(session)]


def detector_problems(workspace: Workspace) -> list[Problem]:
    """Registered manipulation detectors that verify would not use: files or ledger row no
    longer matching, or a withdrawal's row gone from under them (``detector_altered``); verify
    makes the same check at use. A withdrawal whose own row was edited is named too."""
    from likeness.detector.registered import (
        check_registered,
        registered_detectors,
        withdrawal_says,
        withdrawn_detectors,
    )
    from likeness.verify.gallery import open_gallery

    registered = registered_detectors(workspace)
    # Only read: on a read-only copy or mount the gallery is made in memory, as verify would sync it.
    gallery = open_gallery(workspace, save=False) if registered else None
    return [
        Problem("detector_altered", f"detector of {r.subject_slug}", why)
        for r in registered
        if isinstance(why := check_registered(workspace, r, gallery), str)
    ] + [
        Problem("detector_altered", f"detector of {w.subject_slug}", withdrawal_says(workspace, w))
        for w in withdrawn_detectors(workspace)
        if not workspace.ledger.intact(w.ledger_seq)
    ]


def append_only_problems(engine: Engine) -> list[Problem]:
    """The append-only triggers that are missing, disabled or changed."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return _sqlite_guard_problems(engine)
    if dialect == "postgresql":
        return _postgres_guard_problems(engine)
    return []


def _sqlite_guard_problems(engine: Engine) -> list[Problem]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
    present = {name: (table, " ".join(str(sql or "").upper().split())) for name, table, sql in rows}
    problems = []
    for name, (table, actions) in SQLITE_GUARDS.items():
        if name not in present:
            problems.append(_missing(name, table, actions))
            continue
        on_table, sql = present[name]
        wanted = [f"BEFORE {action} ON {table.upper()}" for action in actions]
        if on_table != table or "RAISE(ABORT" not in sql or not all(w in sql for w in wanted):
            problems.append(_changed(name, table, actions))
    return problems


def _postgres_guard_problems(engine: Engine) -> list[Problem]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT t.tgname, c.relname, t.tgenabled, t.tgtype, p.prosrc FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = to_regnamespace(current_schema())"
            )
        ).all()
    present = {name: (table, enabled, int(kind), str(source)) for name, table, enabled, kind, source in rows}
    problems = []
    for name, (table, actions) in POSTGRES_GUARDS.items():
        if name not in present:
            problems.append(_missing(name, table, actions))
            continue
        on_table, enabled, kind, source = present[name]
        if enabled == "D":
            problems.append(
                Problem(
                    "trigger_disabled",
                    name,
                    f"the append-only trigger {name} on {table} is disabled: {'/'.join(actions)} of its rows "
                    "would go through",
                )
            )
            continue
        refuses_all = bool(kind & _PG_BEFORE) and all(kind & _PG_EVENT_BITS[a] for a in actions)
        if on_table != table or not refuses_all or "RAISE EXCEPTION" not in source.upper():
            problems.append(_changed(name, table, actions))
    return problems


def _missing(name: str, table: str, actions: tuple[str, ...]) -> Problem:
    return Problem(
        "trigger_missing",
        name,
        f"the append-only trigger {name} on {table} is missing (it was dropped): "
        f"{'/'.join(actions)} of its rows would go through",
    )


def _changed(name: str, table: str, actions: tuple[str, ...]) -> Problem:
    return Problem(
        "trigger_altered",
        name,
        f"the append-only trigger {name} on {table} no longer refuses {'/'.join(actions)} as the migration created it",
    )


def role_warnings(engine: Engine) -> list[str]:
    """On PostgreSQL: a warning when this connection's role could lift the ledger's guards
    (superuser, owner of the ledger table, or holding UPDATE/DELETE/TRUNCATE on it)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        role, superuser, owner, writable = connection.execute(
            text(
                "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
                "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass('ledger')), 'USAGE'), "
                "has_table_privilege('ledger', 'UPDATE') OR has_table_privilege('ledger', 'DELETE') "
                "OR has_table_privilege('ledger', 'TRUNCATE')"
            )
        ).one()
    if not (superuser or owner or writable):
        return []
    what = "is a superuser" if superuser else "owns the ledger table" if owner else "may change ledger rows"
    return [
        f"database role '{role}' {what}: it could drop or bypass the append-only guards; the "
        "application should connect as a role set up with 'likeness db app-role-sql' "
        "(see docs/security.md)"
    ]
