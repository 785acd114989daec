"""Trains the auto-context cascade (coronal -> sagittal -> axial) and exports it as a model folder.

    cd Training
    python -m innerear_training.train --out /tmp/innerear-model --train-phantoms 48 \
        --modalities clinical,microct --grid 128 --base 16 --stage-minutes 15

The shipped model's recipe is a file of arguments (later arguments override it):

    python -m innerear_training.train @recipes/model-2.0.args --out /tmp/model-2.0

Run the same command again after an interruption: finished stages are kept and the stage that
was running goes on from its last epoch. A CUDA GPU is used where there is one.

Stage 1 sees [image] on coronal slices, stage 2 [image, stage-1 mask] on sagittal slices, stage 3
[image, stage-2 mask, stage-1 mask] on axial slices. Each mask is the stage's post-processed output
(foreground = 1 - p(background) >= 0.5, largest 26-connected component) computed by the *exported*
ONNX stage through the inference engine's own code, so stage k is trained on exactly what stage
k-1 will feed it at run time.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from InnerEarSegmentationLib import preprocess
from InnerEarSegmentationLib.inference import open_session, predict_volume
from InnerEarSegmentationLib.metrics import dice
from InnerEarSegmentationLib.postprocess import foreground, largest_component, structure_labels
from InnerEarSegmentationLib.progress import Progress
from InnerEarSegmentationLib.slicing import extract_slices, view_axis

from . import data as datamod
from .networks import ARCHITECTURES, UNet2D
from .onnx_export import export_stage
from .warm_start import load_exported

STAGES = (
    {"name": "stage1", "file": "stage1.onnx", "view": "coronal", "channels": ["image"]},
    {"name": "stage2", "file": "stage2.onnx", "view": "sagittal", "channels": ["image", "stage1"]},
    {"name": "stage3", "file": "stage3.onnx", "view": "axial", "channels": ["image", "stage2", "stage1"]},
)


@dataclass
class TrainConfig:
    grid: int = 128
    min_extent_mm: float = 21.0
    roi_extent_mm: float = 0.0  # > 0: cubes of this size around the labyrinth (behind a locator)
    base: int = 16
    arch: str = "unet"
    lr: float = 1e-3
    batch: int = 16
    max_epochs: int = 40
    steps_per_epoch: int = 120
    patience: int = 5
    plateau_patience: int = 2
    stage_minutes: tuple = (15.0,)
    margin: int = 4
    other_fraction: float = 0.1
    crop: int = 64
    val_every: int = 2
    seed: int = 0
    threads: int = 2
    dropout: float = 0.2
    any_orientation: bool = False  # quarter turns and flips of each training slice (a locator's)
    stages: int = 3
    extra: dict = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- loss and metrics
def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice averaged over the foreground classes, over the batch)."""
    ce = F.cross_entropy(logits, target)
    probabilities = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    dims = (0, 2, 3)
    intersection = (probabilities * onehot).sum(dims)
    denominator = probabilities.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + 1.0) / (denominator + 1.0)
    return ce + (1.0 - dice.mean())


def structure_dice(labels_pred: np.ndarray, labels_true: np.ndarray, values: list[int]) -> dict[str, float]:
    result = {"labyrinth": dice(labels_pred > 0, labels_true > 0)}
    if len(values) > 1:
        for value in values:
            result[str(value)] = dice(labels_pred == value, labels_true == value)
    return result


