"""Exceptions that carry a message meant for the user (printed as one or two lines, no traceback)."""

import difflib
import reprlib


class EvaluatorError(Exception):
    """Base of every error the command line prints without a traceback."""


class DatasetError(EvaluatorError):
    """The ImageNet directory, its CSV or synset file is missing or malformed."""


class ImageDecodeError(EvaluatorError):
    """One image could not be decoded; recorded per image, the run goes on.

    transient: the file could not be read (permission denied, gone), which says nothing about its content, so the
    failure is never cached: the next run tries the image again.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class RecipeError(EvaluatorError):
    """Unknown recipe name or a recipe that does not fit the model."""


class ModelError(EvaluatorError):
    """A model file is missing, damaged or has shapes the evaluator cannot use."""


class RuntimeUnavailable(EvaluatorError):
    """A runtime package or its licence is missing; tests turn this into a skip."""


class BaselinesError(EvaluatorError):
    """baselines.yaml is malformed; the message names the key path."""


class ArtifactError(EvaluatorError):
    """An artifact cannot be written or read back."""


class FetchError(EvaluatorError):
    """A model download failed or its sha256 does not match."""


def clipped(text: str, limit: int) -> str:
    """The text, or its first limit - 3 characters and '...'."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value, limit: int = 60) -> str:
    """A short prefix of a value's repr for messages: bounded work and length whatever the value (an expanded YAML
    alias bomb or a megabyte string never reaches a message)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxtuple, short.maxset = 2, 4, 4, 4, 4
    short.maxstring = short.maxother = short.maxlong = limit
    return clipped(short.repr(value), limit)


def did_you_mean(kind: str, name: str, choices) -> str:
    """Message for an unknown name, listing the valid ones: "unknown runtime 'ortt'; did you mean onnxruntime? ..."."""
    choices = sorted(map(str, choices))
    name = name if isinstance(name, str) else shown(name)
    close = difflib.get_close_matches(name[:200], choices, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown {kind} {shown(name)}{hint} available: {', '.join(choices)}"
