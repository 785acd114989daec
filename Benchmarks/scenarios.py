"""What one benchmark child process does (each scenario runs in a fresh process, so its peak RSS
is its own). Every function takes a JSON-able dict and returns one; times are time.monotonic()
(system-wide), so the parent can line phases up with its memory samples."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegmentationLib import cascade, pipeline, preprocess
from InnerEarSegmentationLib.inference import open_session, predict_volume
from InnerEarSegmentationLib.metrics import per_label_dice
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.outputs import write_report, write_segmentation
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.progress import Progress
from InnerEarSegmentationLib.slicing import view_axis
from InnerEarSegmentationLib.surface import write_surface

import arithmetic
import fixtures


class Phases:
    """Named intervals of time.monotonic(), for attributing memory samples and wall time."""

    def __init__(self) -> None:
        self.marks: list[list] = []

    def start(self, name: str) -> None:
        now = time.monotonic()
        if self.marks and self.marks[-1][2] is None:
            self.marks[-1][2] = now
        self.marks.append([name, now, None])

    def stop(self) -> None:
        if self.marks and self.marks[-1][2] is None:
            self.marks[-1][2] = time.monotonic()


class _HeaderImage:
    """Enough of a sitk.Image (size, index -> point) for preprocess.model_grid, from a file header."""

    def __init__(self, path: Path) -> None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        self.size = reader.GetSize()
        self.origin = np.array(reader.GetOrigin())
        self.matrix = np.array(reader.GetDirection()).reshape(3, 3) * np.array(reader.GetSpacing())

    def GetSize(self):
        return self.size

    def TransformContinuousIndexToPhysicalPoint(self, index):
        return tuple(self.origin + self.matrix @ np.asarray(index, float))


class Oracle:
    """Stands in for cascade.predict_volume: runs the real network on the real (cropped,
    down-sampled) input for its time, then returns the phantom's TRUE labels on that region as
    probabilities, so that an untrained published-size network times the work a trained model's
    boxes would give, while the masks, boxes, components and mapping back are realistic."""

    def __init__(self, truth: np.ndarray, stages) -> None:
        self.truth, self.stages = truth, list(stages)
        self.region = tuple(slice(0, n) for n in truth.shape)
        self.calls: list[dict] = []
        self._real_region_around = cascade.region_around

    def region_around(self, mask, margin, multiple):
        self.region = self._real_region_around(mask, margin, multiple)
        return self.region

    def predict_volume(self, session, channels, view, batch_size, progress):
        stage = self.stages[len(self.calls)]
        clock = time.perf_counter()
        predict_volume(session, channels, view, batch_size, progress)
        network = time.perf_counter() - clock
        factor = cascade.stage_factor(stage)
        truth = self.truth[self.region]
        onehot = np.stack([(truth == k).astype(np.float32) for k in range(4)])
        result = cascade.downsample(onehot, factor)
        self.calls.append({"stage": stage.name, "view": view, "input_shape": list(channels.shape),
                           "network_s": network, "oracle_s": time.perf_counter() - clock - network})
        return result


def label_dice(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Dice of the labyrinth (all labels) and of each label value present in either volume."""
    scores = {"labyrinth": per_label_dice(pred > 0, truth > 0, [1])[1]}
    values = range(1, int(max(pred.max(), truth.max())) + 1)
    scores.update({str(value): score for value, score in per_label_dice(pred, truth, list(values)).items()})
    return scores


