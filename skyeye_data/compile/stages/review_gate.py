"""The review gate (a recipe with a ``review:`` section): the ledger's verdicts and the routing policy
decide, sample by sample, whether it goes to training, waits in the review queue, or is dropped
(:class:`skyeye_data.review.ReviewGate`). This stage opens it once per build."""

from __future__ import annotations

from pathlib import Path

from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.recipe import Recipe
from skyeye_data.review import ReviewGate
from skyeye_data.review.apply import ReviewSetupError
from skyeye_data.review.apply import open_review_gate as open_gate


def open_review_gate(
    recipe: Recipe, out: Path, include_unreviewed: bool, ledger: Path | None = None
) -> tuple[ReviewGate | None, list[str]]:
    """The review gate (None: no `review:` section and no --ledger), and its warnings.

    The rules live in :func:`skyeye_data.review.apply.open_review_gate`: ``ledger`` (the build's
    --ledger) overrides review.ledger and brings the default policy to a recipe without a review
    section; a policy with no ledger named stops the build unless ``include_unreviewed``.
    """
    try:
        return open_gate(recipe.review, out, ledger=ledger, include_unreviewed=include_unreviewed)
    except ReviewSetupError as error:
        raise BuildError(str(error)) from error
