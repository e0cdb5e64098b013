"""The relational model's part of the demo page: predicted maps and rankings on bundled photos.

:func:`add_relational_section` appends to a :class:`~reliqa.reports.html.ReportPage`; the
distorted versions are made with the same seeds as :func:`reliqa.reports.demo.demo_page`, so
the predicted maps can be read against the truth maps shown above them.
"""

from __future__ import annotations

from collections.abc import Sequence

from skimage import data as skimage_data

from reliqa.distortions.compose import distort_image
from reliqa.distortions.ordinal import ordinal_set
from reliqa.io import load_image
from reliqa.models.relational_api import compare, rank, relational_model
from reliqa.reports.html import Picture, ReportPage
from reliqa.reports.maps import render_maps

PICTURE_WIDTH = 320
RANK_LEVELS = 4


def add_relational_section(
    page: ReportPage, *, photos: Sequence[str], versions: int = 2, seed: int = 0
) -> ReportPage:
    """Append ``reliqa.compare`` on the demo's distorted versions and ``reliqa.rank`` on an
    ordinal set of each photo.

    Arguments:
        page: the demo page.
        photos: names of ``skimage.data`` photos (already validated by the demo).
        versions: distorted versions per photo (as in the demo).
        seed: the demo's seed.
    """
    model = relational_model()
    page.heading("Relational model: predicted maps and scores", level=2)
    page.paragraph(
        "reliqa.compare(test, reference) on the same test images as above: the predicted maps "
        "(red = the test has more of the attribute, blue = less) and the relational score "
        "(0 = no difference, negative = worse than the reference). Then reliqa.rank on four "
        "versions of one random mix at rising intensity: a correct ranking lists them from the "
        "mildest to the strongest."
    )
    for number, name in enumerate(photos):
        reference = load_image(getattr(skimage_data, name)())
        page.heading(f"{name}: compare", level=3)
        batch = distort_image(reference, versions, seed=seed * 1000 + number, chunk=versions)[0]
        for index in range(len(batch)):
            result = compare(batch.test[index], reference, model=model)
            applied = ", ".join(f"{d.type} {d.intensity:.2f}" for d in batch.distortions[index])
            page.pictures(
                [
                    Picture(batch.test[index], f"test: {applied}", PICTURE_WIDTH),
                    Picture(
                        render_maps(result.test, result.maps, title=f"score {result.score:+.3f}"),
                        f"predicted maps, score {result.score:+.3f}",
                        2 * PICTURE_WIDTH,
                    ),
                ]
            )
            page.table(
                ["attribute", "mean_signed", "area"],
                [
                    [n, f"{s.mean_signed:+.3f}", f"{s.area:.3f}"]
                    for n, s in result.attributes.items()
                    if s.area > 0.01
                ],
            )
        page.heading(f"{name}: rank", level=3)
        sets = ordinal_set(reference, RANK_LEVELS, generator=seed * 1000 + number)
        candidates = [sets.versions[0, k] for k in range(RANK_LEVELS)]
        ranking = rank(candidates, reference, model=model)
        mix = ", ".join(d.type for d in sets.distortions[0])
        page.pictures(
            [
                Picture(
                    candidates[entry.index],
                    f"#{place} score {entry.score:+.3f} (level {float(sets.levels[0, entry.index]):.2f})",
                    PICTURE_WIDTH // 2 + 40,
                )
                for place, entry in enumerate(ranking, start=1)
            ]
        )
        correct = [entry.index for entry in ranking] == list(range(RANK_LEVELS))
        page.paragraph(
            f"mix: {mix}; ranking {'matches' if correct else 'does not match'} the intensity order.",
            note=True,
        )
    return page


__all__ = ["add_relational_section"]
