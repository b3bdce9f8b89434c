"""The end-to-end demo on embedded defaults: SQLite registry, package portraits, generated media.

Story: an agency (Studio Haneul) owns a virtual idol, Mina, whose look comes from a package
portrait; a consenting performer, Jun, gives a release for his footage. The rights holder signs
a grant; the policy engine authorizes and refuses; every step lands on the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.consent.holder import HolderMachine
from likeness.errors import ConsentError
from likeness.workspace import Workspace

if TYPE_CHECKING:
    from likeness.train import TrainConfig

ORG = "haneul"
ARTIST = "mina"
PERFORMER = "jun"
#: Adam's rate for the demo's fine-tune (the product's default, 2e-4, is for long runs from scratch).
DEMO_LEARNING_RATE = 5e-4


@dataclass
class DemoResult:
    home: Path
    grant_id: str = ""
    release_id: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)


def setup_consent(workspace: Workspace, console: Console) -> DemoResult:
    """Enrol the organisation, the virtual idol and the performer; sign a grant and a release."""
    registry = workspace.registry
    result = DemoResult(home=workspace.home)
    # The rights holders keep their keys on their own machine (here a folder beside the
    # workspace); the workspace gets public keys and signed files only.
    holders = HolderMachine.beside(workspace.home)
    registry.add_org(ORG, "Studio Haneul Entertainment")
    registry.add_subject(
        ARTIST,
        "Mina (virtual idol)",
        kind="virtual_idol",
        owner_org=ORG,
        holder_public_key_pem=holders.public_key(f"{ARTIST}-holder"),
    )
    registry.add_subject(
        PERFORMER, "Jun (performer)", kind="performer", holder_public_key_pem=holders.public_key(f"{PERFORMER}-holder")
    )
    until = now_utc() + timedelta(days=90)
    grant_request = registry.request_grant(
        ARTIST,
        ORG,
        ["training", "music_video", "fan_message"],
        valid_until=until,
        max_renders=20,
        purpose="Debut music video and fan messages for the virtual idol Mina",
    )
    result.grant_id = registry.import_signed(holders.sign(grant_request))
    release_request = registry.request_release(
        PERFORMER, ORG, valid_until=until, purpose="Body double footage for Mina's debut MV"
    )
    result.release_id = registry.import_signed(holders.sign(release_request))
    console.print(
        Text.assemble(
            ("1. Consent", "bold"),
            f"  grant {result.grant_id[:8]} (training, music_video, fan_message; "
            f"20 renders) signed by Mina's rights holder; release {result.release_id[:8]} by Jun",
        )
    )
    checks = Table("subject", "use", "grantee", "decision")
    for subject, use, org in (
        (ARTIST, "training", ORG),
        (ARTIST, "music_video", ORG),
        (ARTIST, "advertising", ORG),
        (ARTIST, "sexual_content", ORG),
    ):
        try:
            authz = workspace.policy.authorize(subject, use, org)
            decision = Text.assemble(("authorized", "green"), f" (grant {authz.grant_id[:8]})")
        except ConsentError as exc:
            decision = Text.assemble(("refused", "red"), f": {exc.reason}")
        checks.add_row(subject, use, org, decision)
    console.print(checks)
    return result


def generate_footage(folder: Path, console: Console) -> dict[str, Path]:
    """Generated media only: Mina and Jun are people who do not exist, composed by code from the
    package portraits (:mod:`likeness.media.synthetic_identities`); Mina's 'consented footage'
    animates her portrait, Jun's performer clip (with an audio track) animates his."""
    from likeness.media import synthetic, write_image
    from likeness.media.synthetic_identities import synthetic_identity

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "mina_reference": folder / "mina_reference.png",
        "jun_reference": folder / "jun_reference.png",
        "mina_footage": folder / "mina_footage.mp4",
        "jun_performance": folder / "jun_performance.mp4",
    }
    mina, jun = synthetic_identity(ARTIST), synthetic_identity(PERFORMER)
    write_image(paths["mina_reference"], mina)
    write_image(paths["jun_reference"], jun)
    synthetic.write_clip(paths["mina_footage"], mina, seconds=4.0, fps=25, size=(640, 360), with_audio=False, seed=1)
    synthetic.write_clip(paths["jun_performance"], jun, seconds=3.0, fps=25, size=(640, 360), with_audio=True, seed=2)
    console.print(
        Text.assemble(
            ("2. Footage", "bold"), f"  synthetic people composed by code from package portraits, in {folder}"
        )
    )
    return paths


