"""Human review of instruction samples through Label Studio.

The loop: a routing policy (:mod:`.policy`, the recipe's ``review:`` section) picks the samples that
need a person; :mod:`.labelstudio` pushes them as tasks and pulls the annotations back as verdicts
into a SQLite ledger (:mod:`.ledger`) that lives outside the build output; :func:`.apply.apply_review`
applies the ledger to the sample stream of the next build. Verdicts are keyed by sample id and a
content fingerprint (:mod:`.fingerprint`), so a verdict never applies to a sample whose content changed.

Importing this package does not import the Label Studio SDK; only :mod:`.labelstudio` does.
"""

from skyeye_data.review.apply import ReviewCounts, ReviewGate, apply_review
from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.ledger import ReviewLedger, Verdict
from skyeye_data.review.policy import ReviewPolicy

__all__ = ["ReviewCounts", "ReviewGate", "ReviewLedger", "ReviewPolicy", "Verdict", "apply_review", "sample_fingerprint"]
