"""Counting requests in sliding windows, as the sandbox's rate limiter counts them."""

from __future__ import annotations


def most_in_any_window(times: list[float], window: float) -> int:
    """The most sends any half-open window [t, t + window) holds (what the sandbox counts)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