# ----------------------------------------------------------------------------- one stage
class SlicePool:
    """The (case, slice) pairs a stage trains on, re-drawn each epoch for the 'other' slices."""

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray], cases, view: str,
                 config: TrainConfig, rng: np.random.Generator) -> None:
        self.inputs, self.targets, self.cases, self.view = inputs, targets, cases, view
        self.config, self.rng = config, rng

    def draw(self, fraction: float | None = None) -> list[tuple[int, int]]:
        fraction = self.config.other_fraction if fraction is None else fraction
        pairs = []
        for index, case in enumerate(self.cases):
            for s in datamod.select_slices(case, self.view, self.config.margin, fraction, self.rng):
                pairs.append((index, int(s)))
        return pairs

    def _crop_box(self, y: np.ndarray, case_index: int, augment: bool) -> tuple[slice, slice]:
        """A crop x crop window: around a random labyrinth pixel of the slice (training, 80%),
        anywhere (training, 20%), or on the labyrinth's centre (validation, deterministic)."""
        size = self.config.crop
        height, width = y.shape
        if not size or size >= min(height, width):
            return slice(None), slice(None)
        if augment:
            hits = np.argwhere(y > 0)
            if len(hits) and self.rng.random() < 0.8:
                centre = hits[self.rng.integers(len(hits))] + self.rng.integers(-size // 4, size // 4 + 1, 2)
            else:
                centre = self.rng.integers(0, [height, width])
        else:
            centre = self._centre(case_index, y)
        top = int(np.clip(centre[0] - size // 2, 0, height - size))
        left = int(np.clip(centre[1] - size // 2, 0, width - size))
        return slice(top, top + size), slice(left, left + size)

    def _centre(self, case_index: int, y: np.ndarray) -> np.ndarray:
        centres = self.__dict__.setdefault("_centres", {})
        if case_index not in centres:
            box = self.cases[case_index].bounding_box()
            axes = [a for a in range(3) if a != view_axis(self.view)]
            centres[case_index] = (np.array(y.shape) // 2 if box is None else
                                   np.array([(box[a].start + box[a].stop) // 2 for a in axes]))
        return centres[case_index]

    def batch(self, pairs: list[tuple[int, int]], augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for case_index, s in pairs:
            x = extract_slices(self.inputs[case_index], self.view, s, s + 1)[0]
            y = extract_slices(self.targets[case_index][None], self.view, s, s + 1)[0, 0]
            rows, cols = self._crop_box(y, case_index, augment)
            x, y = x[:, rows, cols], y[rows, cols]
            if augment:
                x = x.copy()
                x[0] = x[0] * self.rng.uniform(0.9, 1.1) + self.rng.uniform(-0.1, 0.1)
                # Left/right mirroring: the last in-plane axis is x (right-left) in the coronal
                # and axial views; a sagittal slice has no x axis, so it is left as it is.
                if self.view in ("coronal", "axial") and self.rng.random() < 0.5:
                    x, y = x[..., ::-1], y[..., ::-1]
                if self.config.any_orientation:  # a head stored upside down or on its side
                    turns = int(self.rng.integers(4))
                    x, y = np.rot90(x, turns, axes=(-2, -1)), np.rot90(y, turns)
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.int64))


def evaluate_slices(net, pool: SlicePool, pairs, batch: int) -> tuple[float, float]:
    """Mean loss and the validation score over validation slices: the mean of the pooled hard
    labyrinth Dice and the pooled hard Dice of each structure (so that early stopping watches
    the structure labels as well as the labyrinth)."""
    net.eval()
    device = next(net.parameters()).device
    losses = []
    classes = None
    with torch.inference_mode():
        for start in range(0, len(pairs), batch):
            x, y = pool.batch(pairs[start:start + batch], augment=False)
            x, y = x.to(device), y.to(device)
            logits = net(x)
            losses.append(float(dice_ce_loss(logits, y)) * len(x))
            predicted = logits.argmax(1)
            if classes is None:
                classes = np.zeros((logits.shape[1], 2), dtype=np.int64)
            for value in range(logits.shape[1]):
                p, t = (predicted > 0, y > 0) if value == 0 else (predicted == value, y == value)
                classes[value] += [int((p & t).sum()), int(p.sum()) + int(t.sum())]
    net.train()
    dices = [2 * i / n if n else 1.0 for i, n in classes]
    score = dices[0] if len(dices) <= 2 else 0.5 * dices[0] + 0.5 * float(np.mean(dices[1:]))
    return sum(losses) / max(len(pairs), 1), score


def training_device() -> torch.device:
    """A CUDA GPU where there is one, else the CPU (the slices are small; both work)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _same_run(stored: dict, config: TrainConfig) -> bool:
    return stored.get("config") == json.loads(json.dumps(asdict(config)))


def _exported(init: Path, number: int) -> Path | None:
    """The exported ONNX file a stage starts from, if there is one: the folder's stageN.onnx, or
    an .onnx file given for stage 1 (a model's locator.onnx, say)."""
    path = (init if number == 1 else None) if init.suffix == ".onnx" else init / f"stage{number}.onnx"
    return path if path is not None and path.is_file() else None


def train_stage(number: int, view: str, train: SlicePool, val: SlicePool | None, in_channels: int,
                num_classes: int, config: TrainConfig, workdir: Path | None = None) -> tuple[UNet2D, list[dict]]:
    """Trains one U-Net; early stopping on validation Dice, the best weights kept.

    After every epoch the whole state goes to ``workdir/stageN.partial.pt``; a run started again
    with the same settings continues from there (epoch, optimiser, best weights, time spent)."""
    torch.manual_seed(config.seed + number)
    device = training_device()
    net = UNet2D(in_channels, num_classes, config.base, config.arch, config.dropout)
    init = config.extra.get("init_from")
    if init and (Path(init) / f"stage{number}.pt").is_file():
        net.load_state_dict(torch.load(Path(init) / f"stage{number}.pt", map_location="cpu")["state"])
        log(f"stage {number}: starting from {Path(init) / f'stage{number}.pt'}")
    elif init and (exported := _exported(Path(init), number)) is not None:
        pairs = train.draw()
        chosen = [pairs[i] for i in train.rng.permutation(len(pairs))[: 8 * config.batch]]
        batches = [train.batch(chosen[i:i + config.batch], augment=False)[0] for i in range(0, len(chosen), config.batch)]
        load_exported(net, exported, batches)
        log(f"stage {number}: starting from the exported {exported}")
    net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="max", factor=0.5, patience=config.plateau_patience)
    val_pairs = val.draw()[:: config.val_every] if val is not None else []
    best, best_state, history, stale, first_epoch, spent = -float("inf"), None, [], 0, 1, 0.0
    checkpoint = workdir / f"stage{number}.partial.pt" if workdir is not None else None
    if checkpoint is not None and checkpoint.is_file():
        stored = torch.load(checkpoint, map_location=device, weights_only=False)
        if _same_run(stored, config):
            net.load_state_dict(stored["net"])
            optimiser.load_state_dict(stored["optimiser"])
            scheduler.load_state_dict(stored["scheduler"])
            best, best_state, history, stale = stored["best"], stored["best_state"], stored["history"], stored["stale"]
            first_epoch, spent = stored["epoch"] + 1, stored["seconds"]
            log(f"stage {number}: resuming after epoch {stored['epoch']} ({spent / 60:.1f} min done)")
        else:
            log(f"stage {number}: {checkpoint.name} is from other settings; starting afresh")
    started = time.time() - spent
    minutes = config.stage_minutes[min(number, len(config.stage_minutes)) - 1]
    budget = minutes * 60
    for epoch in range(first_epoch, config.max_epochs + 1):
        if time.time() - started > budget or stale >= config.patience:
            break
        pairs = train.draw()
        order = train.rng.permutation(len(pairs))
        steps = min(config.steps_per_epoch, max(1, len(pairs) // config.batch))
        losses = []
        net.train()
        for step in range(steps):
            chosen = [pairs[i] for i in order[step * config.batch:(step + 1) * config.batch]]
            if not chosen:
                break
            x, y = train.batch(chosen, augment=True)
            optimiser.zero_grad()
            loss = dice_ce_loss(net(x.to(device)), y.to(device))
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if time.time() - started > budget:
                break
        if val_pairs:
            val_loss, val_dice = evaluate_slices(net, val, val_pairs, 32)
        else:
            val_loss, val_dice = float("nan"), -float(np.mean(losses))
        scheduler.step(val_dice)
        record = {"epoch": epoch, "steps": len(losses), "train_loss": float(np.mean(losses)),
                  "val_loss": val_loss, "val_slice_dice": val_dice, "lr": optimiser.param_groups[0]["lr"],
                  "minutes": (time.time() - started) / 60}
        history.append(record)
        improved = val_dice > best
        if improved:
            best, best_state, stale = val_dice, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
        log(f"stage {number} ({view}) epoch {epoch}: train loss {record['train_loss']:.4f}, "
            f"val loss {val_loss:.4f}, val score {val_dice:.4f}{' *' if improved else ''} "
            f"[{record['minutes']:.1f} min, lr {record['lr']:.0e}]")
        if checkpoint is not None:
            torch.save({"config": json.loads(json.dumps(asdict(config))), "epoch": epoch, "net": net.state_dict(),
                        "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(), "best": best,
                        "best_state": best_state, "history": history, "stale": stale,
                        "seconds": time.time() - started}, checkpoint)
        if stale >= config.patience:
            log(f"stage {number}: early stop (no improvement for {config.patience} epochs)")
        elif time.time() - started > budget:
            log(f"stage {number}: time budget of {minutes} min reached")
    net.load_state_dict(best_state)
    net.cpu().eval()
    return net, history


# ----------------------------------------------------------------------------- cascade
def stage_outputs(onnx_path: Path, inputs: list[np.ndarray], view: str, threads: int,
                  threshold: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities [K,Z,Y,X], post-processed mask) per volume, through the inference engine."""
    session, _ = open_session(onnx_path, "cpu", threads)
    results = []
    for channels in inputs:
        probabilities = predict_volume(session, channels, view, 32, Progress())
        mask = largest_component(foreground(probabilities, threshold))
        results.append((probabilities, mask))
    return results


def train_cascade(train_cases, val_cases, config: TrainConfig, workdir: Path, num_classes: int,
                  evaluate_cases=None) -> dict:
    """Trains the stages in turn; returns nets, ONNX paths, history and validation Dice.

    ``evaluate_cases`` (default: the validation cases) get per-structure grid Dice for the
    single U-Net (stage 1 + largest component) and for every cascade stage.
    """
    torch.set_num_threads(config.threads)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    separate_eval = evaluate_cases is not None
    evaluate_cases = evaluate_cases if separate_eval else val_cases
    groups = {"train": train_cases, "val": val_cases}
    if separate_eval:
        groups["eval"] = evaluate_cases
    volumes = {g: [{"image": c.image} for c in cs] for g, cs in groups.items()}
    values = list(range(1, num_classes))
    result = {"nets": [], "onnx": [], "history": [], "eval_dice": {}, "stage_minutes": []}
    for number, stage in enumerate(STAGES[: config.stages], start=1):
        started = time.time()
        stacks = {g: [np.stack([v[name] for name in stage["channels"]]) for v in vols]
                  for g, vols in volumes.items()}
        train_pool = SlicePool(stacks["train"], [c.labels for c in train_cases], train_cases,
                               stage["view"], config, rng)
        val_pool = (SlicePool(stacks["val"], [c.labels for c in val_cases], val_cases, stage["view"],
                              config, np.random.default_rng(config.seed + 99)) if val_cases else None)
        log(f"stage {number}: {stage['view']} slices, channels {stage['channels']}, "
            f"~{len(train_pool.draw())} training slices in the pool")
        reuse = config.extra.get("reuse_from")
        finished = workdir / f"{stage['name']}.pt"
        stored = torch.load(finished, map_location="cpu", weights_only=False) if finished.is_file() else {}
        if _same_run(stored.get("run", {}), config):
            net = UNet2D(**stored["config"])
            net.load_state_dict(stored["state"])
            net.eval()
            history = stored.get("history", [])
            log(f"stage {number}: finished in an earlier run of these settings ({finished}); not retrained")
        elif reuse and number <= int(config.extra.get("reuse_stages", 0)):
            stored = torch.load(Path(reuse) / f"{stage['name']}.pt", map_location="cpu")
            net = UNet2D(**stored["config"])
            net.load_state_dict(stored["state"])
            net.eval()
            history = [{"epoch": 0, "reused_from": str(reuse), "val_slice_dice": float("nan")}]
            log(f"stage {number}: reused {Path(reuse) / (stage['name'] + '.pt')} (not retrained)")
        else:
            net, history = train_stage(number, stage["view"], train_pool, val_pool, len(stage["channels"]),
                                       num_classes, config, workdir)
        torch.save({"config": net.config, "state": net.state_dict(), "history": history,
                    "run": {"config": json.loads(json.dumps(asdict(config)))}}, finished)
        onnx_path = workdir / stage["file"]
        error = export_stage(net, onnx_path, len(stage["channels"]))
        log(f"stage {number}: exported {onnx_path.name} (onnxruntime vs torch max diff {error:.1e})")
        result["nets"].append(net)
        result["onnx"].append(onnx_path)
        result["history"].append(history)
        for group, vols in volumes.items():
            if group == "train" and number == config.stages:
                continue  # nothing trains on the last stage's outputs
            outputs = stage_outputs(onnx_path, stacks[group], stage["view"], config.threads)
            for vol, (probabilities, mask) in zip(vols, outputs):
                vol[stage["name"]] = mask.astype(np.float32)
                vol[f"{stage['name']}_labels"] = structure_labels(probabilities, mask)
        del stacks, train_pool, val_pool
        eval_volumes = volumes["eval"] if separate_eval else volumes["val"]
        scores = [structure_dice(v[f"{stage['name']}_labels"], c.labels, values)
                  for v, c in zip(eval_volumes, evaluate_cases)]
        result["eval_dice"][stage["name"]] = scores
        if scores:
            log(f"stage {number}: labyrinth Dice on the model grid "
                f"{np.mean([s['labyrinth'] for s in scores]):.4f} over {len(scores)} held-out scans")
        result["stage_minutes"].append((time.time() - started) / 60)
        log(f"stage {number} done in {result['stage_minutes'][-1]:.1f} min")
    return result


def summarise_dice(scores: list[dict]) -> dict:
    if not scores:
        return {}
    keys = scores[0].keys()
    return {k: {"mean": float(np.mean([s[k] for s in scores])), "sd": float(np.std([s[k] for s in scores], ddof=1)) if len(scores) > 1 else 0.0}
            for k in keys}


# ----------------------------------------------------------------------------- command line
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", type=Path, help="folder of real scans + label files (instead of phantoms)")
    group.add_argument("--train-phantoms", type=int, default=48, help="number of training phantoms")
    group.add_argument("--seed-start", type=int, default=1000, help="first phantom seed (consecutive)")
    group.add_argument("--modalities", default="clinical,microct", help="phantom modalities, in turn (a modality may repeat)")
    group.add_argument("--microct-max-size", type=int, default=256,
                       help="cap on micro-CT phantom voxels per axis (generation time grows as its cube)")
    group.add_argument("--cache", type=Path, default=datamod.DEFAULT_CACHE, help="prepared-volume cache")
    group.add_argument("--normalisation", choices=["robust-range", "volume-zscore", "zscore"], default="robust-range")
    group.add_argument("--specimens", default="",
                       help="real specimens to render (innerear_synth), e.g. RT143,RT138,RT147,LT143; beside the phantoms")
    group.add_argument("--renders-per-specimen", type=int, default=24, help="random renders of each specimen")
    group.add_argument("--render-seed", type=int, default=0, help="seed of the renders (other seeds: other draws)")
    group.add_argument("--heads", type=int, default=0,
                       help="head-size scans with both ears made from the specimens: whole for a locator, "
                            "a box round each ear with --roi-extent-mm")
    group.add_argument("--head-seed", type=int, default=0, help="seed of the head scans")
    group.add_argument("--target-dilation-mm", type=float, default=0.0,
                       help="train on the labyrinth grown by this much, one class (a locator's target: "
                            "a region a coarse grid can find, not the labyrinth's outline)")
    group.add_argument("--restyle-phantoms", action="store_true",
                       help="draw each phantom a random appearance (gray values, noise, bias, units)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    defaults = TrainConfig()
    group.add_argument("--grid", type=int, default=defaults.grid)
    group.add_argument("--min-extent-mm", type=float, default=defaults.min_extent_mm,
                       help="the model grid's cube is never narrower than this (a labyrinth spans about "
                            "20 mm): tightly cropped scans are padded, in training as at inference; "
                            "stored in the manifest as grid_min_extent_mm")
    group.add_argument("--roi-extent-mm", type=float, default=defaults.roi_extent_mm,
                       help="train on cubes of this size (mm) around the labyrinth, as the engine cuts them "
                            "around what the --locator model finds; 0: the whole field")
    group.add_argument("--locator", type=Path,
                       help="with --roi-extent-mm: a whole-field model folder whose stage 1 becomes this "
                            "model's locator")
    group.add_argument("--base", type=int, default=defaults.base, help="U-Net base width (paper: 32)")
    group.add_argument("--arch", choices=ARCHITECTURES, default=defaults.arch)
    group.add_argument("--lr", type=float, default=defaults.lr)
    group.add_argument("--batch", type=int, default=defaults.batch)
    group.add_argument("--max-epochs", type=int, default=defaults.max_epochs)
    group.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch)
    group.add_argument("--patience", type=int, default=defaults.patience,
                       help="early stopping: epochs without a better validation score")
    group.add_argument("--plateau-patience", type=int, default=defaults.plateau_patience,
                       help="epochs without improvement before the learning rate is halved")
    group.add_argument("--stage-minutes", default="15",
                       help="wall-clock training budget per stage, one number or one per stage (e.g. 18,12,12)")
    group.add_argument("--crop", type=int, default=defaults.crop,
                       help="train on crop x crop windows of the slices (0: whole slices); the "
                            "network is fully convolutional and runs on whole slices at inference")
    group.add_argument("--val-every", type=int, default=defaults.val_every,
                       help="validate on every n-th validation slice")
    group.add_argument("--margin", type=int, default=defaults.margin,
                       help="slices around the labyrinth bounding box always trained on")
    group.add_argument("--other-fraction", type=float, default=defaults.other_fraction,
                       help="fraction of the remaining slices drawn each epoch")
    group.add_argument("--stages", type=int, default=3, choices=[1, 2, 3])
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--reuse-from", type=Path, help="work folder of an earlier run whose stages to reuse")
    group.add_argument("--reuse-stages", type=int, default=0, help="reuse stages 1..N from --reuse-from")
    group.add_argument("--init-from", type=Path, help="work folder whose stageN.pt, model folder whose exported "
                       "stageN.onnx, or an .onnx file (stage 1) initialise the stages trained")
    group.add_argument("--threads", type=int, default=2)
    group.add_argument("--any-orientation", action="store_true",
                       help="turn each training slice by a random quarter turn (with the mirroring: any of "
                            "the 8 flips and turns): a locator then finds ears in scans stored upside down")


def config_from(args) -> TrainConfig:
    return TrainConfig(grid=args.grid, min_extent_mm=args.min_extent_mm, roi_extent_mm=args.roi_extent_mm, base=args.base, arch=args.arch, lr=args.lr, batch=args.batch,
                       max_epochs=args.max_epochs, steps_per_epoch=args.steps_per_epoch,
                       patience=args.patience, plateau_patience=args.plateau_patience,
                       stage_minutes=tuple(float(m) for m in str(args.stage_minutes).split(",")),
                       crop=args.crop, val_every=args.val_every, margin=args.margin,
                       other_fraction=args.other_fraction, seed=args.seed, threads=args.threads,
                       stages=args.stages, any_orientation=args.any_orientation,
                       extra={k: str(v) if isinstance(v, Path) else v for k, v in
                              {"reuse_from": args.reuse_from, "reuse_stages": args.reuse_stages,
                               "init_from": args.init_from}.items() if v})


def load_cases(args, normalisation: dict) -> tuple[list, dict]:
    """The training cases and a description of them for the manifest."""
    log("preparing data on the model grid")
    if args.data:
        cases = datamod.folder_cases(args.data, args.grid, normalisation, args.cache, log=log,
                                     min_extent_mm=args.min_extent_mm, roi_extent_mm=args.roi_extent_mm)
        described = {"source": "folder", "folder": str(args.data), "scans": [c.name for c in cases]}
    else:
        modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
        seeds = list(range(args.seed_start, args.seed_start + args.train_phantoms))
        cases = datamod.phantom_cases(seeds, modalities, args.grid, normalisation, args.cache, log=log,
                                      microct_max_size=args.microct_max_size, min_extent_mm=args.min_extent_mm,
                                      restyle=args.restyle_phantoms, roi_extent_mm=args.roi_extent_mm)
        described = {"source": "synthetic phantoms (InnerEarSegmentationLib.phantom)",
                     "seeds": [seeds[0], seeds[-1]] if seeds else [], "count": len(cases),
                     "microct_max_size": args.microct_max_size, "restyled": args.restyle_phantoms,
                     "modalities": {m: sum(c.meta["modality"] == m for c in cases) for m in modalities}}
    specimens = [s.strip() for s in args.specimens.split(",") if s.strip()]
    if specimens:
        rendered = datamod.rendered_cases(specimens, args.renders_per_specimen, args.render_seed, args.grid,
                                          normalisation, args.cache, log=log, min_extent_mm=args.min_extent_mm,
                                          roi_extent_mm=args.roi_extent_mm)
        described = {"phantoms": described, "real_anatomy": {
            "source": "Training/data/real-anatomy (from shared/data/temporal-bone-labels; LCSR-SICKKIDS/"
                      "volumetric_drilling, no licence stated: research use)",
            "specimens": specimens, "renders_per_specimen": args.renders_per_specimen,
            "render_seed": args.render_seed, "renderer": "innerear_synth.render (randomised appearance, "
                                                         "pose, field, voxel size; half mirrored)"}}
        cases = _interleave(cases, rendered)
    if args.heads:
        if not specimens:
            raise SystemExit("--heads needs --specimens: the heads' ears are made from them")
        heads = datamod.head_cases(args.heads, args.head_seed, specimens, args.grid, normalisation, args.cache,
                                   log=log, min_extent_mm=args.min_extent_mm, roi_extent_mm=args.roi_extent_mm)
        described["heads"] = {"source": "innerear_synth.head (skull, brain, sinuses, mastoids; both ears "
                                        "from the specimens, one of them mirrored where needed)",
                              "count": args.heads, "seed": args.head_seed,
                              "cases": "a box round each ear" if args.roi_extent_mm > 0 else "the whole head"}
        cases = _interleave(cases, heads)
    return cases, described


def _interleave(first: list, second: list) -> list:
    """Both lists mixed evenly, so every k-th case (validation) samples both."""
    merged = [(i / max(len(first), 1), c) for i, c in enumerate(first)]
    merged += [((i + 0.5) / max(len(second), 1), c) for i, c in enumerate(second)]
    return [c for _, c in sorted(merged, key=lambda pair: pair[0])]


def split_validation(cases: list, fraction: float, seed: int) -> tuple[list, list]:
    """Whole scans to validation: every k-th case, so each modality is represented."""
    if fraction <= 0 or len(cases) < 3:
        return cases, []
    step = max(2, int(round(1 / fraction)))
    val = [c for i, c in enumerate(cases) if i % step == step - 1]
    train = [c for i, c in enumerate(cases) if i % step != step - 1]
    return train, val


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m innerear_training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     fromfile_prefix_chars="@")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--workdir", type=Path, help="checkpoints and logs (default: OUT/../OUT-work)")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="scans held out for early stopping")
    parser.add_argument("--id", default="innerear-phantom")
    parser.add_argument("--version", default="1.0.0")
    add_data_arguments(parser)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    from .export import write_model_folder

    if args.roi_extent_mm > 0 and not args.locator:
        parser.error("--roi-extent-mm needs --locator: the engine finds the labyrinth with it first")
    config = config_from(args)
    started = time.time()
    normalisation = {"method": args.normalisation if args.normalisation != "zscore" else "volume-zscore"}
    cases, described = load_cases(args, normalisation)
    train_cases, val_cases = split_validation(cases, args.val_fraction, args.seed)
    if args.normalisation == "zscore":
        normalisation = datamod.zscore_statistics(train_cases)
        for case in cases:
            case.image = preprocess.normalise(
                case.meta["raw"], normalisation)
    datamod.strip_raw(cases)
    if args.target_dilation_mm > 0:
        datamod.grow_targets(cases, args.target_dilation_mm)
        described["target"] = f"the labyrinth grown by {args.target_dilation_mm:g} mm, one class"
    labels = datamod.labels_for(cases)
    described["train"] = [c.name for c in train_cases]
    described["validation"] = [c.name for c in val_cases]
    log(f"{len(train_cases)} training scans, {len(val_cases)} validation scans, {len(labels)} label(s)")
    workdir = args.workdir or args.out.parent / f"{args.out.name}-work"
    result = train_cascade(train_cases, val_cases, config, workdir, 1 + len(labels))
    record = {
        "architecture": config.arch, "base_width": config.base, "grid_size": config.grid,
        "grid_min_extent_mm": config.min_extent_mm, "roi_extent_mm": config.roi_extent_mm, "data": described, "loss": "cross-entropy + (1 - soft Dice over foreground classes)",
        "optimiser": "Adam", "lr": config.lr, "batch": config.batch,
        "epochs": [len(h) for h in result["history"]],
        "best_epochs": [int(np.nanargmax([r["val_slice_dice"] for r in h]) + 1) if not all(np.isnan(r["val_slice_dice"]) for r in h) else 0
                        for h in result["history"]],
        "stage_minutes": [round(m, 2) for m in result["stage_minutes"]],
        "total_minutes": round((time.time() - started) / 60, 2),
        "config": asdict(config),
        "augmentation": ("every rendered scan a random draw (innerear_synth) and restyled phantoms, " if args.specimens else "")
                        + "intensity scale 0.9-1.1 and offset +-0.1 (normalised units); left/right mirroring"
                        + ("; quarter turns of each slice" if config.any_orientation else ""),
        "crop": f"{config.crop}x{config.crop} windows, 80% around a labyrinth pixel" if config.crop else "whole slices",
        "slices": f"all slices cutting the labyrinth bounding box +{config.margin}, plus {config.other_fraction:.0%} of the others per epoch",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "validation_grid_dice": {stage: summarise_dice(scores) for stage, scores in result["eval_dice"].items()},
        "history": result["history"],
    }
    (workdir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    write_model_folder(args.out, result["onnx"], labels, normalisation, config, record,
                       model_id=args.id, version=args.version, locator=args.locator)
    log(f"model written to {args.out} in {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
