"""Property-based tests of canonical serialisation (what is signed must be deterministic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from likeness.consent.canonical import canonical_bytes, canonical_sha256, parse_utc, utc_iso

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)


@given(json_values)
def test_canonical_round_trip(value):
    encoded = canonical_bytes(value)
    assert json.loads(encoded) == value
    assert canonical_bytes(json.loads(encoded)) == encoded


@given(st.dictionaries(st.text(max_size=8), json_scalars, max_size=8))
def test_key_order_does_not_change_the_digest(mapping):
    reordered = dict(reversed(list(mapping.items())))
    assert canonical_sha256(mapping) == canonical_sha256(reordered)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_scalars, min_size=1, max_size=8), st.data())
def test_any_change_changes_the_digest(mapping, data):
    key = data.draw(st.sampled_from(sorted(mapping)))
    changed = dict(mapping)
    changed[key] = [mapping[key]]
    assert canonical_sha256(changed) != canonical_sha256(mapping)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))
def test_timestamps_round_trip_at_second_precision(moment):
    text = utc_iso(moment)
    assert text.endswith("Z") and len(text) == 20
    assert parse_utc(text) == moment.replace(microsecond=0)
    assert utc_iso(parse_utc(text)) == text
