"""The public page's font cut is worked out from its own workspace's names, never from a
workspace collected before it."""

from __future__ import annotations

from types import SimpleNamespace

from likeness.service import public
from likeness.service.public import page_names

GENESIS = (0, "0" * 64)


class NamesOnly:
    """A workspace as ``page_names`` reads it: a ledger head and organisation names."""

    def __init__(self, org: str) -> None:
        self.ledger = SimpleNamespace(head=lambda: GENESIS)
        self.registry = SimpleNamespace(list_orgs=lambda: [SimpleNamespace(name=org)], list_subjects=lambda: [])


def services_of(workspace: NamesOnly) -> SimpleNamespace:
    return SimpleNamespace(workspace=workspace, page_names_at=None)


def test_a_new_workspace_gets_its_own_page_names(monkeypatch):
    # CPython hands a collected object's address to the next one of its size; a constant id()
    # stands for that reuse (both ledgers at the same head, as two new workspaces are).
    monkeypatch.setattr(public, "id", lambda _obj: 1, raising=False)
    assert page_names(services_of(NamesOnly("Alpha"))) == "Aahlp"
    assert page_names(services_of(NamesOnly("Zulu 한"))) == " Zlu한"


def test_page_names_are_worked_out_again_when_the_ledger_moves():
    workspace = NamesOnly("Alpha")
    services = services_of(workspace)
    assert page_names(services) == "Aahlp"
    workspace.registry.list_orgs = lambda: [SimpleNamespace(name="Beta")]
    assert page_names(services) == "Aahlp"  # same head: the kept answer
    workspace.ledger.head = lambda: (1, "1" * 64)
    assert page_names(services) == "Baet"
