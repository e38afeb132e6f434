"""divisor_override follows PyTorch: any non-zero integer divides, negative ones included (PyTorch's
own samples use -2), 0 is refused; forward and backward, 1-3 pooled axes, in memory and on Dask
arrays, integer outputs rounded half up exactly (the 64-bit and the wide paths)."""

from fractions import Fraction

import numpy as np
import pytest
import torch

import poolcli
from poolcli import PoolError

DIVISORS = [-2, -1, -3, -7, 1, 5]
TORCH_AVG = {2: torch.nn.functional.avg_pool2d, 3: torch.nn.functional.avg_pool3d}


def torch_case(rank: int, seed: int) -> np.ndarray:
    shape = (2, 3) + (7, 9, 5)[:rank]
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("divisor", DIVISORS)
@pytest.mark.parametrize("geometry", [dict(kernel=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
                                      dict(kernel=2, stride=1, padding=1, ceil_mode=False, count_include_pad=False),
                                      dict(kernel=3, stride=3, padding=0, ceil_mode=True, count_include_pad=False)])
def test_forward_and_backward_match_torch(rank, divisor, geometry):
    x = torch_case(rank, divisor + 10 * rank)
    k, s, p = geometry["kernel"], geometry["stride"], geometry["padding"]
    tx = torch.from_numpy(x).requires_grad_(True)
    options = dict(ceil_mode=geometry["ceil_mode"], count_include_pad=geometry["count_include_pad"],
                   divisor_override=divisor)
    if rank == 1:  # avg_pool1d has no divisor_override: avg_pool2d with a window of height 1 is the same call
        ty = TORCH_AVG[2](tx.unsqueeze(-2), (1, k), (1, s), (0, p), **options).squeeze(-2)
    else:
        ty = TORCH_AVG[rank](tx, k, s, p, **options)
    grad = np.random.default_rng(divisor + 99).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(grad))
    keywords = dict(mode="avg", padding=p, ceil_mode=geometry["ceil_mode"],
                    count_include_pad=geometry["count_include_pad"], divisor_override=divisor)
    y = poolcli.pool(x, (k,) * rank, s, **keywords)
    assert y.dtype == np.float64 and y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = poolcli.pool_backward(grad, x, (k,) * rank, s, **keywords)
    assert g.dtype == np.float64 and g.shape == x.shape
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_dask_arrays_follow_the_same_divisor():
    da = pytest.importorskip("dask.array")
    x = torch_case(2, 3)
    lazy = poolcli.pool(da.from_array(x, chunks=(1, 2, 4, 4)), 3, 2, mode="avg", padding=1, divisor_override=-2)
    np.testing.assert_array_equal(lazy.compute(), poolcli.pool(x, 3, 2, mode="avg", padding=1, divisor_override=-2))
    g = np.ones(lazy.shape)
    lazy_grad = poolcli.pool_backward(da.from_array(g, chunks=(1, 2, 2, 2)), da.from_array(x, chunks=(1, 2, 4, 4)),
                                      3, 2, mode="avg", padding=1, divisor_override=-2)
    np.testing.assert_array_equal(np.asarray(lazy_grad), poolcli.pool_backward(g, x, 3, 2, mode="avg", padding=1,
                                                                               divisor_override=-2))


def rounded(total: int, divisor: int) -> int:
    """floor(total / divisor + 1/2), exactly."""
    value = Fraction(total, divisor) + Fraction(1, 2)
    return value.numerator // value.denominator


@pytest.mark.parametrize("dtype, values", [
    ("uint8", [1, 2, 3, 4, 5, 255, 7, 250, 0]),
    ("int16", [-3, 2, -5, 4, 7, 1, 0, -8, 3]),
    ("int64", [2**62, 2**62, 2**62 - 1, -(2**63), -(2**63), 1, 2**63 - 1, 2**63 - 1, 5]),  # the wide path
    ("uint64", [2**64 - 1, 2**64 - 1, 2**64 - 2, 3, 0, 1, 2**63, 2**63, 7]),
])
@pytest.mark.parametrize("divisor", [-2, -3, -1, 3])
def test_integer_means_round_half_up_with_any_divisor(dtype, values, divisor):
    x = np.array(values, dtype=dtype)
    for out in ("int64", "float64"):
        y = poolcli.pool(x, 3, mode="avg", divisor_override=divisor, dtype=out)
        sums = [sum(int(v) for v in values[i:i + 3]) for i in range(0, 9, 3)]
        if out == "int64":
            info = np.iinfo(np.int64)
            expected = [min(max(rounded(t, divisor), info.min), info.max) for t in sums]
            assert y.tolist() == expected, (sums, divisor)
        else:
            np.testing.assert_allclose(y, [t / divisor for t in sums], rtol=1e-15)


@pytest.mark.parametrize("divisor, words", [(0, "0 cannot divide"), (2**63, "exceeds"),
                                            (-(2**63), "-9223372036854775808"), (1.5, "integer")])
def test_zero_and_unrepresentable_divisors_are_refused(divisor, words):
    with pytest.raises(PoolError, match="divisor_override") as caught:
        poolcli.pool(np.ones((4, 4)), 2, mode="avg", divisor_override=divisor)
    assert words in str(caught.value)


def test_a_negative_divisor_under_a_root_is_refused():
    with pytest.raises(PoolError, match="NaN"):
        poolcli.pool(np.ones((4, 4)), 2, mode="l2", divisor_override=-2)
