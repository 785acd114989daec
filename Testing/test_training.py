"""The training tools (Training/): a tiny cascade trained on two phantoms, exported, loaded with
load_model and run by the inference engine. Skipped where torch (a training-only dependency) is
absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Training"))

from innerear_training.networks import UNet2D  # noqa: E402
from innerear_training.onnx_export import export_stage  # noqa: E402


@pytest.mark.parametrize("arch", ["unet", "resunet", "seunet"])
def test_export_matches_torch_and_ends_in_softmax(tmp_path, arch):
    net = UNet2D(2, 4, base=4, arch=arch)
    net.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics to fold
        for _ in range(3):
            net(torch.randn(4, 2, 16, 16) * 3 + 1)
    path = tmp_path / "stage.onnx"
    assert export_stage(net, path, 2, size=16) < 1e-4
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((3, 2, 24, 40), np.float32)})[0]
    assert out.shape == (3, 4, 24, 40)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_tiny_cascade_trains_exports_and_runs(tmp_path):
    import SimpleITK as sitk

    from InnerEarSegmentationLib.cascade import run_cascade
    from InnerEarSegmentationLib.errors import InputError
    from InnerEarSegmentationLib.model import load_model
    from InnerEarSegmentationLib.phantom import make_phantom
    from InnerEarSegmentationLib.capsule import lies_in_bone
    from InnerEarSegmentationLib.pipeline import MIN_EAR_MM3, SegmentationSettings, Segmenter
    from InnerEarSegmentationLib.preprocess import prepare
    from innerear_training import train

    out = tmp_path / "model"
    code = train.main([
        "--out", str(out), "--workdir", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
        "--train-phantoms", "2", "--modalities", "clinical", "--grid", "32", "--base", "4",
        "--max-epochs", "1", "--steps-per-epoch", "2", "--batch", "4", "--val-fraction", "0",
        "--min-extent-mm", "40", "--id", "tiny-test",
    ])
    assert code == 0
    manifest = load_model(out)
    assert [s.view for s in manifest.stages] == ["coronal", "sagittal", "axial"]
    assert [s.channels for s in manifest.stages] == [("image",), ("image", "stage1"), ("image", "stage2", "stage1")]
    assert [l.name for l in manifest.labels] == ["Cochlea", "Vestibule", "Semicircular canals"]
    assert manifest.grid_size == 32
    assert manifest.min_extent_mm == 40.0  # inference pads tight crops as training did
    prepared_cases = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(prepared_cases) == 2
    for prepared in prepared_cases:  # the phantoms' fields of view are under 40 mm
        grid = json.loads(bytes(np.load(prepared)["grid"]).decode())
        assert grid["spacing"][0] == pytest.approx(40.0 / 32)
    raw = json.loads((out / "manifest.json").read_text())
    assert "synthetic phantoms only" in raw["description"].lower().replace("\n", " ")
    assert raw["training"]["base_width"] == 4 and raw["licence"] == "Apache-2.0"
    assert "SCT^80169004^Cochlea" in raw["labels"][0]["terminology"]  # Slicer shows coded segments

    for stage in manifest.stages:  # the ONNX contract the engine relies on
        session = ort.InferenceSession(str(manifest.stage_path(stage)), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((2, len(stage.channels), 32, 32)).astype(np.float32)
        y = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert y.shape == (2, 4, 32, 32) and y.dtype == np.float32
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)

    # Two training steps may or may not find a labyrinth; what the pipeline does with either
    # outcome is fixed: a labelmap on the scan's grid, or the one "no inner ear" refusal exactly
    # when the cascade's own mask holds no ear (empty, under MIN_EAR_MM3, or not fluid in bone).
    image = make_phantom(5, "clinical").image()
    segmenter = Segmenter(manifest, SegmentationSettings(device="cpu"))
    prepared = prepare(image, manifest.grid_size, manifest.normalisation, manifest.min_extent_mm)
    cascade = run_cascade(prepared.array, segmenter.stages, segmenter.sessions(), manifest.threshold,
                          mirror_average=segmenter.mirror_average)
    assert cascade.probabilities.shape == (4, 32, 32, 32)
    np.testing.assert_allclose(cascade.probabilities.sum(axis=0), 1.0, atol=1e-4)
    spacing = prepared.grid.GetSpacing()[0]
    if cascade.mask.sum() * spacing ** 3 >= MIN_EAR_MM3 and \
            lies_in_bone(prepared.array, cascade.mask, spacing, manifest.normalisation):
        result = segmenter.segment(image)
        labels = sitk.GetArrayFromImage(result.labelmap)
        assert result.labelmap.GetSize() == image.GetSize() and labels.any()
        assert [s["voxels"] for s in result.report["segments"]] == [int((labels == v).sum()) for v in (1, 2, 3)]
    else:
        with pytest.raises(InputError, match="No inner ear was found"):
            segmenter.segment(image)


def test_folds_keep_each_scan_in_one_fold():
    from innerear_training.cv import folds_of

    cases = list(range(10))
    folds = folds_of(cases, 4)
    assert sorted(c for fold in folds for c in fold) == cases
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(folds) for b in folds[i + 1:])


def test_an_interrupted_training_resumes_where_it_stopped(tmp_path, capsys):
    """A finished stage is not trained again; a stage stopped mid-way goes on from its last epoch
    (its budget counting the time already spent); other settings start afresh."""
    from innerear_training import train

    arguments = [
        "--out", str(tmp_path / "model"), "--workdir", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
        "--train-phantoms", "1", "--modalities", "clinical", "--grid", "32", "--base", "4",
        "--max-epochs", "2", "--steps-per-epoch", "1", "--batch", "4", "--val-fraction", "0",
        "--min-extent-mm", "40", "--specimens", "",
    ]
    assert train.main(arguments) == 0
    capsys.readouterr()
    (tmp_path / "work" / "stage3.pt").unlink()  # as if stopped during stage 3
    partial = torch.load(tmp_path / "work" / "stage3.partial.pt", weights_only=False)
    partial.update(epoch=1, history=partial["history"][:1])
    torch.save(partial, tmp_path / "work" / "stage3.partial.pt")
    assert train.main(arguments) == 0
    log = capsys.readouterr().out
    assert log.count("not retrained") == 2
    assert "stage 3: resuming after epoch 1" in log
    assert "stage 3 (axial) epoch 2" in log and "stage 3 (axial) epoch 1" not in log
    assert train.main(arguments[:-2] + ["--specimens", "", "--seed", "1"]) == 0
    log = capsys.readouterr().out
    assert "not retrained" not in log and "from other settings; starting afresh" in log


def test_an_exported_stage_warm_starts_training_exactly_where_the_export_left_off(tmp_path):
    """The export folds BatchNorm into the convolutions; loading it back (BatchNorm calibrated on
    training input) must compute what onnxruntime computes from the file."""
    from innerear_training.warm_start import load_exported

    source = UNet2D(2, 4, base=4)
    source.train()
    with torch.no_grad():
        for _ in range(3):
            source(torch.randn(4, 2, 16, 16) * 2 + 0.5)
    path = tmp_path / "stage.onnx"
    export_stage(source, path, 2, size=16)
    net = UNet2D(2, 4, base=4)
    load_exported(net, path, [torch.randn(4, 2, 16, 16) * 2 + 0.5 for _ in range(3)])
    net.eval()
    x = np.random.default_rng(1).standard_normal((3, 2, 16, 16)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    fresh = UNet2D(2, 4, base=4).eval()
    with torch.no_grad():
        assert np.abs(torch.softmax(fresh(torch.from_numpy(x)), dim=1).numpy() - expected).max() > 1e-2


def test_a_box_model_trains_on_boxes_round_the_labyrinth_behind_its_locator(tmp_path, capsys):
    """--roi-extent-mm prepares every scan as a fixed cube round its labyrinth; the exported model
    carries the whole-field model's stage 1 as its locator, and --init-from starts from its stages."""
    from InnerEarSegmentationLib.model import load_model
    from innerear_training import train

    common = ["--cache", str(tmp_path / "cache"), "--train-phantoms", "2", "--modalities", "clinical",
              "--grid", "32", "--base", "4", "--max-epochs", "1", "--steps-per-epoch", "1", "--batch", "4",
              "--val-fraction", "0"]
    whole = tmp_path / "whole"
    assert train.main(["--out", str(whole), "--workdir", str(tmp_path / "w1"), "--min-extent-mm", "40",
                       "--id", "tiny-whole", *common]) == 0
    box = tmp_path / "box"
    with pytest.raises(SystemExit):  # a box model is useless without a locator to place the box
        train.main(["--out", str(box), "--roi-extent-mm", "24", *common])
    assert train.main(["--out", str(box), "--workdir", str(tmp_path / "w2"), "--roi-extent-mm", "24",
                       "--locator", str(whole), "--init-from", str(whole), "--id", "tiny-box", *common]) == 0
    assert "starting from the exported" in capsys.readouterr().out
    manifest = load_model(box)
    assert manifest.roi_extent_mm == 24.0 and manifest.locator.grid_size == 32
    assert manifest.locator.min_extent_mm == 40.0
    assert (box / "locator.onnx").read_bytes() == (whole / "stage1.onnx").read_bytes()
    boxes = [p for p in (tmp_path / "cache").glob("*roi24*.npz")]
    assert len(boxes) == 2
    for prepared in boxes:
        stored = np.load(prepared)
        grid = json.loads(bytes(stored["grid"]).decode())
        assert grid["spacing"][0] == pytest.approx(24.0 / 32)
        labels = stored["labels"] > 0
        centre = np.argwhere(labels).mean(axis=0)
        assert np.all(np.abs(centre - 15.5) * grid["spacing"][0] < 4.5)  # within the locator's error


