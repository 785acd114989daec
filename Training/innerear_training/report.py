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


def table_report(title: str, command: str, preamble: list[str], columns: list[str], rows: list[str]) -> list[str]:
    """A check's report: its title, the command that made it, what to read first, and its table."""
    return [f"# {title}", "", f"Command: `{command}`", "", *preamble, "",
            "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]
