"""``reliqa train <model> --config FILE``: training commands (one sub-command per model).

Thin: parse options, call the trainer in ``reliqa.training``. Under ``torchrun`` every process
runs the same command; only rank 0 prints and writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from reliqa.cli.app import (
    app,
    checked_output_folder,
    print_result,
    use_threads,
)
from reliqa.cli.options import (
    ConfigDeviceOption,
    ConfigOption,
    JsonOption,
    OptionalConfigOption,
    OverwriteOption,
    ResumeOption,
    RunDirOption,
    ThreadsOption,
)

train_app = typer.Typer(
    help="Train reliqa's models from synthetic data (no human labels).", no_args_is_help=True
)
app.add_typer(train_app, name="train")

ConfigT = TypeVar("ConfigT")


def load_run_config(
    config_class: type[ConfigT], config: Path, run_dir: Path | None, **overrides: Any
) -> ConfigT:
    """A training command's settings: the ``--config`` file, ``--run-dir`` and the command's
    other overrides (None keeps the file's value; :func:`reliqa.training.config.load_config`)."""
    from reliqa.training.config import load_config  # on use: the CLI starts without training

    return load_config(config_class, config, run_dir=str(run_dir) if run_dir else None, **overrides)


@train_app.command("relational")
def train_relational_command(
    config: ConfigOption,
    resume: ResumeOption = False,
    run_dir: RunDirOption = None,
    device: ConfigDeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the relational model: distortion maps, then the relational scorer."""
    from reliqa.training.relational import RelationalTrainConfig, train_relational

    settings = load_run_config(RelationalTrainConfig, config, run_dir, device=device)
    weights = train_relational(settings, resume=resume, quiet=as_json)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    print_result(
        as_json,
        {"run_dir": settings.run_dir, "weights": str(weights) if weights.is_file() else None},
        f"weights: {weights}"
        if weights.is_file()
        else f"stopped early; resume with --resume ({settings.run_dir})",
    )


@train_app.command("scorer-cache")
def scorer_cache_command(
    data_root: Annotated[Path, typer.Option("--data-root", help="Folder of pristine photos.")],
    out: Annotated[Path, typer.Option("--out", help="Cache folder (created; resumes if present).")],
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="train, or validation (the validation half of the held-out photos).",
        ),
    ] = "train",
    sets_per_photo: Annotated[int, typer.Option("--sets-per-photo", min=1)] = 2,
    levels: Annotated[int, typer.Option("--levels", min=2)] = 4,
    crop: Annotated[int, typer.Option("--crop", min=176)] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    maps: Annotated[
        str,
        typer.Option(
            "--maps",
            help="Map network: 'shipped' or a relational .safetensors file.",
        ),
    ] = "shipped",
    threads: ThreadsOption = None,
    refresh_maps: Annotated[
        bool,
        typer.Option(
            "--refresh-maps",
            help="Recompute the maps of existing parts (keep the teachers).",
        ),
    ] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also cache EfficientNet-Lite0 distances (for relational-plus).",
        ),
    ] = False,
    teachers: Annotated[
        str | None,
        typer.Option(
            "--teachers",
            help="Comma-separated teacher metrics to hold (default: every candidate); those an "
                 "existing cache lacks are appended, nothing else is recomputed.",
        ),
    ] = None,
) -> None:
    """Cache map-network output + teacher metrics of engine ordinal sets (for the scorer).

    Resumable, and appendable: run it again on the same folder with more --teachers (or
    --deep) and only the missing columns are computed.
    """
    use_threads(threads)
    from reliqa.training.relational_scorer import load_maps_net
    from reliqa.training.scorer_cache import TEACHER_CANDIDATES, ScorerCacheConfig, build_cache

    config = ScorerCacheConfig(
        data_root=str(data_root), split=split, sets_per_photo=sets_per_photo,  # type: ignore[arg-type]
        levels=levels, crop_size=crop, seed=seed,
    )
    from reliqa.models.relational_features import DeepFeatures

    build_cache(
        config, out, load_maps_net(maps), refresh_maps=refresh_maps,
        deep_features=DeepFeatures.from_imagenet() if deep else None,
        teachers=(
            [name.strip() for name in teachers.split(",") if name.strip()]
            if teachers
            else TEACHER_CANDIDATES
        ),
    )
    typer.echo(f"cache: {out}")


@train_app.command("scorer")
def train_scorer_command(
    cache: Annotated[Path, typer.Option("--cache", help="Training cache folder (scorer-cache).")],
    validation: Annotated[Path, typer.Option("--validation", help="Validation cache folder.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (log, best scorer, whole model).")],
    config: OptionalConfigOption = None,
    maps: Annotated[
        str,
        typer.Option(
            "--maps",
            help="Map network the cache was made with (bundled into the output).",
        ),
    ] = "shipped",
    as_json: JsonOption = False,
    resume: ResumeOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train the relational scorer on a cache (minutes on CPU) and write the whole model.

    The run folder must be new or empty (or pass --overwrite, or --resume to continue the run
    in it): checked before training.
    """
    if not resume:
        checked_output_folder(out, "--out", overwrite)
    use_threads(threads)
    from reliqa.training.config import load_config
    from reliqa.training.relational_scorer import ScorerTrainConfig, load_maps_net, train_scorer

    settings = load_config(ScorerTrainConfig, config) if config else ScorerTrainConfig()
    summary = train_scorer(settings, cache, validation, out, load_maps_net(maps), resume=resume)
    print_result(
        as_json, summary, f"weights: {summary['weights']}  validation: {summary['best_validation']}"
    )
