"""``inner-ear-seg``: segment a scan, a folder of scans, or (with no input) a generated phantom."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from . import __version__
from .ear_summary import ear_lines
from .errors import InnerEarError
from .memory import return_large_blocks_promptly
from .model import load_model
from .outputs import ensure_writable, write_labelmap, write_preview, write_report, write_segmentation
from .pipeline import SIDES, SegmentationSettings, Segmenter
from .progress import Progress
from .scanio import find_scans, series_ids

DEFAULT_OUTPUT = Path("inner-ear-seg-output")
DEBUG_VARIABLE = "INNER_EAR_SEG_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inner-ear-seg",
        description="Segment the inner ear (cochlea, vestibule, semicircular canals) in temporal-bone "
                    "CT or micro-CT. With no input, a synthetic phantom scan is generated and segmented.")
    parser.add_argument("inputs", nargs="*", type=Path,
                        help="scan files (NRRD, NIfTI, MHA), DICOM series folders, or folders of scans")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="output folder (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="model folder with manifest.json (default: the shipped model)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="slices per network call (default: 2 on a CPU, where more is no faster "
                             "but takes more memory; 16 on a GPU)")
    parser.add_argument("--mirror-average", action=argparse.BooleanOptionalAction, default=None,
                        help="also segment the left-right mirror and average the two (twice the network "
                             "time; default: as the model's manifest says)")
    parser.add_argument("--side", choices=SIDES, default="both",
                        help="both: every ear the scan shows (default); right or left: only that ear")
    parser.add_argument("--no-measure", dest="measure", action="store_false",
                        help="skip the cochlea measurements (A, B, H values, duct length, turns)")
    parser.add_argument("--labelmap", action="store_true", help="also write <name>-label.nrrd")
    parser.add_argument("--surface", choices=("stl", "obj"), help="also write a smoothed surface mesh")
    parser.add_argument("--smoothing", type=float, default=0.5, help="surface smoothing 0..1 (default: %(default)s)")
    parser.add_argument("--report", action="store_true", help="also write <name>.report.json")
    parser.add_argument("--preview", action="store_true",
                        help="also write <name>.preview.png: three slices through each labyrinth with "
                             "the outlines, and its 3D surface, for a quick check")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an unexpected error (or set {DEBUG_VARIABLE}=1)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class ProgressBar:
    """A one-line text progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, name: str, quiet: bool) -> None:
        self.name, self.quiet, self.last = name, quiet, ""
        self.tty = sys.stderr.isatty()

    def __call__(self, fraction: float, message: str) -> None:
        if self.quiet:
            return
        bar = "#" * int(fraction * 30)
        line = f"{self.name} [{bar:<30}] {fraction:4.0%} {message}"
        if self.tty:
            sys.stderr.write("\r" + line[:120].ljust(120))
        elif message.split(" ")[0] != self.last:
            sys.stderr.write(line + "\n")
        self.last = message.split(" ")[0]
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def output_stem(scan: Path) -> str:
    name = scan.name
    for suffix in (".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def collect_scans(inputs: list[Path]) -> list[Path]:
    scans: list[Path] = []
    for item in inputs:
        if not item.exists():
            raise InnerEarError(f"{item} does not exist. Check the path.")
        scans.extend(find_scans(item) if item.is_dir() and not _is_series(item) else [item])
    if not scans:
        raise InnerEarError("No scans found in the given folder(s). Supported: .nrrd, .nii(.gz), .mha, DICOM series folders.")
    return scans


def _is_series(folder: Path) -> bool:
    return bool(series_ids(folder))


def make_demo_scan(output: Path) -> Path:
    """A seeded phantom scan written beside the results, for a first run without data."""
    from .phantom import make_phantom, write_phantom

    image_path, _ = write_phantom(make_phantom(seed=2026, modality="clinical"), output / "phantom", "phantom-ear")
    print(f"No input given: generated a synthetic phantom scan {image_path}", file=sys.stderr)
    return image_path


def segment_one(segmenter: Segmenter, scan: Path, args: argparse.Namespace) -> list[Path]:
    stem = output_stem(scan)
    targets = [args.output / f"{stem}.seg.nrrd"]
    if args.labelmap:
        targets.append(args.output / f"{stem}-label.nrrd")
    if args.surface:
        targets.append(args.output / f"{stem}.{args.surface}")
    if args.report:
        targets.append(args.output / f"{stem}.report.json")
    if args.preview:
        targets.append(args.output / f"{stem}.preview.png")
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise InnerEarError(f"{existing[0]} already exists; nothing was written for {scan.name}. "
                            "Use --overwrite to replace it or -o to choose another folder.")
    bar = ProgressBar(stem, args.quiet)
    try:
        result = segmenter.segment_file(scan, Progress(bar))
    finally:
        bar.close()
    written = [write_segmentation(result.labelmap, result.labels, targets[0], result.report, args.overwrite)]
    if args.labelmap:
        written.append(write_labelmap(result.labelmap, args.output / f"{stem}-label.nrrd", result.report, args.overwrite))
    if args.surface:
        from .surface import write_surface  # vtk: 0.4 s and ~100 MB, only when a mesh is asked for

        written.append(write_surface(result.labelmap, result.labels, args.output / f"{stem}.{args.surface}",
                                     result.report, args.smoothing, args.overwrite))
    if args.report:
        written.append(write_report(result.report, args.output / f"{stem}.report.json", args.overwrite))
    if args.preview:
        written.append(write_preview(scan, result.labelmap, result.labels, args.output / f"{stem}.preview.png",
                                     args.overwrite, result.report))
    for warning in result.report.get("warnings", []):
        print(f"warning: {scan.name}: {warning}", file=sys.stderr)
    volumes = ", ".join(f"{s['name']} {s['volume_mm3']:.1f} mm³" for s in result.report["segments"])
    print(f"{scan.name}: {volumes} [{result.report['provider']}]")
    for line in ear_lines(result.report.get("ears", [])):
        print(f"{scan.name}: {line}")
    return written


def unexpected(error: BaseException, scan: Path | None, debug: bool) -> str:
    """One line for an error that is not the user's to fix: what failed, and how to report it."""
    if debug:
        traceback.print_exc()
    if isinstance(error, MemoryError):
        return ("ran out of memory. Close other programs, crop the scan to a few centimetres around "
                "the ear, or use a machine with more memory.")
    detail = " ".join(str(error).split())[:240].rstrip(".") or "no message"
    where = "" if scan else " while starting up"
    more = "" if debug else f" (rerun with --debug or {DEBUG_VARIABLE}=1 for the traceback)"
    return (f"unexpected {type(error).__name__}{where}: {detail}. This is a bug in inner-ear-seg; "
            f"please report it on the project's issue tracker with this message{more}.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return_large_blocks_promptly()
    debug = args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    started = time.perf_counter()
    try:
        if args.inputs:
            scans = collect_scans(args.inputs)
            ensure_writable(args.output)
        else:
            args.output = args.output / time.strftime("phantom-demo-%Y%m%d-%H%M%S")
            scans = [make_demo_scan(args.output)]
            args.labelmap, args.report, args.surface = True, True, args.surface or "stl"
        segmenter = Segmenter(load_model(args.model), SegmentationSettings(
            device=args.device, batch_size=args.batch_size, mirror_average=args.mirror_average,
            measure=args.measure, side=args.side))
        print(f"Model {segmenter.model.name}; {segmenter.provider} ({segmenter.provider_note})", file=sys.stderr)
    except InnerEarError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; nothing was written.", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the user gets one line, not a traceback
        print(f"error: {unexpected(error, None, debug)}", file=sys.stderr)
        return 3
    failures = 0
    for scan in scans:
        try:
            segment_one(segmenter, scan, args)
        except InnerEarError as error:
            failures += 1
            named = str(error).startswith(str(scan))  # most messages already start with the path
            print(f"error: {error}" if named else f"error: {scan}: {error}", file=sys.stderr)
        except KeyboardInterrupt:
            print("Interrupted; the scan in progress was not written.", file=sys.stderr)
            return 130
        except Exception as error:  # noqa: BLE001 - one line naming the scan, not a traceback
            failures += 1
            print(f"error: {scan}: {unexpected(error, scan, debug)}", file=sys.stderr)
    done = len(scans) - failures
    print(f"{done} of {len(scans)} scan(s) segmented in {time.perf_counter() - started:.1f} s; "
          f"results in {args.output.resolve()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
