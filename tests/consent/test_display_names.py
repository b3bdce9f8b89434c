"""Display names read as themselves (trial 11): the portal asks a rights holder "{organisation}
asks for your consent" and the public card says "made by {organisation}", naming no slug. So a
second organisation named like the first (the same words, Cyrillic letters drawn as Latin ones,
a zero-width space, another case or spacing) could ask the first one's artists for grants under
its name; a right-to-left override reversed the sentence around a name. Before, every such name
was accepted as given."""

from __future__ import annotations

import pytest

from likeness.errors import OrganisationNameTaken, RegistryError
from tests.conftest import add_subject

#: The consent world's organisation is "Studio Haneul", its subjects "Mina" and "Jun".
LOOKALIKES = [
    "Studio Haneul",  # the same words
    "studio  haneul",  # case and spacing
    "Studio-Haneul",  # punctuation
    "Studio \u041d\u0430neul",  # Cyrillic En and a
    "Studio Hane\u00fal",  # an accent
    "\uff33tudio Haneul",  # a fullwidth S
    "Studio HaneuI",  # a capital i for the l
]
INVISIBLE = [
    "Studio Ha\u200bneul",  # zero-width space
    "Studio Haneul\u202e",  # right-to-left override
    "\u2066Studio\u2069 Haneul",  # isolates
    "Studio\u00adHaneul",  # soft hyphen
    "Studio Haneul\n(official)",
    "Studio\tHaneul",
    "",
    "   ",
]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_an_organisation_named_like_another_is_refused(consent_world, name):
    registry = consent_world.workspace.registry
    with pytest.raises(RegistryError, match="reads like 'Studio Haneul' \\(studio's\\)"):
        registry.add_org("rival", name)
    assert [org.slug for org in registry.list_orgs()] == ["studio"]  # nothing made, no key left
    assert not registry.org_key_path("rival").exists()


@pytest.mark.parametrize(
    ("slug", "name"),
    [
        ("rival", "Studio"),  # the name is the other's slug
        ("rival", "STUDIO"),
        ("studio_haneul", "Rival Agency"),  # the slug alone
    ],
)
def test_an_organisation_named_or_slugged_like_another_ones_slug_or_name_is_refused(consent_world, slug, name):
    """A second agency named "Studio" (the first's slug) beside "Studio Haneul" (slug studio)
    reads as the first wherever the portal or a file names the organisation."""
    registry = consent_world.workspace.registry
    with pytest.raises(OrganisationNameTaken, match=r"reads like organisation 'studio' \('Studio Haneul'\)") as refused:
        registry.add_org(slug, name)
    assert refused.value.other == "studio"
    assert [org.slug for org in registry.list_orgs()] == ["studio"]
    assert not registry.org_key_path(slug).exists()


@pytest.mark.parametrize("name", INVISIBLE)
def test_a_name_with_invisible_or_direction_changing_characters_is_refused(consent_world, name):
    registry = consent_world.workspace.registry
    with pytest.raises(RegistryError, match="organisation name"):
        registry.add_org("rival", name or " ")
    with pytest.raises(RegistryError, match="subject name"):
        add_subject(registry, "yuna", name or " ", kind="performer")
    assert "yuna" not in {s.slug for s in registry.list_subjects()}


@pytest.mark.parametrize("name", ["Mina", "MINA", "M\u0456na", "Mi\u200cna"])
def test_a_subject_named_like_another_is_refused(consent_world, name):
    registry = consent_world.workspace.registry
    with pytest.raises(RegistryError, match="subject name"):
        add_subject(registry, "mina-2", name, kind="performer")


def test_names_that_only_differ_in_what_people_see_are_kept(consent_world):
    registry = consent_world.workspace.registry
    assert registry.add_org("rival", "  Rival Entertainment ").name == "Rival Entertainment"  # stripped
    assert add_subject(registry, "mina-k", "Mina K.", kind="performer", org="studio").name == "Mina K."
    decomposed = "Jo\u0301se\u0301"  # NFD: stored as NFC, so the card and the font cut agree
    assert add_subject(registry, "jose", decomposed, kind="performer", org="studio").name == "Jós\u00e9"
    assert add_subject(registry, "haneul", "하늘", kind="performer", org="studio").name == "하늘"


@pytest.mark.parametrize("purpose", ["Fan message \u202egnidnuf lacitilop", "Debut\u200bMV", "MV\x1b[2J", "a\rb"])
def test_a_request_purpose_that_reads_otherwise_than_signed_is_refused_when_drafted(consent_world, purpose):
    """The portal shows a grant request's purpose as written, and the holder signs the text as
    stored: a right-to-left override or an invisible character makes the two differ."""
    from datetime import timedelta

    from likeness.consent.canonical import now_utc

    registry = consent_world.workspace.registry
    until = now_utc() + timedelta(days=30)
    before = consent_world.workspace.ledger.count()
    with pytest.raises(RegistryError, match="purpose .*: holds U\\+"):
        registry.draft_grant("mina", "studio", ["fan_message"], valid_until=until, purpose=purpose)
    with pytest.raises(RegistryError, match="purpose .*: holds U\\+"):
        registry.request_release("jun", "studio", valid_until=until, purpose=purpose)
    assert consent_world.workspace.ledger.count() == before  # nothing drafted
    lines = "Debut MV\nsecond line, 한국어"
    assert registry.draft_grant("mina", "studio", ["fan_message"], valid_until=until, purpose=lines).purpose == lines
