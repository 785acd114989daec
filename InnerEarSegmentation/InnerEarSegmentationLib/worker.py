"""The segmentation as a child process: ``python -m InnerEarSegmentationLib.worker job_folder``.

Slicer's embedded Python holds the GIL while its main loop idles, so inference on a thread there
runs only in the gaps between GUI events; a process of its own runs at full speed. The parent
(``subprocess_run.SegmentationProcess``) writes ``job.json`` and the scan into the job folder and
reads back, from the same folder, ``events.jsonl`` (one JSON object a line: progress, then a
result or an error), the labelmap and the report. Files, not pipes, so the parent needs no
reader thread and a chatty child can never block on a full pipe.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from .memory import return_large_blocks_promptly

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
LABELMAP_FILE = "labelmap.nrrd"
RESULT_FILE = "result.json"
PREVIEW_FILE = "preview.png"


class EventLog:
    """Appends one JSON object per line and flushes it at once, so the parent sees it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, **event: Any) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def progress(self, fraction: float, message: str) -> None:
        self.write(progress=round(float(fraction), 4), message=message)


def run(folder: Path, events: EventLog) -> None:
    """Segments the job's scan and writes the labelmap and the result (labels + report)."""
    from .model import load_model
    from .outputs import atomic_target, write_labelmap
    from .pipeline import SegmentationSettings, Segmenter
    from .progress import Progress

    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    events.progress(0.0, "loading the model")
    settings = SegmentationSettings(device=job.get("device", "auto"),
                                    keep_largest_component=bool(job.get("keep_largest_component", True)),
                                    side=job.get("side", "both"))
    segmenter = Segmenter(load_model(job.get("model") or None), settings)
    result = segmenter.segment_file(folder / job["scan"], Progress(events.progress))
    result.report["input"]["source"] = job.get("source") or result.report["input"]["source"]
    write_labelmap(result.labelmap, folder / LABELMAP_FILE, result.report, overwrite=True)
    with atomic_target(folder / RESULT_FILE, overwrite=True) as temporary:
        temporary.write_text(json.dumps({"labels": [label.to_dict() for label in result.labels],
                                         "report": result.report}), encoding="utf-8")
    events.write(done=True)
    if job.get("preview"):  # after "done": the segmentation stands even if drawing it fails
        from .outputs import write_preview

        write_preview(folder / job["scan"], result.labelmap, result.labels, folder / PREVIEW_FILE, overwrite=True,
                      report=result.report)


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv if argv is not None else sys.argv[1:])[0])
    return_large_blocks_promptly()
    with open(folder / EVENTS_FILE, "a", encoding="utf-8") as stream:
        events = EventLog(stream)
        try:
            run(folder, events)
        except Exception as error:  # noqa: BLE001 - every failure goes back to the parent as an event
            from .errors import InnerEarError

            kind = type(error).__name__ if isinstance(error, InnerEarError) else "unexpected"
            events.write(error=str(error), kind=kind, traceback=traceback.format_exc())
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
