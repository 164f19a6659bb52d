from __future__ import annotations

import pytest

from nas.numbering import TRIAL_NUMBER_KEY, trial_number


@pytest.mark.parametrize(
    ("config", "trial_id", "expected"),
    [
        ({}, "6f389_00000", 0),
        ({}, "6f389_00017", 17),
        ({TRIAL_NUMBER_KEY: 4, "model.depth": 2}, "dc8fa0c5", 4),
        # A number the searcher chose wins over anything the id suggests.
        ({TRIAL_NUMBER_KEY: 2}, "6f389_00009", 2),
    ],
)
def test_trial_number(config, trial_id, expected):
    assert trial_number(config, trial_id) == expected


def test_trial_without_any_number_is_refused():
    with pytest.raises(ValueError, match="'dc8fa0c5' has no number"):
        trial_number({"model.depth": 2}, "dc8fa0c5")