def run_pipeline(job: dict) -> dict:
    """The real pipeline on a scan file, then the writers and the surface, phase by phase."""
    phases = Phases()
    scan, out = Path(job["scan"]), Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    phases.start("load_model")
    settings = SegmentationSettings(device="cpu", batch_size=job.get("batch_size", 16), threads=job.get("threads", 0))
    segmenter = Segmenter(load_model(job["model"]), settings)
    segmenter.sessions()
    oracle = None
    if job.get("oracle"):
        phases.start("oracle_setup")
        grid = preprocess.model_grid(_HeaderImage(scan), segmenter.model.grid_size)
        phantom = fixtures.phantom_of(job["recipe"])
        truth = sitk.GetArrayFromImage(phantom.labels_on(grid))
        oracle = Oracle(truth, segmenter.stages)
        cascade.predict_volume, cascade.region_around = oracle.predict_volume, oracle.region_around
    boxes = {}
    real_run_cascade = pipeline.run_cascade

    def recording_cascade(*args, **kwargs):
        output = real_run_cascade(*args, **kwargs)
        boxes.update(output.boxes)  # a mirror average's output holds both passes' boxes
        return output

    pipeline.run_cascade = recording_cascade
    marks = {"resampling": "resample", "slices": "cascade", "mapping": "resample_back", "done": "report"}

    def on_progress(fraction: float, message: str) -> None:
        for word, phase in marks.items():
            if word in message.split() or message.startswith(word):
                if phases.marks[-1][0] != phase:
                    phases.start(phase)

    phases.start("read")
    clock = time.perf_counter()
    result = segmenter.segment_file(scan, Progress(on_progress))
    segment_seconds = time.perf_counter() - clock
    phases.start("write")
    clock = time.perf_counter()
    write_segmentation(result.labelmap, result.labels, out / "scan.seg.nrrd", result.report, overwrite=True)
    write_report(result.report, out / "scan.report.json", overwrite=True)
    write_seconds = time.perf_counter() - clock
    phases.start("surface")
    clock = time.perf_counter()
    write_surface(result.labelmap, result.labels, out / "scan.stl", result.report, overwrite=True)
    surface_seconds = time.perf_counter() - clock
    phases.stop()
    timings = dict(result.report["timings_s"])
    network = {}
    if oracle is not None:
        for call in oracle.calls:
            key = f"stage_{call['stage']}"
            timings[key] = round(timings[key] - call["oracle_s"], 3)
            network[call["stage"]] = call
        segment_seconds -= sum(c["oracle_s"] for c in oracle.calls)
    timings["report_and_checks"] = round(segment_seconds - sum(timings.values()), 3)
    timings["write"] = round(write_seconds, 3)
    timings["surface"] = round(surface_seconds, 3)
    answer = {"timings": timings, "total_s": segment_seconds + write_seconds + surface_seconds,
              "boxes": boxes, "network_calls": network, "phases": phases.marks,
              "scan_size": list(result.report["input"]["size"]), "segments": result.report["segments"],
              "grid_size": segmenter.model.grid_size}
    labels_file = job.get("labels")
    del result
    if labels_file and not job.get("oracle"):
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scan.seg.nrrd")))
        answer["dice_vs_truth"] = label_dice(predicted, sitk.GetArrayFromImage(sitk.ReadImage(labels_file)))
    return answer


