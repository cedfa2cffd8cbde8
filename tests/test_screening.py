"""The screening rule: one frozen type, validated, used for score and label everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.screening import Screening

KL = ("KL0", "KL1", "KL2", "KL3", "KL4")


def test_score_and_label_follow_the_positive_group_and_threshold():
    s = Screening.for_classes(list(KL), [0, 1, 2, 3, 4])
    assert s.positive_classes == ("KL2", "KL3", "KL4") and s.positive_indices == (2, 3, 4) and s.rule == "KL >= 2"
    p = np.array([0.3, 0.2, 0.25, 0.15, 0.1])
    assert s.score(p) == pytest.approx(0.5)
    assert s.label(s.score(p)) == "Osteoarthritis"  # at the threshold counts as positive
    assert s.label(0.4999) == "Normal"
    batch = np.stack([p, np.array([0.9, 0.1, 0, 0, 0])])
    np.testing.assert_allclose(s.score(batch), [0.5, 0.0])
    assert s.is_positive(s.score(batch)).tolist() == [True, False]


def test_round_trip_through_the_manifest_block():
    s = Screening(KL, ("KL2", "KL3", "KL4"), 0.35, rule="KL >= 2")
    assert Screening.from_dict(s.to_dict(), list(KL)) == s


def test_plain_classes_screen_only_with_an_oa_class():
    assert Screening.for_classes(["cat", "dog"], None) is None
    s = Screening.for_classes(["Normal", "OA"], None)
    assert s.positive_classes == ("OA",)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"threshold": float("nan")}, "strictly between 0 and 1"),
        ({"threshold": 2}, "strictly between 0 and 1"),
        ({"threshold": 0}, "strictly between 0 and 1"),
        ({"threshold": "0.5"}, "must be a number"),
        ({"threshold": True}, "must be a number"),
        ({"positive_classes": ["KL2", "KL9"]}, r"\['KL9'\] are not classes"),
        ({"positive_classes": list(KL)}, "some, not all"),
        ({"positive_classes": []}, "some, not all"),
        ({"positive_classes": ["KL2", "KL2"]}, "repeat a class"),
        ({"positive_classes": "KL2"}, "list of class names"),
        ({"positive_label": "Normal"}, "two different non-empty strings"),
        ({"negative_label": ""}, "two different non-empty strings"),
    ],
)
def test_a_screening_block_that_cannot_screen_is_refused(change, problem):
    block = Screening(KL, ("KL2", "KL3", "KL4")).to_dict() | change
    with pytest.raises(ValueError, match=problem):
        Screening.from_dict(block, list(KL))


def test_a_missing_field_is_named():
    block = Screening(KL, ("KL2",)).to_dict()
    del block["threshold"]
    with pytest.raises(KeyError, match="threshold"):
        Screening.from_dict(block, list(KL))
