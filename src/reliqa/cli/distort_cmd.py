"""``reliqa distort`` and ``reliqa demo``: the distortion engine from the command line.

Logic lives in :mod:`reliqa.distortions` (engine), :mod:`reliqa.reports.maps` (map pictures) and
:mod:`reliqa.reports.demo` (the demo page); this module parses options, writes files, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reliqa.cli.app import (
    app,
    checked_output_folder,
    fail,
    print_json,
    print_result,
    usage_error,
    use_threads,
)
from reliqa.cli.options import JsonOption, OverwriteOption, ThreadsOption
from reliqa.exceptions import ReliqaError


def output_names(stem: str, count: int) -> list[list[str]]:
    """The files of each distorted version: test image, maps (.npz), maps picture."""
    return [
        [f"{stem}_{number:03d}.png", f"{stem}_{number:03d}_maps.npz", f"{stem}_{number:03d}_maps.png"]
        for number in range(count)
    ]


def _catalogue_listing() -> list[dict[str, Any]]:
    from reliqa.distortions import list_distortions

    return [
        {
            "name": entry.name,
            "attribute": entry.attribute,
            "sign": entry.sign,
            "parameter": entry.parameter,
            "description": entry.description,
        }
        for entry in list_distortions()
    ]


def _print_catalogue(as_json: bool) -> None:
    listing = _catalogue_listing()
    if as_json:
        print_json({"types": listing})
        return
    for entry in listing:
        typer.echo(
            f"{entry['name']:<24} {entry['attribute']:<12} {entry['sign']:+d}  {entry['parameter']}"
        )


# `distort_command`'s own options (the shared ones come from reliqa.cli.options).
_ImageArgument = Annotated[
    Path | None, typer.Argument(help="The clean image to distort.", show_default=False)
]
_OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Folder for the test images, maps (.npz) and map pictures."),
]
_CountOption = Annotated[int, typer.Option("--count", "-n", help="Number of distorted versions.")]
_SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same outputs).")]
_TypesOption = Annotated[
    str | None,
    typer.Option(
        "--types",
        help="Comma-separated distortion types to apply to every version (default: a random "
             "mix of 1–4 per version). See --list-types.",
    ),
]
_ListTypesOption = Annotated[
    bool, typer.Option("--list-types", help="List the distortion types (attribute, sign) and exit.")
]


@app.command("distort")
def distort_command(
    image: _ImageArgument = None,
    out: _OutOption = None,
    count: _CountOption = 1,
    seed: _SeedOption = 0,
    types: _TypesOption = None,
    list_types: _ListTypesOption = False,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Distort IMAGE: write test images, truth maps (.npz, key 'maps', (9, H, W)) and pictures.

    Files of earlier runs in --out are never replaced without --overwrite.
    """
    if list_types:
        _print_catalogue(as_json)
        return
    if image is None:
        usage_error("give an IMAGE to distort (or --list-types)")
    if out is None:
        usage_error("give --out DIR for the outputs")
    if count < 1:
        usage_error(f"--count must be ≥ 1, got {count}")
    planned = output_names(image.stem, count)
    checked_output_folder(out, "--out", overwrite, [name for files in planned for name in files])
    use_threads(threads)

    from reliqa.distortions.compose import distort_image
    from reliqa.distortions.plan import check_mix
    from reliqa.io import load_image, save_image, save_maps
    from reliqa.reports.maps import render_maps

    mix = None
    if types is not None:
        names = [name.strip() for name in types.split(",") if name.strip()]
        try:
            mix = check_mix(names)
        except ReliqaError as error:
            usage_error(f"--types: {error}")
    try:
        reference = load_image(image)
    except ReliqaError as error:
        fail(str(error))

    outputs: list[dict[str, Any]] = []
    number = 0
    for batch in distort_image(reference, count, mix=mix, seed=seed):
        for index in range(len(batch)):
            test_name, maps_name, picture_name = planned[number]
            test_path = save_image(batch.test[index], out / test_name)
            maps_path = save_maps(batch.truth[index], out / maps_name)
            picture_path = out / picture_name
            render_maps(
                batch.test[index], batch.truth[index], picture_path, title=Path(test_name).stem
            )
            outputs.append(
                {
                    "test": str(test_path),
                    "maps": str(maps_path),
                    "picture": str(picture_path),
                    "distortions": [d.as_dict() for d in batch.distortions[index]],
                }
            )
            number += 1
    if as_json:
        print_json({"outputs": outputs})
        return
    for output in outputs:
        applied = ", ".join(
            f"{d['type']} ({d['attribute']} {d['sign']:+d}, intensity {d['intensity']:.2f}, "
            f"coverage {d['coverage']:.2f})"
            for d in output["distortions"]
        )
        typer.echo(f"{output['test']}: {applied}")


@app.command("demo")
def demo_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o",
            help="Folder for index.html.",
        ),
    ] = Path("demo_out"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    photos: Annotated[
        str | None,
        typer.Option(
            "--photos",
            help="Comma-separated skimage.data photos (default: astronaut,coffee,chelsea,rocket).",
        ),
    ] = None,
    versions: Annotated[int, typer.Option("--versions", help="Distorted versions per photo.")] = 2,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Distort bundled photos and write a self-contained HTML page with their truth maps."""
    from reliqa.reports import demo
    from reliqa.reports.demo import BUNDLED_PHOTOS, DEMO_PHOTOS

    if versions < 1:
        usage_error(f"--versions must be ≥ 1, got {versions}")
    names = DEMO_PHOTOS if photos is None else [p.strip() for p in photos.split(",") if p.strip()]
    unknown = [name for name in names if name not in BUNDLED_PHOTOS]
    if unknown or not names:
        usage_error(f"--photos: unknown photo {unknown[0] if unknown else ''!r}; known: "
                    f"{', '.join(BUNDLED_PHOTOS)}")
    checked_output_folder(out, "--out", overwrite, [demo.DEMO_PAGE])
    use_threads(threads)
    try:
        page = demo.build_demo(out, photos=names, versions=versions, seed=seed)
    except ReliqaError as error:
        fail(str(error))
    print_result(as_json, {"page": str(page)}, f"wrote {page}")
