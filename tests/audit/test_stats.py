"""The two-proportion z-test against worked values."""

from __future__ import annotations

import math

import pytest

from adapter.audit.stats import two_proportion_test


def test_a_textbook_difference() -> None:
    """45/100 against 30/100: pooled 0.375, z = 0.15 / sqrt(0.375 * 0.625 * 0.02) = 2.1909."""
    test = two_proportion_test(45, 100, 30, 100)
    assert test is not None
    assert test.z == pytest.approx(2.19089, abs=1e-5)
    assert test.p_value == pytest.approx(0.028459, abs=1e-5)
    assert (test.share, test.reference_share) == (0.45, 0.30)


def test_the_test_is_two_sided_and_symmetric() -> None:
    """Swapping the groups flips z and keeps p."""
    up = two_proportion_test(45, 100, 30, 100)
    down = two_proportion_test(30, 100, 45, 100)
    assert up is not None
    assert down is not None
    assert down.z == pytest.approx(-up.z)
    assert down.p_value == pytest.approx(up.p_value)


def test_equal_shares_give_z_zero_and_p_one() -> None:
    """The same share in both groups: z 0, p 1."""
    test = two_proportion_test(10, 40, 30, 120)
    assert test is not None
    assert (test.z, test.p_value) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(0, 0, 1, 10), (1, 10, 0, 0), (0, 10, 0, 20), (10, 10, 20, 20), (11, 10, 1, 10)],
)
def test_undefined_tests_give_none(x1: int, n1: int, x2: int, n2: int) -> None:
    """Empty groups, no variance (all or none on one side in both), impossible counts."""
    assert two_proportion_test(x1, n1, x2, n2) is None


def test_p_is_the_normal_tail() -> None:
    """p is the two-sided normal tail of z."""
    test = two_proportion_test(16, 40, 12, 120)
    assert test is not None
    assert test.p_value == pytest.approx(math.erfc(abs(test.z) / math.sqrt(2)))
    assert test.p_value < 0.001
