"""The one percentile: `--stats`, `/stats` and every benchmark report the same numbers numpy would."""

from __future__ import annotations

import numpy as np
import pytest

from livedub.engines.metrics import RollingStats, percentile


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101])
def test_percentile_is_numpys_linear_percentile(n):
    values = list(np.random.default_rng(n).exponential(0.05, n))
    for q in (0, 5, 50, 90, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-12)


def test_percentile_of_nothing_is_none():
    assert percentile([], 95) is None


def test_rolling_stats_report_the_same_percentiles():
    stats = RollingStats(size=4)
    for seconds in (0.010, 0.020, 0.030, 0.040, 0.100):  # the first falls out of the window of 4
        stats.add("frame", seconds)
    assert stats.percentile("frame", 50) == pytest.approx(0.035)
    assert stats.summary() == {"frame": {"p50_ms": 35.0, "p95_ms": pytest.approx(91.0), "n": 4}}
    assert stats.percentile("never", 50) is None