def enroll_and_extract(workspace: Workspace, paths: dict[str, Path], out: Path, console: Console) -> dict[str, Path]:
    from likeness.faceset import ExtractOptions, authorize_extraction, enroll_reference_photos, extract_faceset

    for subject, photo in ((ARTIST, paths["mina_reference"]), (PERFORMER, paths["jun_reference"])):
        enrolled = enroll_reference_photos(workspace, subject, [photo])
        if enrolled.added != 1:
            raise RuntimeError(f"could not enrol {photo}: {enrolled.skipped}")
    facesets = {}
    for subject, footage in ((ARTIST, paths["mina_footage"]), (PERFORMER, paths["jun_performance"])):
        authz = authorize_extraction(workspace, subject, ORG)
        report = extract_faceset(
            workspace, authz, [footage], out / f"{subject}_faceset", options=ExtractOptions(dedup_hamming=None)
        )
        facesets[subject] = out / f"{subject}_faceset"
        console.print(
            Text.assemble(
                ("3. Faceset", "bold"),
                f"  {subject}: {report.faces_kept} aligned faces from "
                f"{report.frames_read} frames ({report.faces_per_s:.1f} faces/s)",
            )
        )
    return facesets


#: The demo fine-tunes the base model the product pretrained and ships (likeness.train.base_model):
#: from random weights, two minutes on a busy 2-core machine draw a blur (docs/demo.md).
DEMO_BASE_MODEL = "df-tiny-64-base"


def demo_train_config(minutes: float, *, base_model: str | None = DEMO_BASE_MODEL) -> TrainConfig:
    """The demo's training options: df_tiny at 64 px for ``minutes``, from ``base_model``.

    Held-out metrics are measured once, at the end (a checkpoint's dlib and FaceMesh pass costs
    iterations the demo cannot spare); the rate suits a fine-tune of a few hundred iterations.
    """
    from likeness.train import TrainConfig

    return TrainConfig(
        model="df_tiny",
        resolution=64,
        iterations=None,
        minutes=minutes,
        base_model=base_model,
        learning_rate=DEMO_LEARNING_RATE,
        checkpoint_every=100_000,
        preview_every=100_000,
    )


def train_and_export(
    workspace: Workspace,
    facesets: dict[str, Path],
    out: Path,
    console: Console,
    *,
    minutes: float,
    config: TrainConfig | None = None,
) -> Path:
    from likeness.train import TrainProgress, export_from_folder, train_from_facesets
    from likeness.train.quantize import describe_int8

    model_dir = out / "mina_on_jun"
    config = config or demo_train_config(minutes)
    seen: dict[str, TrainProgress] = {}

    def remember(progress: TrainProgress) -> None:
        if progress.event == "step":
            seen["last"] = progress

    result = train_from_facesets(
        workspace, facesets[ARTIST], facesets[PERFORMER], model_dir, config, org=ORG, progress=remember
    )
    exported = export_from_folder(workspace, model_dir, org=ORG)
    transfer = result.metrics.get("identity_transfer")
    start = f"fine-tuned from base {config.base_model}" if config.base_model else "from random weights"
    last = seen.get("last")
    console.print(
        Text.assemble(
            ("4. Model", "bold"),
            f"  df_tiny 64 px {start}: {result.iterations} iterations in "
            f"{result.training_seconds:.0f} s on {result.device} ({result.iterations / max(result.training_seconds, 1e-9):.1f} it/s"
            f"{'; ' + last.cpu_threads if last is not None and last.cpu_threads else ''}); "
            f"identity transfer {_share(transfer)} of held-out frames "
            f"(median distance to Mina {_figure(result.metrics.get('swap_distance_to_source_median'))}, "
            f"threshold {_figure(result.metrics.get('identity_threshold'))}); ONNX {exported.onnx_path.name}; "
            f"{describe_int8(exported.card.get('int8'))}",
        )
    )
    return model_dir


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_output(workspace: Workspace, model_dir: Path, target: Path, out: Path, console: Console) -> Path:
    from likeness.render import render_media

    output = out / "mina_debut_mv.mp4"
    report = render_media(workspace, model_dir, target, output, use="music_video", org=ORG)
    console.print(
        Text.assemble(
            ("5. Render", "bold"),
            f"  {report.frames_rendered} frames, faces {dict(report.faces)}, "
            f"{report.fps:.1f} fps → {output} (visible label, watermark, signed C2PA, ledger)",
        )
    )
    return output


def verify_outputs(workspace: Workspace, files: dict[str, Path], console: Console) -> dict[str, str]:
    from likeness.verify import verify_path

    verdicts = {}
    table = Table("file", "verdict", "why")
    for label, path in files.items():
        result = verify_path(workspace, path)
        verdicts[label] = result.verdict.code
        table.add_row(label, result.verdict.code, result.verdict.summary)
    console.print(table)
    return verdicts


