"""The inner-ear-seg command on real files: one scan, a folder, refusals with clear messages."""

from __future__ import annotations

import json

import SimpleITK as sitk

from conftest import blob_scan
from InnerEarSegmentationLib.cli import main


def write_scan(path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(blob_scan(**kwargs), str(path))
    return path


def test_segments_one_file_with_every_output(tiny_model, tmp_path, capsys):
    scan = write_scan(tmp_path / "in" / "case01.nii.gz")
    out = tmp_path / "out"
    code = main([str(scan), "-o", str(out), "--model", str(tiny_model), "--labelmap", "--surface", "obj", "--report", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["case01-label.nrrd", "case01.obj", "case01.report.json", "case01.seg.nrrd"]
    report = json.loads((out / "case01.report.json").read_text())
    assert report["input"]["source"] == str(scan)
    labels = sitk.ReadImage(str(out / "case01-label.nrrd"))
    assert labels.GetSize() == (40, 36, 30) and sitk.GetArrayViewFromImage(labels).max() == 1
    assert "1 of 1 scan(s) segmented" in capsys.readouterr().out
    assert report["settings"]["mirror_average"] is False  # the tiny model's manifest does not ask


def test_mirror_average_can_be_asked_for_and_is_recorded(tiny_model, tmp_path):
    scan = write_scan(tmp_path / "ear.nrrd")
    out = tmp_path / "out"
    assert main([str(scan), "-o", str(out), "--model", str(tiny_model), "--report", "--quiet", "--mirror-average"]) == 0
    report = json.loads((out / "ear.report.json").read_text())
    assert report["settings"]["mirror_average"] is True and "mirror_average" in report["timings_s"]


def test_folder_run_skips_label_files_and_reports_each(tiny_model, tmp_path, capsys):
    folder = tmp_path / "scans"
    write_scan(folder / "a.nrrd")
    write_scan(folder / "b.mha", spacing=(0.3, 0.3, 0.3))
    sitk.WriteImage(sitk.Cast(blob_scan() > 0, sitk.sitkUInt8), str(folder / "a-label.nrrd"))
    (folder / "notes.txt").write_text("not a scan")
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out), "--model", str(tiny_model)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.seg.nrrd", "b.seg.nrrd"]
    captured = capsys.readouterr()
    assert "2 of 2 scan(s) segmented" in captured.out
    assert "b [" in captured.err and "100%" in captured.err  # a progress bar per scan


def test_existing_output_is_kept_and_the_user_told_how_to_replace_it(tiny_model, tmp_path, capsys):
    scan = write_scan(tmp_path / "ear.nrrd")
    out = tmp_path / "out"
    out.mkdir()
    (out / "ear.seg.nrrd").write_text("earlier work")
    assert main([str(scan), "-o", str(out), "--model", str(tiny_model), "--quiet"]) == 1
    assert (out / "ear.seg.nrrd").read_text() == "earlier work"
    assert "--overwrite" in capsys.readouterr().err
    assert main([str(scan), "-o", str(out), "--model", str(tiny_model), "--quiet", "--overwrite"]) == 0
    assert sitk.ReadImage(str(out / "ear.seg.nrrd")).GetSize() == (40, 36, 30)


def test_one_bad_scan_does_not_stop_the_folder(tiny_model, tmp_path, capsys):
    folder = tmp_path / "scans"
    write_scan(folder / "good.nrrd")
    (folder / "broken.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n\0\0")
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out), "--model", str(tiny_model), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "broken.nrrd" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["good.seg.nrrd"]


def test_missing_input_and_bad_model_exit_with_a_message(tiny_model, tmp_path, capsys):
    assert main([str(tmp_path / "nowhere.nrrd"), "--model", str(tiny_model)]) == 2
    assert "does not exist" in capsys.readouterr().err
    scan = write_scan(tmp_path / "ear.nrrd")
    assert main([str(scan), "--model", str(tmp_path)]) == 2
    assert "No model manifest" in capsys.readouterr().err
