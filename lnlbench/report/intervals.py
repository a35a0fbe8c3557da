"""95% confidence intervals for a cell's mean accuracy over seeds, and which ranked rows they cannot tell apart.

The interval is Student's t: mean ± t(0.975, n-1) · s / √n, with s the sample standard deviation (ddof=1) over the
runs of a cell (runs that differ only in their seeds). It needs at least two runs: a one-seed cell has no interval.

Two rows are *tied* when their intervals overlap. Overlap is the conservative reading: intervals that do not overlap
imply a difference at well beyond the 5% level, while overlapping ones do not prove the rows equal, only that these
seeds cannot order them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LEVEL = 0.95
METHOD = "t, 95%, over seeds"


def t_interval(mean: float, std: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """(low, high) of the t interval for a mean of `n` runs; (nan, nan) when it cannot be computed (n < 2)."""
    if n < 2 or not (math.isfinite(mean) and math.isfinite(std)):
        return float("nan"), float("nan")
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def add_intervals(groups: pd.DataFrame) -> pd.DataFrame:
    """`groups` (one row per cell: acc_mean, acc_std, n) with `ci_low` and `ci_high` columns added."""
    bounds = [t_interval(float(m), float(s), int(n)) for m, s, n in zip(groups["acc_mean"], groups["acc_std"],
                                                                        groups["n"])]
    out = groups.copy()
    out["ci_low"] = [b[0] for b in bounds]
    out["ci_high"] = [b[1] for b in bounds]
    return out


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def ties(ranked: pd.DataFrame) -> list[list[int]]:
    """For each row of one setting's ranking, the positions (0-based, in `ranked`'s order) of the other rows whose
    interval overlaps its own; a row without an interval (one seed) ties with none and is reported as such."""
    bounds = list(zip(ranked["ci_low"].to_numpy(float), ranked["ci_high"].to_numpy(float)))
    known = [bool(np.isfinite(lo) and np.isfinite(hi)) for lo, hi in bounds]
    return [
        [j for j in range(len(bounds)) if j != i and known[i] and known[j] and overlaps(bounds[i], bounds[j])]
        for i in range(len(bounds))
    ]
