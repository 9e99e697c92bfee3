"""Typed records for what the vendors send us, parsed once at the edge.

Every model tolerates fields it does not know (Loop and Whiplash add fields without notice) and
is strict about the few fields the pipeline relies on. Ids are normalised to strings for Loop
(the API sends them as strings in some payloads and integers in others) and to ints for Whiplash.
"""

from include.returns_sync.models.loop import (
    ELIGIBLE_LABEL_STATUSES,
    LabelStatus,
    LoopLineItem,
    LoopNote,
    LoopReturn,
    ReturnState,
)
from include.returns_sync.models.whiplash import (
    ConsumerReturn,
    ConsumerReturnCreate,
    CreateOriginator,
    Originator,
    ReturnItem,
    ShipnoticeItem,
    WhiplashItem,
    WhiplashOrder,
)

__all__ = [
    "ELIGIBLE_LABEL_STATUSES",
    "ConsumerReturn",
    "ConsumerReturnCreate",
    "CreateOriginator",
    "LabelStatus",
    "LoopLineItem",
    "LoopNote",
    "LoopReturn",
    "Originator",
    "ReturnItem",
    "ReturnState",
    "ShipnoticeItem",
    "WhiplashItem",
    "WhiplashOrder",
]
