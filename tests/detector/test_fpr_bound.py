"""The false-positive gate's statistical weight: beside the point estimate the gate uses, the
one-sided 95 % Clopper-Pearson upper bound of the authentic false-positive rate, and how many
authentic units (none flagged) would bring it within the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector.evaluation import (
    evaluate_detector,
    false_positive_bound,
    false_positive_upper_bound,
    units_for_bound,
)
from likeness.detector.registered import register_detector
from likeness.detector.train import CARD_FILE

from .handmade import GateMedia, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.mark.parametrize(
    ("flagged", "units", "upper"),
    [
        (0, 2, 0.7763932),  # 1 - 0.05 ** (1 / 2): two clean units say almost nothing
        (0, 39, 0.0739376),  # the first count whose bound is under 7.5 %
        (0, 38, 0.0758077),  # 1 - 0.05 ** (1 / 38): one short
        (1, 6, 0.5818034),  # Beta(2, 5) at 0.95: P(X <= 1 | n=6, p) = 0.05
        (3, 3, 1.0),
    ],
)
def test_clopper_pearson_upper_bound_known_values(flagged: int, units: int, upper: float) -> None:
    assert false_positive_upper_bound(flagged, units) == pytest.approx(upper, abs=1e-6)


def test_units_needed_with_none_flagged() -> None:
    assert units_for_bound(0.075) == 39  # the gate's limit at the default 5 % target
    assert units_for_bound(1.5 * 0.05) == 39
    assert units_for_bound(0.15) == 19
    for limit in (0.01, 0.05, 0.3, 0.9):
        n = units_for_bound(limit)
        assert false_positive_upper_bound(0, n) <= limit
        assert n == 1 or false_positive_upper_bound(0, n - 1) > limit


@pytest.mark.parametrize(("flagged", "units"), [(-1, 2), (3, 2), (0, 0)])
def test_impossible_counts_are_refused(flagged: int, units: int) -> None:
    with pytest.raises(ValueError, match="flagged"):
        false_positive_upper_bound(flagged, units)


def test_the_bound_is_worked_out_from_an_evaluations_figures() -> None:
    figures = {"units": {"real": 6, "fake": 6}, "authentic_false_positive_rate": {"frame": 0.1, "video": 0.1667}}
    bound = false_positive_bound({"figures": figures}, target_fpr=0.05)
    assert bound["flagged"] == 1 and bound["units"] == 6
    assert bound["upper"] == pytest.approx(0.5818, abs=1e-4) and bound["limit"] == 0.075
    assert bound["within_limit"] is False and bound["units_needed_none_flagged"] == 39


def test_evaluate_reports_the_bound_and_writes_it_into_the_card(media: GateMedia, tmp_path: Path) -> None:
    """Five clean authentic units pass the gate (0 % flagged) while the true rate may be 45 %."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    units = [a for p in media.real for a in ("--real", str(p))] + [a for p in media.fake for a in ("--fake", str(p))]
    result = CliRunner().invoke(app, ["detector", "evaluate", str(folder), *units])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        "false-positive bound: 0 of 5 authentic units flagged: the true rate may be up to 0.451 "
        "(95% one-sided Clopper-Pearson upper bound; the gate's limit is 0.075); 39 authentic units with "
        "none flagged would bound it within the limit" in said
    ), said
    assert "holds authentic_false_positive_rate" in said  # the gate rule itself is unchanged
    evaluation = json.loads((folder / CARD_FILE).read_text())["evaluation"]
    assert evaluation["false_positive_bound"] == {
        "method": "one-sided Clopper-Pearson",
        "confidence": 0.95,
        "flagged": 0,
        "units": 5,
        "upper": 0.4507,
        "limit": 0.075,
        "within_limit": False,
        "units_needed_none_flagged": 39,
    }


def test_list_shows_the_bound_of_a_registered_detector(media: GateMedia, tmp_path: Path, workspace, settings, mina):
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    register_detector(workspace, folder, "mina")
    listed = CliRunner().invoke(app, ["--home", str(settings.home), "detector", "list"])
    assert listed.exit_code == 0, listed.output
    said = " ".join(listed.output.split())
    assert (
        "used by verify false-positive bound: 0 of 5 authentic units flagged: the true rate may be up to 0.451" in said
    )
    assert "39 authentic units with none flagged" in said
