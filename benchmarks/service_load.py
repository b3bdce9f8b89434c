"""The service under load: concurrent clients upload 1080p stills (and short clips) for
verification and poll their jobs, on loopback, against ``likeness serve`` with ``likeness
worker`` processes. Compared with the in-process ``verify_many`` on the same files, same run.

    .venv/bin/python benchmarks/service_load.py --clients 50 --images 100 --clips 10 --workers 2

Per run: a fresh SQLite workspace (``--database-url`` for PostgreSQL), organisation ``studio``,
one legal user with an API token; the files are scikit-image's astronaut placed at a seeded
random spot on a 1920x1080 seeded-noise canvas (distinct bytes per file, so nothing is
answered from the verify resume state), and 2 s 640x360 clips of it. Each client thread
uploads its share one by one, then polls each of its jobs every 0.25 s until it ends.

Printed: p50/p99 latency of the upload requests and of the poll requests; jobs per second from
the first upload to the last job's end; jobs lost (created but not succeeded by the deadline,
must be 0); the service process's peak resident memory (VmHWM); the in-process ``verify_many``
throughput on the same files with the same number of worker processes, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_files(folder: Path, images: int, clips: int, seed: int) -> list[Path]:
    import cv2
    import numpy as np

    from likeness.media.synthetic import astronaut, write_clip

    rng = np.random.default_rng(seed)
    face = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    files = []
    for index in range(images):
        canvas = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
        y, x = rng.integers(0, 1080 - 512).item(), rng.integers(0, 1920 - 512).item()
        canvas[y : y + 512, x : x + 512] = face
        path = folder / f"still-{index:03d}.jpg"
        cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        files.append(path)
    for index in range(clips):
        path = folder / f"clip-{index:03d}.mp4"
        write_clip(path, astronaut(), seconds=2.0, fps=25, size=(640, 360), with_audio=False, seed=seed + index)
        files.append(path)
    return files


def new_workspace(home: Path, database_url: str | None, users: int = 1) -> list[str]:
    """A workspace with organisation studio and ``users`` legal users (one per client: the
    service limits uploads per user, 60 a minute); returns their API tokens."""
    from likeness.config import Settings
    from likeness.service.accounts import Accounts
    from likeness.service.roles import Role
    from likeness.workspace import Workspace

    workspace = Workspace.init(Settings(home=home, database_url=database_url))
    try:
        workspace.registry.add_org("studio", "Studio Haneul")
        accounts = Accounts(workspace)
        tokens = []
        for index in range(users):
            user = accounts.add_user(f"legal-{index:02d}", "a long benchmark password", Role.LEGAL)
            tokens.append(accounts.create_token(user, "load benchmark")[0])
        return tokens
    finally:
        workspace.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_service(files: list[Path], args: argparse.Namespace, work: Path) -> dict:
    import httpx

    home = work / "service-home"
    tokens = new_workspace(home, args.database_url, users=args.clients)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "LIKENESS_HOME": str(home),
        "LIKENESS_JOBS_PER_ORG": str(args.workers),
    }
    if args.database_url:
        env["LIKENESS_DATABASE_URL"] = args.database_url
    launcher = "import sys; from likeness.cli import main; sys.argv[0] = 'likeness'; main()"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen([sys.executable, "-c", launcher, "serve", "--port", str(port)], env=env, **quiet)
    workers = [
        subprocess.Popen([sys.executable, "-c", launcher, "worker", "--poll", "0.2"], env=env, **quiet)
        for _ in range(args.workers)
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.2)
        upload_ms: list[float] = []
        poll_ms: list[float] = []
        outcomes: dict[str, str] = {}
        errors: list[str] = []
        lock = threading.Lock()
        shares = [files[i :: args.clients] for i in range(args.clients)]
        started = time.perf_counter()

        def client(share: list[Path], token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            jobs = []
            with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
                for path in share:
                    t0 = time.perf_counter()
                    with path.open("rb") as handle:
                        response = http.post("/api/v1/verifications", files={"file": (path.name, handle)})
                    with lock:
                        upload_ms.append((time.perf_counter() - t0) * 1000)
                    if response.status_code != 202:
                        with lock:
                            errors.append(f"{path.name}: {response.status_code} {response.text[:120]}")
                        continue
                    jobs.append(response.json()["id"])
                for job_id in jobs:
                    state = "queued"
                    end = time.monotonic() + args.deadline_s
                    while state in ("queued", "running") and time.monotonic() < end:
                        t0 = time.perf_counter()
                        state = http.get(f"/api/v1/jobs/{job_id}").json()["state"]
                        with lock:
                            poll_ms.append((time.perf_counter() - t0) * 1000)
                        if state in ("queued", "running"):
                            time.sleep(0.25)
                    with lock:
                        outcomes[job_id] = state

        threads = [
            threading.Thread(target=client, args=(share, token))
            for share, token in zip(shares, tokens, strict=True)
            if share
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        return {
            "upload_ms": upload_ms,
            "poll_ms": poll_ms,
            "wall_s": wall,
            "jobs": len(outcomes),
            "succeeded": sum(s == "succeeded" for s in outcomes.values()),
            "lost": sum(s != "succeeded" for s in outcomes.values()) + len(errors),
            "errors": errors,
            "service_rss_mib": peak_rss_mib(server.pid),
        }
    finally:
        for process in (server, *workers):
            process.terminate()
        for process in (server, *workers):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def run_in_process(files: list[Path], args: argparse.Namespace, work: Path) -> float:
    from likeness.config import Settings
    from likeness.verify.scan import verify_many
    from likeness.workspace import Workspace

    home = work / "cli-home"
    new_workspace(home, None, users=0)
    workspace = Workspace.open(Settings(home=home))
    try:
        started = time.perf_counter()
        results = verify_many(workspace, files, workers=args.workers)
        elapsed = time.perf_counter() - started
    finally:
        workspace.close()
    assert len(results) == len(files)
    return len(files) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (and verify_many processes)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--deadline-s", type=float, default=900.0, help="a job not done by then counts as lost")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="likeness-load-"))
    try:
        media = work / "media"
        media.mkdir()
        files = make_files(media, args.images, args.clips, args.seed)
        load_before = os.getloadavg()[0]
        service = run_service(files, args, work)
        load_between = os.getloadavg()[0]
        in_process = run_in_process(files, args, work)
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    throughput = service["succeeded"] / service["wall_s"]
    print(
        f"service load: {args.clients} clients, {args.images} 1080p stills + {args.clips} clips, "
        f"{args.workers} worker process(es), {'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| upload request p50 / p99 | {percentile(service['upload_ms'], 0.5):.0f} / {percentile(service['upload_ms'], 0.99):.0f} ms |"
    )
    print(
        f"| poll request p50 / p99 | {percentile(service['poll_ms'], 0.5):.0f} / {percentile(service['poll_ms'], 0.99):.0f} ms |"
    )
    print(f"| jobs succeeded / lost | {service['succeeded']} / {service['lost']} |")
    print(f"| service throughput | {throughput:.2f} files/s ({service['wall_s']:.1f} s) |")
    print(f"| in-process verify_many | {in_process:.2f} files/s |")
    print(f"| ratio service / in-process | {throughput / in_process:.2f} |")
    print(f"| service process peak RSS | {service['service_rss_mib']:.0f} MiB |")
    print(
        f"| 1-min load average before / between / after | {load_before:.1f} / {load_between:.1f} / {load_after:.1f}"
        f" ({os.cpu_count()} CPUs) |"
    )
    for error in service["errors"][:5]:
        print(f"error: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
