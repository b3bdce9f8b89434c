"""The public page's speed: from the end of the upload to the verdict on the page, for a 1080p
JPEG and a 10 s 1080p clip, against the in-process verifier on the same files in the same run.

    .venv/bin/python benchmarks/public_verify.py --repeats 5

The service is ``create_app`` under Uvicorn on loopback; the page is driven by Debian's
Chromium through Playwright. The page's script marks ``likeness:uploaded`` when the browser
has sent the last byte (XHR upload ``load``) and ``likeness:verdict`` when the card is shown;
the figure is the time between the two (network on loopback, the server's verification, the
JSON, and drawing the card). The baseline is what ``likeness verify`` does per file once its
models are loaded: ``Verifier.verify`` in this process, warm (one call per file first).

Files: scikit-image's astronaut (the enrolled artist ``mina``) on a seeded-noise 1920x1080
canvas as a JPEG, and ``write_clip`` of the astronaut at 1920x1080, 25 fps, 10 s (H.264).
Goals (issue 30): at most 1.3x the in-process time, and under 3 s for the clip.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_world(home: Path, folder: Path):
    """A workspace with organisation studio and mina enrolled from the astronaut."""
    import cv2

    from likeness.config import Settings
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import enroll_reference_photos
    from likeness.media.synthetic import astronaut
    from likeness.workspace import Workspace

    settings = Settings(home=home, public_checks_per_minute=10_000)
    workspace = Workspace.init(settings)
    workspace.registry.add_org("studio", "Studio Haneul")
    holders = HolderMachine.beside(workspace.home)  # the rights holder signs on their own machine
    holders.enrol(workspace.registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
    portrait = folder / "mina.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    enroll_reference_photos(workspace, "mina", [portrait])
    return settings, workspace


def make_files(folder: Path, seed: int) -> dict[str, Path]:
    import cv2
    import numpy as np

    from likeness.media.synthetic import astronaut, write_clip

    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    canvas[284:796, 704:1216] = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    still = folder / "still-1080p.jpg"
    cv2.imwrite(str(still), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    clip = write_clip(folder / "clip-1080p-10s.mp4", astronaut(), seconds=10.0, fps=25, size=(1920, 1080), seed=seed)
    return {"1080p JPEG": still, "10 s 1080p clip": clip}


def timed_in_process(verifier, path: Path) -> float:
    started = time.perf_counter()
    verifier.verify(path)
    return time.perf_counter() - started


def timed_on_the_page(page, path: Path) -> float:
    page.evaluate("performance.clearMarks()")
    page.set_input_files("input[type=file]", str(path))
    page.click("form[data-public-check] button[type=submit]")
    page.wait_for_selector("[data-result] .verdict-card", timeout=120_000)
    page.wait_for_function("performance.getEntriesByName('likeness:verdict').length > 0")
    return page.evaluate("performance.measure('v', 'likeness:uploaded', 'likeness:verdict').duration / 1000")


def measure(settings, workspace, files: dict[str, Path], repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per file: (in-process seconds, page seconds), the two interleaved run by run so that
    whatever else the machine is doing weighs on both alike."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    from likeness.service.app import create_app
    from likeness.verify.pipeline import Verifier

    app = create_app(settings, workspace=workspace)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    verifier = Verifier(workspace)
    times: dict[str, tuple[list[float], list[float]]] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"http://127.0.0.1:{port}/")
            for name, path in files.items():
                timed_in_process(verifier, path)  # warm: models loaded, as for every file after the first
                timed_on_the_page(page, path)
                base, served = [], []
                for _ in range(repeats):
                    base.append(timed_in_process(verifier, path))
                    served.append(timed_on_the_page(page, path))
                times[name] = (base, served)
            browser.close()
    finally:
        verifier.close()
        server.should_exit = True
        thread.join(timeout=10)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="likeness-public-bench-"))
    try:
        folder = work / "files"
        folder.mkdir()
        settings, workspace = make_world(work / "home", folder)
        files = make_files(folder, args.seed)
        times = measure(settings, workspace, files, args.repeats)
        print(f"median of {args.repeats} runs, seconds (end of upload -> verdict on the page)")
        print(f"{'file':<18} {'size MiB':>9} {'in-process':>11} {'page':>8} {'ratio':>7}")
        for name, path in files.items():
            base, served = (statistics.median(runs) for runs in times[name])
            size = path.stat().st_size / 1048576
            print(f"{name:<18} {size:>9.1f} {base:>11.3f} {served:>8.3f} {served / base:>6.2f}x")
        workspace.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
