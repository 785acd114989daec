"""Runs one cascade stage with onnxruntime, slice by slice in batches, on GPU when usable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InnerEarError, ModelError
from .progress import Progress
from .slicing import extract_slices, insert_slices, view_axis

DEVICES = ("auto", "cpu", "gpu")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise InnerEarError(
            "onnxruntime is not installed. Install it with `pip install onnxruntime` "
            "(or `onnxruntime-gpu` on a machine with an NVIDIA GPU), not both."
        ) from None
    return onnxruntime


def _preload_cuda_libraries() -> None:
    """Loads CUDA and cuDNN from the nvidia-* wheels that ``onnxruntime-gpu[cuda,cudnn]`` brings,
    so a machine with only the NVIDIA driver runs on the GPU (onnxruntime 1.21 and later)."""
    preload = getattr(_onnxruntime(), "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001 - without them the session falls back to CPU and says so
            pass


def choose_providers(device: str) -> tuple[list[str], str]:
    """The execution providers to ask for, and a sentence saying why (shown to the user)."""
    if device not in DEVICES:
        raise InnerEarError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    available = _onnxruntime().get_available_providers()
    has_cuda = CUDA in available
    if device == "cpu":
        return [CPU], "CPU requested."
    if device == "gpu" and not has_cuda:
        raise InnerEarError(
            "GPU requested, but this onnxruntime has no CUDA support (providers: "
            f"{', '.join(available)}). Install onnxruntime-gpu instead of onnxruntime, or use device 'cpu'."
        )
    if has_cuda:
        _preload_cuda_libraries()
        return [CUDA, CPU], "CUDA provider available."
    return [CPU], "No GPU used: this onnxruntime build has no CUDA provider (install onnxruntime-gpu for one)."


@dataclass
class StageSession:
    """An open onnxruntime session for one stage, with the provider it really runs on."""

    session: object
    provider: str
    channels: int
    classes: int | None

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name


def open_session(path: Path, device: str = "auto", threads: int = 0) -> tuple[StageSession, str]:
    """Loads an ONNX stage; returns the session and a note on which provider runs it and why."""
    ort = _onnxruntime()
    providers, note = choose_providers(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for corrupt graphs
        raise ModelError(f"{Path(path).name} is not a usable ONNX model ({str(error).strip()[:200]}). "
                         "Re-install or re-export the model.") from None
    provider = session.get_providers()[0]
    if providers[0] == CUDA and provider != CUDA:
        note = "CUDA provider could not start (CUDA/cuDNN libraries missing?); running on CPU."
        if device == "gpu":
            raise InnerEarError(f"GPU requested but {note} Use device 'cpu' or fix the CUDA install.")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4:
        raise ModelError(f"{Path(path).name} is not a stage model: it must take one [N, C, H, W] "
                         "input and give one [N, K, H, W] output.")
    channels, classes = inputs[0].shape[1], outputs[0].shape[1]
    return StageSession(
        session,
        provider,
        channels if isinstance(channels, int) else -1,
        classes if isinstance(classes, int) else None,
    ), note


def _release_arena():
    """Run options that hand the session's CPU memory arena back at the end of the run."""
    options = _onnxruntime().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _run(stage: StageSession, batch: np.ndarray, options=None) -> np.ndarray:
    try:
        return stage.session.run(None, {stage.input_name: batch}, options)[0]
    except Exception as error:  # onnxruntime's own error types; memory exhaustion comes this way too
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"The model failed while running on {stage.provider} ({detail}). If memory ran out, "
            "use a smaller batch size (--batch-size 4) or the CPU; otherwise re-export the model."
        ) from None


def predict_volume(
    stage: StageSession,
    channels: np.ndarray,
    view: str,
    batch_size: int,
    progress: Progress,
    dtype: type = np.float32,
) -> np.ndarray:
    """Class probabilities [K, Z, Y, X] for a [C, Z, Y, X] input, slicing along ``view``
    (``np.float16`` halves the memory of probabilities that are kept for later)."""
    count = channels.shape[view_axis(view) + 1]
    output: np.ndarray | None = None
    release = _release_arena()
    for start in range(0, count, batch_size):
        progress.report(start / count, f"{view} slices {start}/{count}")
        stop = min(start + batch_size, count)
        batch = extract_slices(channels, view, start, stop)
        # The last batch gives the arena back: otherwise every stage keeps its peak working memory
        # (~0.5 GB for a base-32 U-Net at batch 16) until the end, through mapping back and writing.
        result = _run(stage, batch, release if stop == count else None)
        if output is None:
            output = np.empty((result.shape[1],) + channels.shape[1:], dtype=dtype)
        insert_slices(output, result, view, start)
    progress.report(1.0, f"{view} slices {count}/{count}")
    return output
