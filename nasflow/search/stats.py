"""Confidence intervals over a few runs: Student t quantiles computed here, without scipy.

The DLSR paper reports its searched architecture's PSNR over 6 searches as a mean with a
95% confidence interval (Table X): mean +- t_{0.975, n-1} * s / sqrt(n), with s the sample
standard deviation. The t quantile is found by bisection on the t distribution's CDF, which
is a regularized incomplete beta function, evaluated by its continued fraction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean, stdev

from nasflow.errors import NasflowError

_EPS = 1e-15
_MAX_TERMS = 300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, _MAX_TERMS):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    # The fraction converges fast below the mean of the beta distribution; use symmetry above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (e.g. p = 0.975, df = 5 gives 2.5706)."""
    if not 0.0 < p < 1.0:
        raise NasflowError(f"a quantile needs 0 < p < 1, got {p}")
    if df <= 0:
        raise NasflowError(f"Student t needs degrees of freedom > 0, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket: the CDF is increasing
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class MeanCI:
    """mean +- half_width at `confidence`, over n values."""

    n: int
    mean: float
    std: float  # sample standard deviation (n - 1)
    half_width: float
    confidence: float
    t: float  # the Student t quantile used

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def to_json(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "half_width": self.half_width,
                "low": self.low, "high": self.high, "confidence": self.confidence, "t": self.t}


def mean_ci(values: list[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student t confidence interval of `values` (at least 2 of them)."""
    if len(values) < 2:
        raise NasflowError(f"a confidence interval needs at least 2 values, got {len(values)}; "
                           "retrain the architectures of more seeds")
    if not 0.0 < confidence < 1.0:
        raise NasflowError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")
    n = len(values)
    s = stdev(values)
    t = t_quantile(0.5 + confidence / 2.0, n - 1)
    return MeanCI(n, fmean(values), s, t * s / math.sqrt(n), confidence, t)
