"""``reliqa train nr|embed-prompts|export-nr|nr-photos|nr-photo-head|export-photo-head|
nr-photo-distill|export-photo-student``: the no-reference models' training commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reliqa.cli.app import print_result
from reliqa.cli.options import (
    CardCommandOption,
    ConfigDeviceOption,
    ConfigOption,
    JsonOption,
    MaxMinutesOption,
    OneThreadOption,
    ResumeOption,
    RunDirOption,
)
from reliqa.cli.train_cmd import load_run_config, train_app


def _report_weights(path: Path, as_json: bool) -> None:
    """What an export command prints: the written weights."""
    print_result(as_json, {"weights": str(path)}, f"weights: {path}")


def _recorded_command(command: str | None, training: str, run_dir: Path) -> str:
    """The training command a model card records: ``--command``, else ``reliqa train
    <training>`` on the run's own ``config.json``."""
    return command or f"reliqa train {training} --config {run_dir / 'config.json'}"


def _report_best(run_dir: str, summary: dict[str, Any], as_json: bool) -> None:
    """What a photo-corpus training prints: its run folder and best validation record."""
    print_result(as_json, {"run_dir": run_dir, "best": summary["best"]},
                 f"best {summary['best']}: {run_dir}")


@train_app.command("nr")
def train_nr_command(
    config: ConfigOption,
    resume: ResumeOption = False,
    run_dir: RunDirOption = None,
    device: ConfigDeviceOption = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Override the config's number of steps.")
    ] = None,
    max_minutes: MaxMinutesOption = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Override the config's folder of pristine photos.")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Override where the engine runs: workers or main."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train hirqa / hirqa-s on synthetic ordinal sets (single process or under torchrun)."""
    from reliqa.training.hirqa_engine import NRTrainConfig, train_nr

    settings = load_run_config(
        NRTrainConfig, config, run_dir, device=device, steps=steps, max_minutes=max_minutes,
        data_root=data, engine=engine,
    )
    summary = train_nr(settings, resume=resume, quiet=as_json)
    if summary["rank"] != 0:  # under torchrun only rank 0 reports
        return
    print_result(
        as_json, summary,
        f"best checkpoint: {Path(settings.run_dir) / 'checkpoints' / 'best.safetensors'}",
    )


@train_app.command("embed-prompts")
def embed_prompts_command(as_json: JsonOption = False) -> None:
    """Embed the quality prompts (reliqa/data/prompts.json) with all-MiniLM-L6-v2 (extra 'text')."""
    from reliqa.training.prompts import embed_prompts, load_prompt_bank

    bank = load_prompt_bank()
    path = embed_prompts(bank)
    print_result(as_json, {"file": str(path), "prompts": list(bank.prompts)},
                 f"{len(bank.prompts)} prompt embeddings written to {path}")


@train_app.command("export-nr")
def export_nr_command(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="A finished `reliqa train nr` run.")],
    name: Annotated[
        str, typer.Option("--name", help="hirqa or hirqa-s (must match the run's model).")
    ],
    command: CardCommandOption = None,
    data_note: Annotated[
        str | None, typer.Option("--data-note", help="Describe the training data in the card.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ship the run's best checkpoint as reliqa/weights/<name>.safetensors + model card."""
    from reliqa.training.hirqa_engine import export_nr_weights

    recorded = _recorded_command(command, "nr", run_dir)
    path = export_nr_weights(run_dir, name, command=recorded, data_note=data_note)
    _report_weights(path, as_json)


@train_app.command("nr-photos")
def nr_photos_command(
    out: Annotated[Path, typer.Option("--out", help="Corpus folder (outside the repository).")],
    data: Annotated[
        str, typer.Option("--data", help="Folder of pristine photos.")
    ] = "../shared/data/pristine",
    part: Annotated[
        int, typer.Option("--part", help="This process's share: photos part, part+parts, …")
    ] = 0,
    parts: Annotated[int, typer.Option("--parts", help="How many processes share the work.")] = 1,
    view_scale: Annotated[
        float, typer.Option("--view-scale", min=0.2, max=1.0, help="Views: scale each photo by this.")
    ] = 1.0,
    view_crop: Annotated[
        float, typer.Option("--view-crop", min=0.2, max=1.0, help="Views: keep this share of each side.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the defects (and view crops).")] = 2026,
    max_minutes: MaxMinutesOption = None,
    threads: OneThreadOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Make (or extend, resumably) the whole-photo corpus for hirqa: camera defects, backbone
    features, statistics and full-reference teachers per version. With ``--view-scale`` or
    ``--view-crop``: a corpus of views of the training photos (a new folder, another seed)."""
    import torch

    from reliqa.training.nr_photos import PhotoCorpusConfig, build_photo_corpus

    if not 0 <= part < parts:
        raise typer.BadParameter(f"--part must be in [0, {parts}), got {part}")
    torch.set_num_threads(threads)
    written = build_photo_corpus(
        out,
        PhotoCorpusConfig(data_root=data, seed=seed, view_scale=view_scale, view_crop=view_crop),
        part=part, parts=parts, max_minutes=max_minutes,
    )
    print_result(as_json, {"out": str(out), "written": written}, f"{written} photos written to {out}")


@train_app.command("nr-photo-head")
def nr_photo_head_command(
    config: ConfigOption,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="Override the corpus folder.")
    ] = None,
    run_dir: RunDirOption = None,
    feature_set: Annotated[
        str | None, typer.Option("--feature-set", help="Override the features.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a hirqa head on the whole-photo corpus; keep the step the content-aware
    criterion prefers (held-out photos, no human label)."""
    from reliqa.training.nr_photo_head import PhotoHeadConfig, train_photo_head

    settings = load_run_config(
        PhotoHeadConfig, config, run_dir, corpus=corpus, feature_set=feature_set
    )
    _report_best(settings.run_dir, train_photo_head(settings), as_json)


@train_app.command("export-photo-head")
def export_photo_head_command(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="A finished `nr-photo-head` run.")],
    name: Annotated[str, typer.Option("--name", help="Shipped weights name.")] = "hirqa",
    command: CardCommandOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ship a photo-head run as reliqa/weights/<name>.safetensors + model card."""
    from reliqa.training.nr_photo_head import export_photo_head

    recorded = _recorded_command(command, "nr-photo-head", run_dir)
    _report_weights(export_photo_head(run_dir, name=name, command=recorded), as_json)


@train_app.command("nr-photo-distill")
def nr_photo_distill_command(
    config: ConfigOption,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="Override the teacher head run.")
    ] = None,
    run_dir: RunDirOption = None,
    max_minutes: MaxMinutesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Distil a hirqa photo head into hirqa-s on the whole-photo corpus's pixels."""
    from reliqa.training.nr_photo_distill import PhotoDistillConfig, train_photo_distill

    settings = load_run_config(
        PhotoDistillConfig, config, run_dir, teacher=teacher, max_minutes=max_minutes
    )
    _report_best(settings.run_dir, train_photo_distill(settings), as_json)


@train_app.command("export-photo-student")
def export_photo_student_command(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="A finished `nr-photo-distill` run.")],
    command: CardCommandOption = None,
    step: Annotated[
        int | None,
        typer.Option(
            "--step", help="Ship this validation step's checkpoint instead of best.safetensors."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ship a distilled hirqa-s as reliqa/weights/hirqa-s.safetensors + model card."""
    from reliqa.training.nr_photo_distill import export_photo_student

    recorded = command or "reliqa train nr-photo-distill --config configs/nr_hirqa_s_photos.json"
    _report_weights(export_photo_student(run_dir, command=recorded, step=step), as_json)
