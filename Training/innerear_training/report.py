"""The commands' Markdown reports: printed, and written to ``--out`` when given."""

from __future__ import annotations

from pathlib import Path


def emit(lines: list[str], out: Path | None) -> str:
    """Prints the report and writes it (UTF-8) to ``out``; returns its text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text, encoding="utf-8")
    return text
