"""The loop skeleton every training loop plugs into.

A trainer supplies what one step does and what happens every so many steps; :func:`run_steps`
owns the counting: it runs updates ``done + 1 … total`` (``done`` = updates already made, e.g.
by a resumed checkpoint), asks ``stop_before`` before each update (a time budget, a signal),
and after each update runs the :class:`Every` events in the order given (log, validate,
checkpoint, …) when their period divides the update count, or after the run's last update.

:class:`TimeBudget` is the ``max_minutes`` of a run (seconds spent by earlier sessions
included where the trainer carries them), and :class:`KeepBest` the "best validation so far"
rule with which a trainer decides whether to write its ``best`` weights.

Typical use::

    best = KeepBest("selection")
    done = run_steps(
        start, config.steps, trainer.update,
        [Every(config.log_every, trainer.log), Every(config.val_every, trainer.validate),
         Every(config.checkpoint_every, trainer.save)],
    )
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Every:
    """``action(done)`` after every ``every``-th update, and after the last one if ``at_end``."""

    every: int
    action: Callable[[int], object]
    at_end: bool = True

    def due(self, done: int, last: bool) -> bool:
        return done % self.every == 0 or (last and self.at_end)


def run_steps(
    done: int,
    total: int,
    update: Callable[[int], bool | None],
    events: Sequence[Every] = (),
    *,
    stop_before: Callable[[int], bool] | None = None,
) -> int:
    """Make updates until ``total`` are done; returns how many are done.

    Args:
        done: updates already made (0, or the step of the checkpoint a run resumed from).
        total: updates of the whole run.
        update: makes update number ``done + 1`` (it is given ``done``); returns True when
            that update is the last one (a budget ran out during it): its events run as after
            the run's last update, then the loop ends.
        events: run after each update, in this order, when due.
        stop_before: asked before each update; True ends the loop without it.
    """
    while done < total:
        if stop_before is not None and stop_before(done):
            break
        final = bool(update(done))
        done += 1
        last = final or done == total
        for event in events:
            if event.due(done, last):
                event.action(done)
        if final:
            break
    return done


@dataclass
class TimeBudget:
    """A run's wall-time budget (``max_minutes``; None: no budget).

    Args:
        minutes: the budget.
        spent_before: seconds spent by earlier sessions of the run (0: each session gets the
            whole budget).
    """

    minutes: float | None
    spent_before: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> float:
        """Seconds spent, earlier sessions included."""
        return self.spent_before + time.monotonic() - self.started

    def used(self) -> float:
        """The share of the budget spent (0 without a budget; ≥ 1 when it has run out)."""
        return self.spent() / (60.0 * self.minutes) if self.minutes else 0.0


@dataclass
class KeepBest:
    """The best validation record so far, by ``key`` (higher is better unless ``maximise`` is
    False).

    Args:
        value: the best value so far (``±inf`` or the one a checkpoint stored); None: the first
            eligible record is the best whatever its value.
        record: the best record so far, when the trainer keeps it.
    """

    key: str
    maximise: bool = True
    value: float | None = None
    record: dict[str, Any] | None = None

    def offer(self, record: dict[str, Any], *, eligible: bool = True) -> bool:
        """Take ``record`` when it is eligible and beats the best so far; True if taken."""
        value = record[self.key]
        if not eligible:
            return False
        if self.value is not None and not (
            value > self.value if self.maximise else value < self.value
        ):
            return False
        self.value, self.record = value, record
        return True
