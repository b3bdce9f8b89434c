"""A worker process that cannot build its verifier stops the run with its reason, in one typed
error, for scan's pool and verify's. Before, a raising pool initializer only ended its process:
the pool said "terminated abruptly" (its traceback on stderr, no reason for the caller), and each
file was blamed in turn: scan wrote "a worker process died on this file 3 times (hostile or badly
malformed media)" rows and exited 1, verify "the decoder crashed on this file"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from likeness.config import Settings
from likeness.errors import WorkerStartError
from likeness.media import write_image
from likeness.media.synthetic import astronaut
from likeness.scan.engines import LocalPoolEngine, WorkerSetup
from likeness.scan.sources import ScanItem
from likeness.verify.scan import _run_pool

# The worker's own Workspace.open fails (there is none at this home); the caller's did not.
REASON = "ConfigError: {home}: no workspace here (create one with: likeness init)"


def test_the_scan_pool_names_why_its_workers_could_not_start(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    picture = write_image(tmp_path / "a.png", astronaut())
    engine = LocalPoolEngine(WorkerSetup(Settings(home=home), (), None, None), workers=2)  # type: ignore[arg-type]
    items = [ScanItem(str(picture), None, local_path=str(picture))]
    with engine, pytest.raises(WorkerStartError) as stopped:
        list(engine.run(items, version="v"))
    assert str(stopped.value) == (
        f"a verification worker process could not start ({REASON.format(home=home.resolve())}); "
        "--workers 1 verifies in this process"
    )


def test_verify_s_pool_names_it_too(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    picture = write_image(tmp_path / "a.png", astronaut())
    verdicts: list = []
    workspace = SimpleNamespace(settings=Settings(home=home))
    with pytest.raises(WorkerStartError, match="could not start \\(ConfigError: .*no workspace here"):
        _run_pool([picture], [0], 1, workspace, (), None, None, lambda *a, **k: verdicts.append(a))  # type: ignore[arg-type]
    assert verdicts == []  # no file was given a verdict it did not earn


def test_a_ctrl_c_while_a_worker_starts_is_kept_quiet_for_the_parent_to_answer(monkeypatch, capsys) -> None:
    # Ctrl-C in a terminal reaches the pool's workers too: one still importing its verifier
    # printed a KeyboardInterrupt traceback (through the pool's "Exception in initializer").
    import likeness.verify.scan as verify_scan

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_scan, "_start_worker", interrupted)
    monkeypatch.setattr(verify_scan, "_WORKER", {})
    verify_scan._init_worker(Settings(home=Path("unused")), (), None, None)  # type: ignore[arg-type]
    with pytest.raises(WorkerStartError, match=r"could not start \(interrupted \(Ctrl-C\) while it started\)"):
        verify_scan.worker_verifier()
    assert capsys.readouterr() == ("", "")