def test_a_warm_start_into_another_label_table_keeps_every_layer_but_the_output(tmp_path):
    """A one-class locator starts from a three-structure stage: all but the output layer carry over."""
    from innerear_training.warm_start import load_exported

    source = UNet2D(1, 4, base=4)
    with torch.no_grad():  # BatchNorm statistics away from the identity, as after training
        for _ in range(3):
            source(torch.randn(4, 1, 16, 16) * 2 + 0.5)
    path = tmp_path / "stage.onnx"
    export_stage(source, path, 1, size=16)
    net = UNet2D(1, 2, base=4)
    torch.manual_seed(3)
    before = {key: value.clone() for key, value in net.state_dict().items()}
    load_exported(net, path, [torch.randn(4, 1, 16, 16) for _ in range(2)])
    changed = {key for key, value in net.state_dict().items()
               if value.dtype.is_floating_point and not torch.equal(value, before[key])}
    unchanged = {key for key in before if key not in changed and before[key].dtype.is_floating_point}
    output = {key for key in before if tuple(before[key].shape) != tuple(source.state_dict()[key].shape)}
    assert output and output <= unchanged  # the 2-class head stays as initialised
    assert any(key.endswith("weight") for key in changed) and len(changed) > len(unchanged)


def test_grown_targets_are_every_voxel_within_reach_of_the_labyrinth():
    from innerear_training.data import Case, grow_targets

    labels = np.zeros((21, 21, 21), np.uint8)
    labels[10, 10, 10] = 3
    case = Case("dot", np.zeros(labels.shape, np.float32), labels, spacing=0.5)
    grow_targets([case], 2.0)
    z, y, x = np.mgrid[:21, :21, :21]
    expected = ((z - 10) ** 2 + (y - 10) ** 2 + (x - 10) ** 2) * 0.25 <= 4.0
    np.testing.assert_array_equal(case.labels, expected.astype(np.uint8))
    assert case.labels.max() == 1  # one class


@pytest.mark.parametrize("any_orientation, expected", [(False, 2), (True, 8)])
def test_a_locator_can_train_on_slices_in_every_orientation(any_orientation, expected):
    """An L-shaped mark in a coronal slice: mirroring alone gives it two poses, mirroring with
    quarter turns all eight (a head stored upside down or on its side looks like one of them)."""
    from innerear_training.data import Case
    from innerear_training.train import SlicePool, TrainConfig

    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:6, 4, 2] = 1  # along z
    labels[2, 4, 2:5] = 1  # and along x from one end: no turn or flip maps it onto itself
    image = labels.astype(np.float32)[None]
    config = TrainConfig(crop=0, any_orientation=any_orientation)
    pool = SlicePool([image], [labels], [Case("mark", image[0], labels, 1.0)], "coronal", config,
                     np.random.default_rng(0))
    _, targets = pool.batch([(0, 4)] * 200, augment=True)
    poses = {target.numpy().tobytes() for target in targets}
    assert len(poses) == expected
