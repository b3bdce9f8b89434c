"""``likeness scan --engine dask`` on ``LocalCluster(n_workers=2, processes=True)``: one row per
file, a worker killed mid-scan changes no row, an interrupted scan re-run verifies nothing twice,
and the CLI reaches a running scheduler by its address."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from tests.scan.conftest import EXPECTED_VERDICTS
from typer.testing import CliRunner

from likeness.scan import ResultsDataset, scan_collection

pytestmark = [pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning"), pytest.mark.slow]

COMPARED = (
    "sha256",
    "verdict",
    "rule",
    "watermark_payload",
    "render_job_id",
    "c2pa_state",
    "matched_subjects",
    "errors",
    "phashes",
    "phashes_mirror",
    "visible_label",
)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    dask_client = Client(cluster)
    yield dask_client
    dask_client.close()
    cluster.close()


def _compared(out: Path) -> dict[str, tuple]:
    rows = ResultsDataset(out).rows()
    assert len(rows) == len({r["location"] for r in rows}), "a file got more than one row"
    return {Path(r["location"]).name: tuple(str(r[c]) for c in COMPARED) for r in rows}


def test_dask_scan_has_one_row_per_file_and_a_killed_worker_changes_no_row(mina_world, collection, tmp_path, client):
    undisturbed = scan_collection(mina_world.workspace, [collection], tmp_path / "a", engine="dask", client=client)
    assert undisturbed.dashboard_link and undisturbed.files == 10
    expected = _compared(tmp_path / "a")
    assert len(expected) == 10
    for name, verdict in EXPECTED_VERDICTS.items():
        assert expected[name][1] == verdict, name
    workers_used = {r["worker"] for r in ResultsDataset(tmp_path / "a").rows() if r["verify_s"] is not None}
    assert len(workers_used) == 2  # both workers verified files

    killed: list[int] = []

    def kill_a_busy_worker(_row) -> None:
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        assert busy, "no worker has a file in flight"
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    disturbed = scan_collection(
        mina_world.workspace, [collection], tmp_path / "b", engine="dask", client=client, on_file=kill_a_busy_worker
    )
    assert killed and disturbed.files == 10 and disturbed.verified + disturbed.copied == 10
    assert _compared(tmp_path / "b") == expected
    # the scan's rows after the kill came from live workers (the killed one's file was run again)
    client.wait_for_workers(2, timeout=120)
    assert killed[0] not in client.run(os.getpid).values()


def test_dask_scan_interrupted_then_rerun_verifies_nothing_twice(mina_world, collection, tmp_path, client):
    out = tmp_path / "results"
    seen: list[str] = []

    def interrupt_after_four(row) -> None:
        seen.append(row["location"])
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_collection(
            mina_world.workspace, [collection], out, engine="dask", client=client, on_file=interrupt_after_four
        )
    first = {r["location"] for r in ResultsDataset(out).rows()}
    assert first == set(seen)
    resumed = scan_collection(mina_world.workspace, [collection], out, engine="dask", client=client)
    assert resumed.skipped == len(first) and not first & set(resumed.verified_locations)
    rows = ResultsDataset(out).rows()
    assert len(rows) == 10 and len({r["location"] for r in rows}) == 10
    recorded = [e.payload["path"] for e in mina_world.workspace.ledger.events("verification.completed")]
    assert len(recorded) == len(set(recorded))


def test_scan_cli_reaches_a_scheduler_by_address_with_several_files_per_task(mina_world, collection, tmp_path, client):
    from likeness.cli import app

    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(mina_world.workspace.home),
            "scan",
            str(collection / "reposts"),
            "--out",
            str(out),
            "--engine",
            "dask",
            "--scheduler",
            client.scheduler.address,
            "--files-per-task",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Dask dashboard: http" in result.output and "4 verified" in result.output
    assert len(ResultsDataset(out).rows()) == 4
