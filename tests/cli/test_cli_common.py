"""The CLI's shared writers (``likeness.cli.common``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likeness.cli.common import write_new_json
from likeness.errors import ConfigError
from tests.durability import assert_written_whole, hidden_files, watch_disk


def test_a_new_json_file_is_written_whole_and_never_over_a_file(tmp_path: Path, monkeypatch) -> None:
    """A signed consent or revocation was written straight under its own name, unsynced: a kill
    mid-write left a torn file that the next attempt refused to replace."""
    path = tmp_path / "signed.json"
    log = watch_disk(monkeypatch)
    write_new_json(path, {"grant": "가나"})
    assert_written_whole(log, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"grant": "가나"}
    with pytest.raises(ConfigError, match="signed.json: already exists; refusing to overwrite it"):
        write_new_json(path, {"grant": "other"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"grant": "가나"} and hidden_files(tmp_path) == []
