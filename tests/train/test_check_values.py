"""Minibatch value checks of the data-module path, dense and sparse."""

import pytest
import torch

from sc_sed.train import check_values
from sc_sed.train._datamodule import ValueRules

COUNTS = ValueRules(n_vars=4, nonnegative=True, integer=True)


def _layouts(x: torch.Tensor) -> list[torch.Tensor]:
    return [x, x.to_sparse_csr(), x.to_sparse()]


@pytest.mark.parametrize("layout", [0, 1, 2], ids=["dense", "csr", "coo"])
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "NaN or infinite"),
        (-1.0, "negative"),
        (0.5, "non-integer"),
    ],
)
def test_bad_values_are_named(layout, bad, match):
    x = torch.tensor([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 3.0, 0.0]])
    check_values(_layouts(x)[layout], COUNTS)  # clean: no error
    x[1, 3] = bad
    with pytest.raises(ValueError, match=match):
        check_values(_layouts(x)[layout], COUNTS)


def test_rules_decide_what_is_allowed():
    x = torch.tensor([[0.0, -0.5, 0.0, 1.0]])
    check_values(x, ValueRules(n_vars=4, nonnegative=False, integer=False))
    with pytest.raises(ValueError, match="5 features"):
        check_values(torch.zeros(2, 5), COUNTS)
