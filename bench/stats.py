"""Percentiles and summaries. Latencies are kept in seconds and reported in milliseconds."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(values: Sequence[float]) -> dict[str, Any]:
    """n, median, p95, p99, min, max of latencies given in seconds, in milliseconds."""
    return {
        "n": len(values),
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "min": min(values) * 1000 if values else math.nan,
        "max": max(values) * 1000 if values else math.nan,
    }


def median_difference_ci(a: Sequence[float], b: Sequence[float], *, rounds: int = 400, seed: int = 7) -> list[float]:
    """A 95% bootstrap interval of median(b) - median(a), in milliseconds (bounded: `rounds` resamples)."""
    if len(a) < 5 or len(b) < 5:
        return [math.nan, math.nan]
    rng = random.Random(seed)
    diffs = []
    for _ in range(rounds):
        ra = rng.choices(a, k=len(a))
        rb = rng.choices(b, k=len(b))
        diffs.append((percentile(rb, 50) - percentile(ra, 50)) * 1000)
    return [percentile(diffs, 2.5), percentile(diffs, 97.5)]


def compare(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Direct (a) against gateway (b): each side's percentiles, their differences, the ratio of medians."""
    sa, sb = summary_ms(a), summary_ms(b)
    return {
        "direct": sa,
        "gateway": sb,
        "diff": {k: sb[k] - sa[k] for k in ("p50", "p95", "p99")},
        "ratio": sb["p50"] / sa["p50"] if sa["p50"] else math.nan,
        "ratio_p95": sb["p95"] / sa["p95"] if sa["p95"] else math.nan,
        "diff_p50_ci95": median_difference_ci(a, b),
    }
