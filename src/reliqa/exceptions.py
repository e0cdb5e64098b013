"""Exceptions raised by reliqa.

Every error a user can cause (bad file, bad shape, bad option) is a :class:`ReliqaError`, so
interfaces can catch one type and print a clean message instead of a traceback.
"""

from __future__ import annotations


class ReliqaError(Exception):
    """Base class of every error reliqa raises on purpose."""


class ImageLoadError(ReliqaError):
    """An image could not be read: missing, unreadable, corrupt, too large, or not an image.

    The message always names the file (or the object) and what is wrong with it.
    """


class InvalidInputError(ReliqaError, ValueError):
    """A tensor, array or argument has the wrong shape, type, range or value."""


class ShapeMismatchError(InvalidInputError):
    """Reference and test (or prediction and label) do not have matching shapes."""


class UsageError(InvalidInputError):
    """An option or argument that cannot work as given (the CLI's bad usage: exit code 2)."""


class OutputExistsError(UsageError):
    """An output path already holds a file (or is not a folder) that this run did not make.

    Commands refuse to replace it unless told to (``overwrite=True``, CLI ``--overwrite``); the
    check runs before any work, so a refused run costs nothing.
    """


class DeviceError(InvalidInputError):
    """A requested torch device does not exist here (e.g. ``cuda`` on a machine without a GPU)."""


class WeightsError(ReliqaError):
    """Shipped or user-supplied weights are missing, corrupt, or fail their hash check."""


class UnknownNameError(ReliqaError, KeyError):
    """A registry lookup (metric, model, distortion, dataset) found no such name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ReliqaError):
    """A data file (CSV, dataset layout, parameter file) is missing columns or has bad values."""
