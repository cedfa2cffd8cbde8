from __future__ import annotations

import numpy as np
import pytest

from kneeoa_convert.parity import pearson


def test_pearson_of_related_and_constant_maps():
    a = np.arange(9.0).reshape(3, 3)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(np.zeros(9), np.zeros(9)) == 1.0
    assert pearson(np.zeros(9), np.ones(9)) == 0.0  # a dead map is not "perfectly correlated"
    assert pearson(np.zeros(9), a) == 0.0
