"""The audit's one statistical test: the two-proportion z-test, in closed form.

A share in one group (a sender's month) is compared with the share in a reference group (the
same sender's earlier months, or the other senders in that month) under the pooled null
hypothesis that both share one proportion::

    p = (x1 + x2) / (n1 + n2)
    z = (x1/n1 - x2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))
    two-sided p-value = erfc(|z| / sqrt 2)

The normal tail is exact through ``math.erfc``, so no statistics library is needed (scipy would
add some 40 MB for one function). The approximation behind the test wants a few events on each
side; the audit only tests groups of at least ``min_reports`` reports (see ``figures.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TEST_NAME = "two-proportion z-test (pooled, two-sided)"


@dataclass(frozen=True, slots=True)
class ProportionTest:
    share: float
    reference_share: float
    z: float
    p_value: float


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> ProportionTest | None:
    """The test of x1/n1 against x2/n2; None when it is undefined (an empty group, or every
    report in both groups on the same side, where the pooled variance is zero)."""
    if n1 <= 0 or n2 <= 0 or not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    share, reference = x1 / n1, x2 / n2
    z = (share - reference) / math.sqrt(variance)
    return ProportionTest(share, reference, z, math.erfc(abs(z) / math.sqrt(2)))
