"""One JSON reader for text from outside the process: an object naming a member twice is refused
(Python's reader kept the last value, SQLite's and many JavaScript tools' the first)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest

from likeness import strict_json
from likeness.errors import ModelError


def test_an_object_naming_a_member_twice_is_refused_at_any_depth() -> None:
    for text in ('{"uses": ["mv"], "uses": ["ads"]}', '[{"a": {"uses": 1, "uses": 1}}]', b'{"a": 1, "a": 2}'):
        with pytest.raises(strict_json.DuplicateMemberError) as refused:
            strict_json.loads(text)
        assert isinstance(refused.value, json.JSONDecodeError)  # every "not JSON" handler catches it
    assert refused.value.member == "a" and "duplicate member name 'a'" in str(refused.value)
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)


def test_a_member_named_twice_is_refused_with_where_its_second_name_is() -> None:
    """The refusal said which member but not where: in a long file (a model card, a signed
    consent) or a request body, the reader had to search for it."""
    text = '{\n  "grant": {\n    "uses": ["mv"],\n    "note": "a, [b] {c} \\"uses\\"",\n    "uses": ["ads"]\n  }\n}'
    with pytest.raises(strict_json.DuplicateMemberError) as refused:
        strict_json.loads(text)
    assert (refused.value.lineno, refused.value.colno, refused.value.path) == (5, 5, "$.grant.uses")
    assert str(refused.value) == "duplicate member name 'uses' at $.grant.uses: line 5 column 5 (char 74)"
    assert text[refused.value.pos :].startswith('"uses": ["ads"]')
    # in arrays, under names that are not identifiers, in UTF-16 bytes: the same
    for doc, path in (
        ('[0, {"a": [1, {"x y": {"k": 1, "k": 2}}]}]', '$[1].a[1]["x y"].k'),
        ('{"a": {"b": 1}, "a": 2}', "$.a"),
    ):
        for form in (doc, doc.encode("utf-16")):
            with pytest.raises(strict_json.DuplicateMemberError) as refused:
                strict_json.loads(form)
            assert refused.value.path == path and doc[refused.value.pos :].startswith(f'"{path[-1]}"'), refused.value
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)


def test_one_name_in_different_objects_is_fine() -> None:
    assert strict_json.loads('{"a": {"uses": 1}, "b": {"uses": 2}, "c": [{"uses": 3}]}') == {
        "a": {"uses": 1},
        "b": {"uses": 2},
        "c": [{"uses": 3}],
    }


def test_a_long_member_name_is_shown_cut() -> None:
    name = "k" * 100_000
    with pytest.raises(strict_json.DuplicateMemberError) as refused:
        strict_json.loads(json.dumps({name: 1})[:-1] + f', "{name}": 2}}')
    assert len(str(refused.value)) < 200 and "100000 characters" in str(refused.value)


def test_a_member_named_twice_with_a_lone_surrogate_is_refused_in_text_that_can_be_written() -> None:
    """The path wrote the name as JSON text: a lone surrogate (``"\\ud800"``) went into the
    message raw, so a request body naming it twice was a 500 (the 422 could not be encoded)."""
    with pytest.raises(strict_json.DuplicateMemberError) as refused:
        strict_json.loads('{"\\ud800 이름": 1, "\\ud800 이름": 2}')
    message = str(refused.value)
    message.encode("utf-8")  # UnicodeEncodeError before
    assert refused.value.path == '$["\\ud800 이름"]', message  # Hangul kept as written


def test_a_detector_card_naming_its_threshold_twice_is_refused_naming_the_card(tmp_path: Path) -> None:
    """A card reading ``"threshold_logit": 2.0, ..., "threshold_logit": 1000.0``: before, the
    detector loaded with the last (a threshold nothing reaches), while a reader keeping the first
    showed 2.0."""
    from likeness.detector.score import load_detector
    from likeness.detector.train import CARD_FILE, MODEL_FILE
    from tests.detector.handmade import statistic_onnx

    payload = statistic_onnx("chroma")
    (tmp_path / MODEL_FILE).write_bytes(payload)
    card = json.dumps(
        {
            "sha256": hashlib.sha256(payload).hexdigest(),
            "calibration": {"temperature": 1.0, "threshold_logit": 2.0},
        }
    )
    (tmp_path / CARD_FILE).write_text(
        card.replace('"threshold_logit": 2.0', '"threshold_logit": 2.0, "threshold_logit": 1000.0')
    )
    with pytest.raises(ModelError) as refused:
        load_detector(tmp_path)
    assert str(tmp_path / CARD_FILE) in str(refused.value)
    assert "duplicate member name 'threshold_logit'" in str(refused.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_past_what_the_reader_can_hold_is_not_json_not_a_recursion_error(text: str) -> None:
    # Before, Python's reader raised RecursionError, which no "not JSON" handler catches (a
    # 400 kB file handed to `consent import` ended in a traceback).
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        strict_json.loads(text)
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        strict_json.loads(text.encode())
    assert strict_json.loads("[" * 200 + "]" * 200) == json.loads("[" * 200 + "]" * 200)


def test_a_number_longer_than_python_reads_is_not_json_not_a_value_error() -> None:
    # Python's int() refuses over 4,300 digits with a bare ValueError: `holder sign` and
    # `consent import` of a request naming `"max_renders": 111...` (5,000 digits) ended in a traceback.
    text = '{"max_renders": ' + "1" * 5000 + "}"
    for given in (text, text.encode()):
        with pytest.raises(json.JSONDecodeError, match="a number of more than 4300 digits"):
            strict_json.loads(given)
    assert strict_json.loads("9" * 4300) == int("9" * 4300)
    with pytest.raises(UnicodeDecodeError):  # still what it was: readers name it apart
        strict_json.loads(b'{"a": "\xff"}')
