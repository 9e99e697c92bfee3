"""Fault injection settings: what can go wrong on a vendor request, and how often.

`ChaosMiddleware` (chaos.py) applies a `FaultConfig`; the admin API builds one from JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = frozenset({"429", "500", "502", "503", "timeout", "drop", "slow", "html"})


@dataclass(frozen=True)
class FaultConfig:
    """What can go wrong, and how often, on every vendor request.

    `rate` is the probability that a request gets one of `kinds` instead of its real answer
    (nothing is changed in the backend). `after_commit_rate` applies to non-GET requests only:
    the backend applies the change, then the answer is lost as a 500 or a dropped connection, the
    case that makes exactly-once hard ("created in Whiplash, worker never heard back").
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500", "502", "503", "timeout", "drop", "slow", "html")
    timeout_seconds: float = 2.0
    slow_seconds: float = 0.2
    after_commit_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {sorted(FAULT_KINDS)}")
        for name in ("rate", "after_commit_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be within [0, 1], got {value}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("FaultConfig.kinds is empty but rate > 0")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (the admin API); unknown keys are an error, not silently ignored."""
        allowed = {"rate", "kinds", "timeout_seconds", "slow_seconds", "after_commit_rate", "seed"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"unknown FaultConfig fields {unknown}; allowed: {sorted(allowed)}")
        values = dict(raw)
        if "kinds" in values:
            values["kinds"] = tuple(str(kind) for kind in values["kinds"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "timeout_seconds": self.timeout_seconds,
            "slow_seconds": self.slow_seconds,
            "after_commit_rate": self.after_commit_rate,
            "seed": self.seed,
        }
