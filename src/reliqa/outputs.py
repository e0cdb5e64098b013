"""The one rule for files reliqa writes (core layer): never replace a file this run did not make.

Every command that writes checks its outputs with these functions *before* it starts working,
so a refused output costs nothing (not minutes of tuning or distorting first):

- :func:`check_output_file` — one file (``compare --maps-out``, ``gmc --plot``, ``niqe-fit
  --out``): it must not be a folder, must have a suffix the writer knows, and must not exist
  yet unless ``overwrite``.
- :func:`check_output_folder` — a folder the run writes into (``distort --out``, ``demo --out``,
  ``tune --out``): it must be a folder (or not exist yet); with ``names``, none of those files
  may exist yet; without ``names`` (the run owns the whole folder) it must be empty — unless
  ``overwrite``.

A refusal is an :class:`~reliqa.exceptions.OutputExistsError` (a ``UsageError``: CLI exit 2)
whose message names the option and the path and says how to proceed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from reliqa.exceptions import OutputExistsError, UsageError

_SHOWN = 3  # existing files named in a refusal


def _label(option: str, path: Path) -> str:
    return f"{option} {path}" if option else str(path)


def check_output_file(
    path: str | os.PathLike[str],
    *,
    option: str = "",
    overwrite: bool = False,
    suffixes: Sequence[str] = (),
) -> Path:
    """Check that ``path`` may be written as a new file; return it as a :class:`Path`.

    Arguments:
        path: the file to write.
        option: the option or argument that named it (``"--maps-out"``), used in messages.
        overwrite: allow replacing an existing file.
        suffixes: the suffixes the writer understands (lower case, with the dot); empty: any.

    Raises:
        UsageError: ``path`` has a suffix not in ``suffixes``.
        OutputExistsError: ``path`` is a folder, or a file and ``overwrite`` is False.
    """
    path = Path(path)
    label = _label(option, path)
    if path.is_dir():
        raise OutputExistsError(f"{label}: is a folder; give a file name ({'/'.join(suffixes) or 'any'})")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{label}: the file name must end in {' or '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{label}: a file of that name exists; refusing to replace it (pass --overwrite, "
            "or choose another name)"
        )
    return path


def check_output_folder(
    path: str | os.PathLike[str],
    *,
    option: str = "",
    overwrite: bool = False,
    names: Iterable[str] | None = None,
) -> Path:
    """Check that the files of a run may be written into folder ``path``; return it.

    Arguments:
        path: the folder (it need not exist yet).
        option: the option that named it (``"--out"``), used in messages.
        overwrite: allow replacing existing files.
        names: the file names the run will write there; ``None``: the run owns the whole
            folder, which must then be empty (or not exist).

    Raises:
        OutputExistsError: ``path`` exists and is not a folder; or (without ``overwrite``) one
            of ``names`` exists there, or, without ``names``, the folder is not empty.
    """
    path = Path(path)
    label = _label(option, path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{label}: exists and is not a folder; give a folder for the outputs")
    if overwrite or not path.is_dir():
        return path
    if names is None:
        existing = sorted(entry.name for entry in path.iterdir())
        what = "the folder is not empty"
    else:
        existing = [name for name in names if (path / name).exists()]
        what = "files of these names exist"
    if existing:
        shown = ", ".join(existing[:_SHOWN]) + (f" … ({len(existing)} in all)" if len(existing) > _SHOWN else "")
        raise OutputExistsError(
            f"{label}: {what} ({shown}); refusing to replace them (pass --overwrite, or choose "
            "another folder)"
        )
    return path


__all__ = ["check_output_file", "check_output_folder"]
