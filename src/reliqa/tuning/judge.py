"""How the tuning example judges a run: classical metrics (catalogue names), the relational
model's score, the relational loss and the no-reference ``hirqa-s`` (docs/tuning.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from reliqa.attributes import ATTRIBUTES
from reliqa.exceptions import InvalidInputError
from reliqa.tuning.loss import relational_loss

JUDGE_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "gmsd", "fsim")
"""Classical metrics every run is judged by (official definitions; see docs/metrics.md)."""

NO_REFERENCE_JUDGE = "hirqa-s"
"""The no-reference model that judges every run, under its catalogue name (its weights'
sha256 is recorded with the run)."""


@dataclass
class Judge:
    """Classical metrics + the relational model's score (when its shipped weights load)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    scorer: Any = None
    scorer_error: str | None = None
    no_reference: Any = None

    @classmethod
    def create(cls) -> Judge:
        import reliqa.metrics
        from reliqa.models.registry import create_model

        judge = cls({name: reliqa.metrics.create_metric(name) for name in JUDGE_METRICS})
        try:
            judge.scorer = create_model("relational")
        except Exception as error:  # e.g. shipped weights that no longer fit the score head
            judge.scorer_error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        try:  # a no-reference judge: it never sees the reference, nor any objective
            judge.no_reference = create_model(NO_REFERENCE_JUDGE)
        except Exception:  # optional judge: reported as None
            judge.no_reference = None
        return judge

    @torch.no_grad()
    def __call__(self, test: torch.Tensor, reference: torch.Tensor) -> dict[str, float | None]:
        """{metric: value} for one pair; a metric that cannot run (too small) is None."""
        values: dict[str, float | None] = {}
        for name, metric in self.metrics.items():
            try:
                values[name] = float(metric(test, reference).mean())
            except InvalidInputError:
                values[name] = None
        values["relational_loss"] = float(relational_loss(test, reference))
        values["relational_score"] = (
            None if self.scorer is None else float(self.scorer(test, reference).score.mean())
        )
        values[NO_REFERENCE_JUDGE] = (
            None if self.no_reference is None else float(self.no_reference.score(test).mean())
        )
        return values


def attribute_summary(test: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Mean signed change per attribute (−1 … 1) of the test against the reference."""
    with torch.no_grad():
        _, terms = relational_loss(test, reference, return_terms=True)
    return {name: float(terms.signed[0, k]) for k, name in enumerate(ATTRIBUTES)}


__all__ = ["JUDGE_METRICS", "NO_REFERENCE_JUDGE", "Judge", "attribute_summary"]
