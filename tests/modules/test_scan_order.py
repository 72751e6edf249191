"""Scan orders are permutations whose inverses undo them exactly."""

import pytest
import torch

from harness.modules.scan_order import invert, num_directions, reorder, scan_orders


@pytest.mark.parametrize("scan,shape", [("raster", None), ("bidirectional", None), ("cross4", (3, 5))])
def test_orders_are_permutations_with_exact_inverses(scan, shape):
    l = 15
    orders = scan_orders(scan, l, shape)
    assert len(orders) == num_directions(scan)
    x = torch.randn(2, 4, l)
    for order in orders:
        if order is not None:
            assert sorted(order.tolist()) == list(range(l))
        y = reorder(x, order, dim=-1)
        assert torch.equal(reorder(y, None if order is None else invert(order), dim=-1), x)


def test_cross4_reads_columns_then_reversed():
    rows, cols, rev, rev_cols = scan_orders("cross4", 6, (2, 3))
    assert rows is None
    assert cols.tolist() == [0, 3, 1, 4, 2, 5]
    assert rev.tolist() == [5, 4, 3, 2, 1, 0]
    assert rev_cols.tolist() == [5, 2, 4, 1, 3, 0]


def test_per_sample_permutation_round_trip():
    perm = torch.stack([torch.randperm(10) for _ in range(3)])
    (order,) = scan_orders("sgn", 10, perm=perm)
    x = torch.randn(3, 10, 4)
    y = reorder(x, order, dim=1)
    assert torch.equal(y[1], x[1][perm[1]])
    assert torch.equal(reorder(y, invert(order), dim=1), x)


def test_bad_requests_raise():
    with pytest.raises(ValueError, match="shape"):
        scan_orders("cross4", 10)
    with pytest.raises(ValueError, match="perm"):
        scan_orders("sgn", 10)
    with pytest.raises(ValueError, match="unknown scan"):
        num_directions("zigzag")
