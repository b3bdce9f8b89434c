"""CLI: ``likeness cases list|show|export RESULTS``: reposts of one picture or clip, grouped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from likeness.cli.common import console, fail, mapped_errors, printable

app = typer.Typer(
    help="Cases: near-duplicate files of a scan (re-uploads, re-encodes, crops, mirrors), grouped for takedowns.",
    no_args_is_help=True,
)

ResultsArg = Annotated[Path, typer.Argument(help="A scan's results folder (likeness scan --out).")]
DistanceOpt = Annotated[
    int,
    typer.Option(
        "--max-distance", min=0, max=32, help="Largest pHash difference (bits of 64) between near-duplicates."
    ),
]


def _cases(results: Path, max_distance: int):
    from likeness.scan import ResultsDataset
    from likeness.scan.cases import group_cases

    if not results.is_dir():
        fail(f"{results}: no scan results here (likeness scan --out {results})")
    return group_cases(ResultsDataset(results).rows(), max_distance=max_distance)


@app.command("list")
def list_cases(
    results: ResultsArg,
    max_distance: DistanceOpt = 12,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per case.")] = False,
) -> None:
    """List cases, largest first: members, first and last seen, verdicts, best evidence."""
    with mapped_errors():
        cases = _cases(results, max_distance)
    for case in cases:
        summary = case.summary()
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False))
            continue
        verdicts = ", ".join(f"{code} {n}" for code, n in summary["verdicts"].items())
        console.print(
            f"{case.case_id}  {summary['members']} files  {summary['first_seen']} .. "
            f"{summary['last_seen']}  {verdicts}",
        )
    if not cases and not as_json:
        console.print("no cases (no two files are near-duplicates)")


@app.command("show")
def show_case(
    results: ResultsArg,
    case_id: Annotated[str, typer.Argument(help="A case id from 'cases list'.")],
    max_distance: DistanceOpt = 12,
) -> None:
    """Show one case: every member with its verdict, and the best evidence."""
    from likeness.scan.cases import find_case

    with mapped_errors():
        case = find_case(_cases(results, max_distance), case_id)
    if case is None:
        fail(f"no case {case_id!r} in {results}")
    summary = case.summary()
    console.print(
        f"{case.case_id}: {summary['members']} files, first seen {summary['first_seen']}, last seen "
        f"{summary['last_seen']}; best evidence {printable(summary['best_evidence'])}",
    )
    for member in case.members:
        row = member.row
        extra = " (mirrored)" if member.mirrored else ""
        console.print(f"  {row['verdict']}  {printable(row['location'])}{extra}")  # a scanned file's name


@app.command("export")
def export_cases(
    results: ResultsArg,
    case_ids: Annotated[
        list[str] | None, typer.Argument(metavar="CASE", help="Cases to export (default: all).")
    ] = None,
    to: Annotated[Path, typer.Option("--to", help="Folder for the takedown bundles.")] = Path("cases"),
    max_distance: DistanceOpt = 12,
) -> None:
    """Write a takedown bundle per case: CASE-evidence.zip and CASE-locations.csv."""
    from likeness.scan.cases import export_case, find_case

    with mapped_errors():
        cases = _cases(results, max_distance)
        chosen = cases if not case_ids else [find_case(cases, c) for c in case_ids]
        missing = [c for c, case in zip(case_ids or (), chosen, strict=False) if case is None]
        if missing:
            fail("no such case: " + ", ".join(missing))
        for case in chosen:
            if case is None:
                continue
            csv_path, zip_path = export_case(case, to)
            console.print(f"{case.case_id}: {printable(zip_path)}, {printable(csv_path)}")


def register(root: typer.Typer) -> None:
    """Add ``likeness cases`` to the root app."""
    root.add_typer(app, name="cases")
