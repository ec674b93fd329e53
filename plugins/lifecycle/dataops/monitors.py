"""Data-observability monitors as plain functions: a dataset's profile against its own history.

Input: numbers of one dataset and one data interval (row count, column types, null rates,
value shares, means, age of the newest record) and the same numbers of its previous
intervals (newest first). Output: ``Result`` values (``ok`` | ``alert`` | ``skipped``, the
observed value, what was expected, a sentence saying why). No I/O: ``observe.py`` profiles
the tables, stores profiles and results, and alerts.

The statistics, chosen to need no tuning per dataset:
- volume: robust z-score against the median and the median absolute deviation (MAD) of the
  last ``HISTORY`` intervals, z = 0.6745 (x - median) / MAD, with the MAD floored at 5 % of
  the median (a very regular history must not make a 3 % wobble an anomaly); an anomaly needs
  |z| > 3.5 (Iglewicz & Hoaglin) *and* a change of more than 50 % against the median;
- distribution of a categorical column: population stability index (PSI) of its value
  shares against the pooled history, alert above 0.25 (the usual "significant shift");
- distribution of a numeric column: the same robust z-score on its mean, change > 30 %;
- null rate: required columns must have none; others alert when the rate is more than
  0.1 above the history's median;
- schema drift: any column added, removed or retyped since the previous profile;
- freshness: age of the newest record at the end of the interval above the dataset's limit;
- completeness: rows in the warehouse copy / rows in the lake for the interval, below 0.999.
Monitors that need history skip until ``MIN_HISTORY`` intervals exist; distribution monitors
skip on fewer than ``MIN_ROWS`` rows (too few to say anything).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import median

HISTORY = 14
MIN_HISTORY = 3
MIN_ROWS = 100
Z_MAX = 3.5
VOLUME_MIN_CHANGE = 0.5
MEAN_MIN_CHANGE = 0.3
MAD_FLOOR = 0.05
PSI_MAX = 0.25
NULL_RATE_RISE = 0.1
COMPLETENESS_MIN = 0.999


@dataclass(frozen=True)
class Result:
    monitor: str
    subject: str  # the column, or "*" for the whole dataset
    status: str  # ok | alert | skipped
    value: float | None
    expected: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def robust_z(x: float, history: list[float]) -> tuple[float, float, float]:
    """(z, median, MAD used) of ``x`` against ``history`` (MAD floored at 5 % of |median|)."""
    med = median(history)
    mad = median(abs(h - med) for h in history)
    mad = max(mad, MAD_FLOOR * abs(med), 1e-9)
    return 0.6745 * (x - med) / mad, med, mad


def volume(rows: int, history: list[int]) -> Result:
    if len(history) < MIN_HISTORY:
        return Result("volume", "*", "skipped", rows, f">= {MIN_HISTORY} earlier intervals",
                      f"{len(history)} earlier intervals: not enough history yet")
    z, med, _ = robust_z(rows, history)
    change = (rows - med) / med if med else (math.inf if rows else 0.0)
    bad = abs(z) > Z_MAX and abs(change) > VOLUME_MIN_CHANGE
    return Result("volume", "*", "alert" if bad else "ok", rows,
                  f"about {med:g} rows (median of last {len(history)})",
                  f"{rows} rows, {change:+.0%} against the median {med:g}, robust z {z:+.1f}")


def schema_drift(columns: dict[str, str], previous: dict[str, str] | None) -> Result:
    if previous is None:
        return Result("schema_drift", "*", "skipped", None, "a previous profile", "first profile of this dataset")
    added = sorted(set(columns) - set(previous))
    removed = sorted(set(previous) - set(columns))
    retyped = sorted(c for c in set(columns) & set(previous) if columns[c] != previous[c])
    parts = ([f"added {', '.join(f'{c} {columns[c]}' for c in added)}"] if added else []) + \
            ([f"removed {', '.join(removed)}"] if removed else []) + \
            ([f"retyped {', '.join(f'{c} {previous[c]} -> {columns[c]}' for c in retyped)}"] if retyped else [])
    n = len(added) + len(removed) + len(retyped)
    return Result("schema_drift", "*", "alert" if n else "ok", float(n), "the previous interval's columns",
                  "; ".join(parts) if parts else f"{len(columns)} columns, unchanged")


def null_rate(column: str, rate: float | None, history: list[float], required: bool) -> Result:
    if rate is None:
        return Result("null_rate", column, "skipped", None, "", "column not present or no rows")
    if required:
        return Result("null_rate", column, "alert" if rate > 0 else "ok", rate, "0 (required column)",
                      f"{rate:.1%} null")
    if len(history) < MIN_HISTORY:
        return Result("null_rate", column, "skipped", rate, f">= {MIN_HISTORY} earlier intervals",
                      f"{rate:.1%} null; not enough history yet")
    med = median(history)
    bad = rate > med + NULL_RATE_RISE
    return Result("null_rate", column, "alert" if bad else "ok", rate, f"<= {med + NULL_RATE_RISE:.1%}",
                  f"{rate:.1%} null against a median of {med:.1%}")


def psi(current: dict[str, float], baseline: dict[str, float], eps: float = 1e-4) -> float:
    """Population stability index of two share distributions (missing categories get ``eps``)."""
    total = 0.0
    for k in set(current) | set(baseline):
        a, b = max(current.get(k, 0.0), eps), max(baseline.get(k, 0.0), eps)
        total += (a - b) * math.log(a / b)
    return total


def categorical_shift(column: str, shares: dict[str, float] | None, rows: int,
                      history: list[dict[str, float]]) -> Result:
    if not shares or rows < MIN_ROWS:
        return Result("distribution", column, "skipped", None, f">= {MIN_ROWS} rows", f"{rows} rows")
    if len(history) < MIN_HISTORY:
        return Result("distribution", column, "skipped", None, f">= {MIN_HISTORY} earlier intervals",
                      "not enough history yet")
    keys = set().union(*history) | set(shares)
    baseline = {k: sum(h.get(k, 0.0) for h in history) / len(history) for k in keys}
    value = psi(shares, baseline)
    worst = max(keys, key=lambda k: abs(shares.get(k, 0.0) - baseline[k]))
    return Result("distribution", column, "alert" if value > PSI_MAX else "ok", value, f"PSI <= {PSI_MAX}",
                  f"PSI {value:.3f}; largest move: {worst} {baseline[worst]:.1%} -> {shares.get(worst, 0.0):.1%}")


def numeric_shift(column: str, mean: float | None, rows: int, history: list[float]) -> Result:
    if mean is None or rows < MIN_ROWS:
        return Result("distribution", column, "skipped", mean, f">= {MIN_ROWS} rows", f"{rows} rows")
    if len(history) < MIN_HISTORY:
        return Result("distribution", column, "skipped", mean, f">= {MIN_HISTORY} earlier intervals",
                      "not enough history yet")
    z, med, _ = robust_z(mean, history)
    change = (mean - med) / med if med else 0.0
    bad = abs(z) > Z_MAX and abs(change) > MEAN_MIN_CHANGE
    return Result("distribution", column, "alert" if bad else "ok", mean, f"mean about {med:g}",
                  f"mean {mean:g}, {change:+.0%} against the median {med:g}, robust z {z:+.1f}")


def freshness(age_s: float | None, max_age_s: float | None) -> Result:
    if max_age_s is None:
        return Result("freshness", "*", "skipped", age_s, "", "no freshness limit for this dataset")
    if age_s is None:
        return Result("freshness", "*", "alert", None, f"<= {max_age_s / 3600:g} h", "no record at all")
    return Result("freshness", "*", "alert" if age_s > max_age_s else "ok", age_s, f"<= {max_age_s / 3600:g} h",
                  f"newest record {age_s / 3600:.1f} h before the end of the interval")


def completeness(ratio: float | None, of: str | None) -> Result:
    if ratio is None or of is None:
        return Result("completeness", "*", "skipped", ratio, "", "no upstream copy to compare with")
    return Result("completeness", "*", "alert" if ratio < COMPLETENESS_MIN else "ok", ratio,
                  f">= {COMPLETENESS_MIN}", f"{ratio:.2%} of the rows of {of} for the interval")
