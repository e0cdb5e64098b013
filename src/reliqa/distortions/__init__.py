"""The synthetic distortion engine: a catalogue of distortion types (this part), spatial masks,
composition into (reference, test, truth map) triplets, and ordinal sets."""

from reliqa.distortions.catalogue import (
    DISTORTIONS,
    DistortionType,
    apply_distortion,
    get_distortion,
    list_distortions,
)
from reliqa.distortions.compose import (
    DistortedBatch,
    apply_plan,
    distort,
    distort_image,
    truth_maps,
)
from reliqa.distortions.dataset import DistortionDataset, is_held_out, validation_batches
from reliqa.distortions.masks import MASK_FAMILIES, random_masks
from reliqa.distortions.ordinal import OrdinalSet, ordinal_set
from reliqa.distortions.plan import AppliedDistortion, DistortionPlan, sample_plan

__all__ = [
    "DISTORTIONS",
    "DistortionType",
    "apply_distortion",
    "get_distortion",
    "list_distortions",
    "AppliedDistortion",
    "DistortedBatch",
    "DistortionPlan",
    "OrdinalSet",
    "apply_plan",
    "distort",
    "distort_image",
    "ordinal_set",
    "sample_plan",
    "truth_maps",
    "DistortionDataset",
    "is_held_out",
    "validation_batches",
    "MASK_FAMILIES",
    "random_masks",
]
