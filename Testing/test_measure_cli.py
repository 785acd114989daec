"""Measurements in the report and on the command line: a reason when they cannot be made."""

from __future__ import annotations

import json

from test_cli import write_scan
from InnerEarSegmentationLib.cli import main


def test_a_round_cochlea_gets_a_reason_not_a_number(tiny_model, tmp_path, capsys):
    """The tiny model labels the blob scan's sphere 'Cochlea': no spiral, so no figures."""
    scan = write_scan(tmp_path / "in" / "blob.nrrd")
    out = tmp_path / "out"
    assert main([str(scan), "-o", str(out), "--model", str(tiny_model), "--report", "--quiet"]) == 0
    report = json.loads((out / "blob.report.json").read_text())
    cochlea = report["measurements"]["cochlea"]
    assert cochlea["status"].startswith("cannot measure: ")
    assert "a_value_mm" not in cochlea
    assert f"blob.nrrd: {cochlea['status']}" in capsys.readouterr().out
    assert "measure" in report["timings_s"]


def test_no_measure_skips_the_section(tiny_model, tmp_path, capsys):
    scan = write_scan(tmp_path / "in" / "blob.nrrd")
    out = tmp_path / "out"
    assert main([str(scan), "-o", str(out), "--model", str(tiny_model), "--report", "--quiet", "--no-measure"]) == 0
    report = json.loads((out / "blob.report.json").read_text())
    assert "measurements" not in report and report["settings"]["measure"] is False
    assert "cannot measure" not in capsys.readouterr().out
