"""The demo's swap, measured: identity transfer on its held-out frames, time and speed, old setup beside new.

    PYTHONPATH=src .venv/bin/python benchmarks/demo.py [--rounds 3] [--minutes 2] [--setups old,new]

Each round of each setup runs the demo's own steps in a fresh throw-away workspace (consent,
generated footage, enrolment and extraction, training, export) and reads the run's held-out
metrics. Setups:

* ``old``: the demo before issue #26 item 5: the package portraits themselves (Eileen Collins as
  Mina, Grace Hopper as Jun), df_tiny at 64 px from random weights at the default rate 2e-4, with a
  checkpoint (held-out metrics) every 100 iterations;
* ``new``: the composed people of likeness.media.synthetic_identities, fine-tuned from the shipped
  base model with ``likeness.demo.demo_train_config``.

Prints one row per run and a table of medians (identity transfer, median swap-to-Mina distance,
the render report's identity distance, share within the threshold and sharpness, iterations,
it/s, seconds for training and export, and for the demo from consent to render; verification,
revocation and the audit are not timed) with the 1-minute load average seen at the start
and end of each run: the machine these figures come from is shared, and the load is part of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console


def _old_footage(folder: Path) -> dict[str, Path]:
    """The demo's footage before item 5: the package portraits, animated."""
    from likeness.media import synthetic, write_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "mina_reference": folder / "mina_reference.png",
        "jun_reference": folder / "jun_reference.png",
        "mina_footage": folder / "mina_footage.mp4",
        "jun_performance": folder / "jun_performance.mp4",
    }
    write_image(paths["mina_reference"], synthetic.astronaut())
    write_image(paths["jun_reference"], synthetic.grace_hopper())
    synthetic.write_clip(
        paths["mina_footage"], synthetic.astronaut(), seconds=4.0, fps=25, size=(640, 360), with_audio=False, seed=1
    )
    synthetic.write_clip(
        paths["jun_performance"],
        synthetic.grace_hopper(),
        seconds=3.0,
        fps=25,
        size=(640, 360),
        with_audio=True,
        seed=2,
    )
    return paths


def _old_config(minutes: float):
    from likeness.train import TrainConfig

    return TrainConfig(
        model="df_tiny", resolution=64, iterations=None, minutes=minutes, checkpoint_every=100, preview_every=200
    )


def run_once(setup: str, minutes: float, root: Path) -> dict[str, float | int | str | None]:
    from likeness import demo
    from likeness.config import Settings
    from likeness.train.config import METRICS_CSV
    from likeness.workspace import Workspace

    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 (closed with the process)
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    workspace = Workspace.init(Settings(home=root / "home"))
    try:
        demo.setup_consent(workspace, quiet)
        work = workspace.home / "demo"
        footage = _old_footage(work / "footage") if setup == "old" else demo.generate_footage(work / "footage", quiet)
        facesets = demo.enroll_and_extract(workspace, footage, work, quiet)
        config = _old_config(minutes) if setup == "old" else demo.demo_train_config(minutes)
        train_started = time.perf_counter()
        model_dir = demo.train_and_export(workspace, facesets, work, quiet, minutes=minutes, config=config)
        train_seconds = time.perf_counter() - train_started
        rows = (model_dir / METRICS_CSV).read_text().splitlines()
        header, last = rows[0].split(","), rows[-1].split(",")
        metrics = dict(zip(header, last, strict=True))
        output = demo.render_output(workspace, model_dir, footage["jun_performance"], workspace.outputs_dir, quiet)
        shot = json.loads(output.with_suffix(".render.json").read_text())["shots"][0]["metrics"]
    finally:
        workspace.close()
    iterations = int(metrics["iteration"])
    return {
        "setup": setup,
        "identity_transfer": float(metrics["identity_transfer"]),
        "distance_median": float(metrics["swap_distance_to_source_median"]),
        "iterations": iterations,
        "it_per_s": iterations / float(metrics["seconds"]),
        "train_export_s": train_seconds,
        "demo_s": time.perf_counter() - started,
        # The render report's own figures on the composited frames (full resolution, against the
        # enrolled portrait): a stricter view than the 64 px held-out metric above.
        "render_identity": shot["identity"]["value"],
        "render_identity_share": shot["identity"].get("within_threshold_share"),
        "render_sharpness": shot["sharpness"]["value"],
        "load": f"{load_start:.1f}→{os.getloadavg()[0]:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--setups", default="old,new")
    args = parser.parse_args()
    setups = args.setups.split(",")
    rows: list[dict] = []
    print(f"# {os.cpu_count()} cores; {args.minutes} min of training per run; {args.rounds} rounds", flush=True)
    for round_ in range(args.rounds):
        for setup in setups:  # interleaved, so both setups see the same spells of load
            with tempfile.TemporaryDirectory(prefix=f"demo-bench-{setup}-") as tmp:
                row = run_once(setup, args.minutes, Path(tmp))
            rows.append(row)
            print(f"round {round_ + 1} {row}", flush=True)
    print(
        "\n| setup | runs | identity transfer (median, min–max) | swap→Mina distance | render identity distance "
        "(share ≤ 0.40) | render sharpness | iterations | it/s | train+export s | consent→render s | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for setup in setups:
        mine = [r for r in rows if r["setup"] == setup]
        transfer = [float(r["identity_transfer"]) for r in mine]

        def med(key: str, rows_: list[dict] = mine) -> float:
            return statistics.median(float(r[key]) for r in rows_)

        print(
            f"| {setup} | {len(mine)} | {statistics.median(transfer):.2f} ({min(transfer):.2f}–{max(transfer):.2f}) "
            f"| {med('distance_median'):.3f} | {med('render_identity'):.3f} ({med('render_identity_share'):.2f}) "
            f"| {med('render_sharpness'):.2f} | {med('iterations'):.0f} | {med('it_per_s'):.2f} "
            f"| {med('train_export_s'):.0f} | {med('demo_s'):.0f} | {', '.join(str(r['load']) for r in mine)} |"
        )


if __name__ == "__main__":
    main()
