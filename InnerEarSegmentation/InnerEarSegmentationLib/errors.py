"""Errors whose text is meant for the user: each names the problem and what to do about it."""


class InnerEarError(Exception):
    """A problem the user can act on; ``str(error)`` is the message to show, never a traceback."""


class InputError(InnerEarError):
    """The scan given cannot be segmented as it is."""


class ModelError(InnerEarError):
    """The model folder, manifest or an ONNX file is missing, corrupt or inconsistent."""


class OutputError(InnerEarError):
    """A result cannot be written where the user asked."""


class Cancelled(InnerEarError):
    """The user cancelled the run; nothing was written."""

    def __init__(self, message: str = "Segmentation cancelled by the user; nothing was written.") -> None:
        super().__init__(message)
