"""The segments the model produces: value, name, colour and Slicer terminology entry."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Label:
    """One output segment. ``terminology`` is a Slicer terminology entry string (may be empty)."""

    value: int
    name: str
    color: tuple[float, float, float]
    terminology: str = ""
    description: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> "Label":
        return cls(
            value=int(data["value"]),
            name=str(data["name"]),
            color=tuple(float(c) for c in data["color"]),
            terminology=str(data.get("terminology", "")),
            description=str(data.get("description", "")),
        )

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "name": self.name,
            "color": list(self.color),
            "terminology": self.terminology,
            "description": self.description,
        }
