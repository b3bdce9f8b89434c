"""Consent refusal reasons are one enumeration, used everywhere and listed in full in the docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from likeness.consent import integrity, policy
from likeness.errors import ConsentError, ConsentReason
from likeness.train import swap_model

ROOT = Path(__file__).resolve().parents[2]


def _documented_reasons() -> list[str]:
    text = (ROOT / "docs" / "consent.md").read_text(encoding="utf-8")
    section = text.split("## Refusal reasons", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


def test_docs_list_every_reason_once() -> None:
    documented = _documented_reasons()
    assert len(documented) == len(set(documented))
    assert set(documented) == {reason.value for reason in ConsentReason}


def _literal_reasons() -> set[str]:
    """String literals passed as the reason of ConsentError, Finding or PolicyEngine._refusal."""
    found: set[str] = set()
    for path in (ROOT / "src" / "likeness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if name in {"ConsentError", "Finding", "_refusal"} and isinstance(first, ast.Constant):
                found.add(first.value)
    return found


def test_every_reason_raised_is_in_the_enumeration() -> None:
    reasons = {reason.value for reason in ConsentReason}
    literal = _literal_reasons()
    assert literal, "the scan found no reasons"
    assert literal <= reasons, literal - reasons
    assert set(policy._MESSAGES) <= reasons
    assert set(policy._REASON_ORDER) <= reasons
    for triple in integrity._RECORD_REASONS.values():
        assert set(triple) <= reasons
    assert set(swap_model._GRANT_STATE_REASON.values()) <= reasons


def test_an_unknown_reason_is_a_programming_error() -> None:
    assert ConsentError(ConsentReason.REVOKED, "x").reason == "revoked"
    assert type(ConsentError("revoked", "x").reason) is str
    with pytest.raises(ValueError):
        ConsentError("not_a_reason", "x")