def stage_shapes(boxes: dict, model) -> list[tuple]:
    """(stage, [C, Z, Y, X] network input shape) of each stage for the cascade boxes of a run."""
    shapes = []
    for stage in model.stages:
        box = boxes[stage.name]
        factor = cascade.stage_factor(stage)
        shapes.append((stage, [len(stage.channels)] + [(b - a) // factor for a, b in box]))
    return shapes


def time_networks(job: dict) -> dict:
    """predict_volume on inputs of the given shapes: each model x batch size x thread count;
    with FLOPs from the graph for the floor."""
    rows = []
    rng = np.random.default_rng(0)
    for variant in job["variants"]:
        model = load_model(variant["model"])
        for stage, shape in stage_shapes(job["boxes"], model):
            if variant.get("stages") and stage.name not in variant["stages"]:
                continue
            channels = rng.standard_normal(shape, dtype=np.float32)
            channels[1:] = channels[1:] > 0.5
            axis = view_axis(stage.view)
            flops = arithmetic.stage_flops(load_model(job["float_model"]).stage_path(stage), tuple(shape[1:]), axis)
            for threads in variant.get("threads", [0]):
                session, _ = open_session(model.stage_path(stage), "cpu", threads)
                predict_volume(session, _warm(channels, axis), stage.view, 4, Progress())
                for batch in variant.get("batches", [16]):
                    clock = time.perf_counter()
                    predict_volume(session, channels, stage.view, batch, Progress())
                    seconds = time.perf_counter() - clock
                    rows.append({"variant": variant["name"], "stage": stage.name, "view": stage.view,
                                 "shape": shape, "slices": shape[axis + 1], "threads": threads, "batch": batch,
                                 "seconds": seconds, "flops": flops})
                del session
    return {"rows": rows}


def _warm(channels: np.ndarray, axis: int) -> np.ndarray:
    """A few slices of the input, to let onnxruntime allocate and pick kernels before timing."""
    index = [slice(None)] * 4
    index[axis + 1] = slice(0, 4)
    return np.ascontiguousarray(channels[tuple(index)])


def components(job: dict) -> dict:
    """scipy.ndimage.label (the library) vs cc3d on real masks: seconds and numpy peak memory."""
    import tracemalloc

    from InnerEarSegmentationLib.postprocess import largest_component

    try:
        import cc3d
    except ImportError:
        cc3d = None
    masks = {}
    recipe = job["recipe_256"]
    grid_path = Path(job["scan_256"])
    grid = preprocess.model_grid(_HeaderImage(grid_path), job["grid"])
    truth = sitk.GetArrayFromImage(fixtures.phantom_of(recipe).labels_on(grid)) > 0
    masks[f"{job['grid']}³ model grid, true mask"] = truth
    speckled = truth.copy()
    speckled[np.random.default_rng(0).random(truth.shape) < 0.002] = True
    masks[f"{job['grid']}³ model grid, true mask + 0.2% speckle"] = speckled
    if job.get("labelmap") and Path(job["labelmap"]).is_file():
        labels = sitk.GetArrayFromImage(sitk.ReadImage(job["labelmap"]))
        hits = [np.nonzero(labels.any(axis=tuple(a for a in range(3) if a != k)))[0] for k in range(3)]
        box = tuple(slice(max(h[0] - 2, 0), h[-1] + 3) for h in hits)
        masks[f"labelmap box on the {labels.shape[0]}³ scan grid {list(labels[box].shape)}"] = labels[box] > 0
        del labels
    rows = []
    for name, mask in masks.items():
        for method in ("scipy", "cc3d"):
            if method == "cc3d" and cc3d is None:
                continue
            tracemalloc.start()
            clock = time.perf_counter()
            if method == "scipy":
                kept = largest_component(mask)
            else:
                kept = cc3d.largest_k(mask, k=1, connectivity=26, delta=0) > 0
            seconds = time.perf_counter() - clock
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append({"mask": name, "voxels": int(mask.size), "method": method, "seconds": seconds,
                         "peak_numpy_bytes": peak, "kept": int(kept.sum())})
    return {"rows": rows, "cc3d": getattr(cc3d, "__version__", "installed") if cc3d else None}


def resample(job: dict) -> dict:
    """preprocess.resample_to_grid alone on a large scan, with the library's _shrink_for or a variant."""
    phases = Phases()
    phases.start("read")
    image = sitk.ReadImage(job["scan"])
    grid = preprocess.model_grid(image, job["grid"])
    rules = {"floor": lambda ratio: int(ratio), "ceil-half": lambda ratio: int(np.ceil(ratio / 2))}

    def shrink(image, target_spacing):
        factors = [max(1, rules[job["shrink"]](target_spacing / s)) for s in image.GetSpacing()]
        return image if max(factors) == 1 else sitk.BinShrink(image, factors)

    if job.get("shrink", "library") != "library":
        preprocess._shrink_for = shrink
    phases.start("resample")
    clock = time.perf_counter()
    array = preprocess.resample_to_grid(image, grid)
    seconds = time.perf_counter() - clock
    phases.stop()
    if job.get("save"):
        np.save(job["save"], array)
    return {"seconds": seconds, "phases": phases.marks, "shape": list(array.shape), "mean": float(array.mean())}


def _recording_cascade(image, model, sessions, record: dict | None = None, batch_size: int = 16):
    """run_cascade with each stage's network input kept in ``record`` (stage name -> list)."""
    real = cascade.predict_volume
    calls = []

    def recorder(session, channels, view, batch, progress):
        stage = model.stages[len(calls)]
        calls.append(stage.name)
        if record is not None:
            record.setdefault(stage.name, []).append(channels.copy())
        clock = time.perf_counter()
        result = real(session, channels, view, batch, progress)
        network_seconds[stage.name] = time.perf_counter() - clock
        return result

    network_seconds: dict = {}
    cascade.predict_volume = recorder
    try:
        output = cascade.run_cascade(image, model.stages, sessions, model.threshold, True, True, batch_size)
    finally:
        cascade.predict_volume = real
    labels = np.where(output.mask, np.argmax(output.probabilities[1:], axis=0) + 1, 0).astype(np.uint8)
    return labels, output, network_seconds


def _phantom_grid_case(seed: int, modality: str, grid_size: int, normalisation: dict):
    from InnerEarSegmentationLib.phantom import make_phantom
    from innerear_training.data import phantom_options

    phantom = make_phantom(seed, modality, **phantom_options(modality, 256))
    prepared = preprocess.prepare(phantom.image(), grid_size, normalisation)
    truth = sitk.GetArrayFromImage(phantom.labels_on(prepared.grid))
    return prepared.array, truth, list(phantom.size)


def int8_accuracy(job: dict) -> dict:
    """Quantises a trained model (calibrated on training-distribution phantoms) and compares the
    int8 cascade with float32 on held-out phantoms: Dice between them and against the truth."""
    model = load_model(job["model"])
    sessions = [open_session(model.stage_path(s), "cpu")[0] for s in model.stages]
    calibration: dict = {}
    for index, seed in enumerate(job["calibration_seeds"]):
        modality = ("clinical", "microct")[index % 2]
        image, _, _ = _phantom_grid_case(seed, modality, model.grid_size, model.normalisation)
        _recording_cascade(image, model, sessions, calibration)
    int8_folder = fixtures.quantize_folder(Path(job["model"]), Path(job["target"]), calibration,
                                           job.get("method", "MinMax"))
    int8 = load_model(int8_folder)
    int8_sessions = [open_session(int8.stage_path(s), "cpu")[0] for s in int8.stages]
    rows = []
    for index, seed in enumerate(job["eval_seeds"]):
        modality = ("clinical", "microct")[index % 2]
        image, truth, size = _phantom_grid_case(seed, modality, model.grid_size, model.normalisation)
        f32, _, f32_seconds = _recording_cascade(image, model, sessions)
        q8, _, q8_seconds = _recording_cascade(image, int8, int8_sessions)
        rows.append({"seed": seed, "modality": modality, "scan_size": size,
                     "dice_int8_vs_float32": label_dice(q8, f32),
                     "dice_float32_vs_truth": label_dice(f32, truth), "dice_int8_vs_truth": label_dice(q8, truth),
                     "network_s_float32": sum(f32_seconds.values()), "network_s_int8": sum(q8_seconds.values())})
    return {"rows": rows, "int8_model": str(int8_folder), "method": job.get("method", "MinMax")}


def quantize_published(job: dict) -> dict:
    """int8 copy of the untrained published-size model, calibrated on the 256³ phantom's real
    stage inputs (image on the grid, true masks on the oracle boxes): for its speed only."""
    model = load_model(job["model"])
    image = sitk.ReadImage(job["scan"])
    prepared = preprocess.prepare(image, model.grid_size, model.normalisation)
    truth = sitk.GetArrayFromImage(fixtures.phantom_of(job["recipe"]).labels_on(prepared.grid)) > 0
    volumes = {"image": prepared.array, **{s.name: truth.astype(np.float32) for s in model.stages}}
    calibration = {}
    for stage in model.stages:
        region = tuple(slice(a, b) for a, b in job["boxes"][stage.name])
        stack = np.stack([volumes[name][region] for name in stage.channels])
        calibration[stage.name] = [cascade.downsample(stack, cascade.stage_factor(stage))]
    folder = fixtures.quantize_folder(Path(job["model"]), Path(job["target"]), calibration)
    return {"int8_model": str(folder)}


def make_fixtures(job: dict) -> dict:
    work = Path(job["work"])
    scans = {}
    for size in job["sizes"]:
        scan, labels, recipe = fixtures.scan_file(size, work / "scans")
        scans[str(size)] = {"scan": str(scan), "labels": str(labels) if labels else None, "recipe": recipe}
    published = fixtures.published_model(work / f"published-unet{job['base']}-grid{job['grid']}",
                                         job["base"], job["grid"])
    return {"scans": scans, "published": str(published)}


JOBS = {"pipeline": run_pipeline, "networks": time_networks, "components": components, "resample": resample,
        "int8_accuracy": int8_accuracy, "quantize_published": quantize_published, "fixtures": make_fixtures}


def main(kind: str, job_file: str, answer_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    answer = JOBS[kind](job)
    Path(answer_file).write_text(json.dumps(answer))
