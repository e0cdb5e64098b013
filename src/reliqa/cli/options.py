"""The options several commands share: one ``typing.Annotated`` type, one help text each.

A command declares a shared option by its type and gives only the default, e.g.
``device: DeviceOption = "cpu"``, ``as_json: JsonOption = False``, ``threads: ThreadsOption =
None``; it never spells ``"--device"``, ``"--json"`` or ``"--threads"`` itself
(``tests/test_cli_options.py`` checks the source and every command's help). Options of one
command only are declared where they are used, in the same ``Annotated`` style.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JSON_HELP = "Print the result as JSON on stdout (no progress bar, no table)."
DEVICE_HELP = "torch device: cpu, cuda, cuda:N, or auto (a GPU when there is one)."
THREADS_HELP = "torch CPU threads (idle threads sleep, so a busy machine stays fast; see README)."
OVERWRITE_HELP = "Replace existing output files (refused otherwise)."
BATCH_SIZE_HELP = "Most same-size images per forward pass."
WORKERS_HELP = "Decoding worker processes (0: decode in this process)."
CONFIG_HELP = "JSON training config (examples in configs/)."
RESUME_HELP = "Continue the run from its latest checkpoint (same config)."
RUN_DIR_HELP = "Override the config's run folder."
MAX_MINUTES_HELP = "Time budget in minutes: the run stops cleanly once it is spent."
CARD_COMMAND_HELP = "Training command recorded on the model card (default: the run's)."

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
"""``--json`` (default False): machine-readable output on stdout."""

DeviceOption = Annotated[str, typer.Option("--device", help=DEVICE_HELP)]
"""``--device`` of a command that computes (default ``"cpu"``)."""

EngineDeviceOption = Annotated[
    str | None,
    typer.Option("--device", help=DEVICE_HELP, show_default="cpu; Ray: a GPU if the actor has one"),
]
"""``--device`` of ``batch`` (default None: the CPU locally; a Ray actor uses a GPU exactly when
it is given one, and an explicit ``--device cpu`` keeps it on the CPU)."""

ConfigDeviceOption = Annotated[
    str | None, typer.Option("--device", help=DEVICE_HELP, show_default="the config's")
]
"""``--device`` of a training command (default None: the config's device)."""

ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help=THREADS_HELP, show_default="one per core")
]
"""``--threads`` (default None: torch's one per core); apply it with ``app.use_threads``."""

OneThreadOption = Annotated[int, typer.Option("--threads", min=1, help=THREADS_HELP)]
"""``--threads`` of a command that runs as one of several processes (default 1)."""

OverwriteOption = Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)]
"""``--overwrite`` (default False): replace files the run did not make (``reliqa.outputs``)."""

BatchSizeOption = Annotated[int, typer.Option("--batch-size", help=BATCH_SIZE_HELP)]
"""``--batch-size`` of a scoring command."""

WorkersOption = Annotated[int, typer.Option("--workers", help=WORKERS_HELP)]
"""``--workers`` of a command that decodes many images (``batch``, ``bench``)."""

ConfigOption = Annotated[Path, typer.Option("--config", help=CONFIG_HELP)]
"""``--config`` of a training command that needs one."""

OptionalConfigOption = Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)]
"""``--config`` of a training command with built-in defaults (default None)."""

ResumeOption = Annotated[bool, typer.Option("--resume", help=RESUME_HELP)]
"""``--resume`` of a training command (default False)."""

RunDirOption = Annotated[Path | None, typer.Option("--run-dir", help=RUN_DIR_HELP)]
"""``--run-dir`` that overrides a training config's run folder (default None)."""

MaxMinutesOption = Annotated[float | None, typer.Option("--max-minutes", help=MAX_MINUTES_HELP)]
"""``--max-minutes`` of a training command (default None: no budget)."""

CardCommandOption = Annotated[str | None, typer.Option("--command", help=CARD_COMMAND_HELP)]
"""``--command`` of an export command (default None: the run's own command)."""

SHARED_OPTIONS = (
    "--json", "--device", "--threads", "--overwrite", "--batch-size", "--config", "--resume",
    "--max-minutes", "--command", "--workers",
)
"""The flags only this module declares (``--run-dir`` also names an export's finished run)."""
