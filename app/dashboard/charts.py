"""Geometry for the dashboard's SVG charts. Charts are drawn on the server as inline SVG
(no chart library, nothing fetched from a CDN); text stays in HTML so it reads at any width."""

import math
from collections.abc import Sequence

from app.stats.schemas import Count


def peak(counts: Sequence[Count]) -> int:
    return max((c.count for c in counts), default=0)


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def polyline(values: Sequence[float | None], low: float, high: float, width: float = 100, height: float = 100) -> str:
    """SVG points for `values` spread over the width, scaled from [low, high] to the height
    (y grows downwards). Missing or non-finite values are skipped."""
    if not values:
        return ""
    step = width / max(len(values) - 1, 1)
    span = (high - low) or 1.0
    return " ".join(
        f"{i * step:.2f},{height - (v - low) / span * height:.2f}"
        for i, v in enumerate(values)
        if v is not None and math.isfinite(v)
    )


def bounds(*series: Sequence[float | None]) -> tuple[float, float]:
    finite = [v for s in series for v in s if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    margin = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return max(low - margin, 0.0) if low >= 0 else low - margin, high + margin


def number(value: float | None, digits: int = 2) -> str:
    # Not a number (None, NaN, or a figure an older run's metrics do not have): a dash.
    if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"
