"""Receipt reconciliation (issue 4): Whiplash received units against Loop's expected units.

`frames` turns typed records into the two sides of the comparison, `engine.reconcile` decides a
verdict per return in one vectorised pass under the merchant's `criteria`, and `notes` writes
the Return Note a support agent reads on a flagged return. Pure: no Airflow, no HTTP.
"""

from include.returns_sync.reconcile.criteria import (
    CRITERIA_ENV_VAR,
    Criteria,
    CriteriaError,
    load_criteria,
    parse_criteria,
)
from include.returns_sync.reconcile.engine import Reconciliation, reconcile
from include.returns_sync.reconcile.frames import (
    ReturnContext,
    context_frame,
    expected_frame,
    received_frame,
)
from include.returns_sync.reconcile.inputs import ReconciliationInputError
from include.returns_sync.reconcile.notes import compose_note
from include.returns_sync.vocabulary import ReasonCode, Verdict

__all__ = [
    "CRITERIA_ENV_VAR",
    "Criteria",
    "CriteriaError",
    "ReasonCode",
    "Reconciliation",
    "ReconciliationInputError",
    "ReturnContext",
    "Verdict",
    "compose_note",
    "context_frame",
    "expected_frame",
    "load_criteria",
    "parse_criteria",
    "received_frame",
    "reconcile",
]