def print_audit_trail(workspace: Workspace, console: Console) -> None:
    """Anchor the ledger's signed head beside the workspace, then run ``audit verify``'s checks."""

    from likeness.consent.audit import anchor_workspace, audit_workspace

    # Outside the workspace, one folder per demo world (a new organisation each run).
    anchors = workspace.home.parent / f"{workspace.home.name}-anchors" / workspace.registry.default_org().id
    anchor_workspace(workspace, folders=[anchors])
    report = audit_workspace(workspace, anchor_dirs=[anchors])
    counts: dict[str, int] = {}
    for event in workspace.ledger.events():
        counts[event.event_type] = counts.get(event.event_type, 0) + 1
    table = Table("event", "count", title="Audit trail (hash-chained ledger)")
    for event_type, count in counts.items():
        table.add_row(event_type, str(count))
    console.print(table)
    if report.ok:
        console.print(
            Text.assemble(
                "ledger ",
                ("intact", "green"),
                f": {report.chain.rows} rows, head {report.chain.head_hash[:16]}…; "
                f"consent rows match their ledger events; signed head anchored in {anchors}",
            )
        )
    for problem in report.problems:
        console.print(Text.assemble(("audit problem", "red"), f" {problem.kind}: {problem.subject}: {problem.message}"))


def console_login(workspace: Workspace, console: Console, *, username: str = "demo-legal") -> tuple[str, str]:
    """A legal user with a fresh random password, so the console can open this workspace."""
    import secrets

    from likeness.service.accounts import Accounts
    from likeness.service.errors import Conflict
    from likeness.service.roles import Role

    password = secrets.token_urlsafe(12)
    accounts = Accounts(workspace)
    try:
        accounts.add_user(username, password, Role.LEGAL, display_name="Demo legal team", actor="demo")
    except Conflict:  # a second demo run in the same workspace: a new user name
        username = f"{username}-{secrets.token_hex(3)}"
        accounts.add_user(username, password, Role.LEGAL, display_name="Demo legal team", actor="demo")
    console.print(
        Text.assemble(
            ("8. Console", "bold"),
            f"  likeness --home {workspace.home} serve --with-worker\n"
            f"    then open http://127.0.0.1:8000/ and sign in as {username} / {password}",
        )
    )
    return username, password


def run_demo(settings: Settings, console: Console, *, train_minutes: float = 2.0) -> DemoResult:
    """The whole story; returns where the labelled output and its reports are."""
    from likeness.media import iter_video_frames, write_image

    workspace = Workspace.init(settings)
    try:
        result = setup_consent(workspace, console)
        work = workspace.home / "demo"
        paths = generate_footage(work / "footage", console)
        facesets = enroll_and_extract(workspace, paths, work, console)
        model_dir = train_and_export(workspace, facesets, work, console, minutes=train_minutes)
        output = render_output(workspace, model_dir, paths["jun_performance"], workspace.outputs_dir, console)
        result.outputs["render"] = output
        result.outputs["report"] = output.with_suffix(".render.html")

        # A platform re-encodes a still from the video: the manifest is gone, the watermark stays.
        still = next(iter(iter_video_frames(output, start=10)))
        resaved = work / "reposted_still.jpg"
        write_image(resaved, still.rgb, quality=85)
        console.print(Text.assemble(("6. Verify", "bold")))
        verify_outputs(
            workspace,
            {
                "labelled render": output,
                "re-posted still (no manifest)": resaved,
                "Mina's untouched portrait": paths["mina_reference"],
            },
            console,
        )

        console.print(Text.assemble(("7. Revocation", "bold"), "  Mina's rights holder revokes the grant"))
        revocation = HolderMachine.beside(workspace.home).revoke(result.grant_id, reason="demo: consent withdrawn")
        workspace.registry.import_signed(revocation)
        verify_outputs(workspace, {"labelled render": output}, console)
        try:
            render_output(workspace, model_dir, paths["jun_performance"], workspace.outputs_dir, console)
        except ConsentError as exc:
            console.print(Text.assemble("render after revocation ", ("refused", "red"), f" ({exc.reason})"))
        print_audit_trail(workspace, console)
        console_login(workspace, console)
        console.print(
            Text.assemble(
                "\n",
                ("labelled output", "bold"),
                f": {output}\n",
                ("render report", "bold"),
                f": {result.outputs['report']}\n",
                ("workspace", "bold"),
                f": {workspace.home}",
            )
        )
        return result
    finally:
        workspace.close()
