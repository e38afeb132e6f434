"""Every invalid parameter raises PoolError (and nothing else) naming the parameter, value and fix."""

from __future__ import annotations

import numpy as np
import pytest

from poolcli import PoolError, adaptive_pool, output_shape, pool, pool_backward, unpool

X = np.zeros((2, 6, 6))
FIX_WORDS = ("use", "pass", "give", "drop", "name", "convert", "change", "pool")

# (call, the parameter's name, the value or the limit as the message shows it)
CASES = {
    "window 0": (lambda: pool(X, 0), "window", "0"),
    "window -1": (lambda: pool(X, -2), "window", "-2"),
    "window 2.5": (lambda: pool(X, 2.5), "window", "2.5"),
    "window 'a'": (lambda: pool(X, "a"), "window", "'a'"),
    "window True": (lambda: pool(X, True), "window", "True"),
    "window None": (lambda: pool(X, None), "window", "None"),
    "window (2, 0)": (lambda: pool(X, (2, 0)), "window", "0"),
    "window ()": (lambda: pool(X, ()), "window", "()"),
    "window of 4 on 3-d": (lambda: pool(X, (2, 2, 2, 2)), "window", "4"),
    "stride 0": (lambda: pool(X, 2, 0), "stride", "0"),
    "stride -1": (lambda: pool(X, 2, -1), "stride", "-1"),
    "stride 1.5": (lambda: pool(X, 2, 1.5), "stride", "1.5"),
    "stride count": (lambda: pool(X, 2, (1, 1, 1)), "stride", "(1, 1, 1)"),
    "dilation 0": (lambda: pool(X, 2, dilation=0), "dilation", "0"),
    "dilation -3": (lambda: pool(X, 2, dilation=(1, -3)), "dilation", "-3"),
    "dilation 'x'": (lambda: pool(X, 2, dilation="x"), "dilation", "'x'"),
    "padding > k_eff-1": (lambda: pool(X, 2, padding=2), "padding", "<= 1"),
    "padding > k_eff-1 dilated": (lambda: pool(X, 2, dilation=2, padding=3), "padding", "<= 2"),
    "padding pair hi": (lambda: pool(X, 3, padding=((0, 3), (0, 0))), "padding", "<= 2"),
    "padding k_eff-1 + 1": (lambda: pool(X, 3, dilation=2, padding=5), "padding", "<= 4"),
    "padding negative": (lambda: pool(X, 2, padding=-1), "padding", "-1"),
    "padding negative pair": (lambda: pool(X, 2, padding=((0, -1), (0, 0))), "padding", "-1"),
    "padding 'full'": (lambda: pool(X, 2, padding="full"), "padding", "'full'"),
    "padding 0.5": (lambda: pool(X, 2, padding=0.5), "padding", "0.5"),
    "padding triple": (lambda: pool(X, 3, padding=((0, 1, 2), (0, 0))), "padding", "(0, 1, 2)"),
    "padding count": (lambda: pool(X, 3, padding=(1, 1, 1)), "padding", "(1, 1, 1)"),
    "window > padded input": (lambda: pool(X, 7), "window", "7"),
    "window > padded input, one axis": (lambda: pool(X, (3, 5), padding=(0, 0), axes=(0, 1)),
                                        "window", "3"),
    "window of padding alone": (lambda: pool(np.zeros(2), 2, 1, dilation=3, padding=1),
                                "padding", "1"),
    "mode": (lambda: pool(X, 2, mode="mean"), "mode", "'mean'"),
    "mode None": (lambda: pool(X, 2, mode=None), "mode", "None"),
    "pad_mode": (lambda: pool(X, 2, padding=1, pad_mode="wrap"), "pad_mode", "'wrap'"),
    "nan_policy": (lambda: pool(X, 2, nan_policy="raise"), "nan_policy", "'raise'"),
    "ceil_mode": (lambda: pool(X, 2, ceil_mode="yes"), "ceil_mode", "'yes'"),
    "count_include_pad": (lambda: pool(X, 2, mode="avg", count_include_pad=None),
                          "count_include_pad", "None"),
    "axes vs window": (lambda: pool(X, (2, 2), axes=(0,)), "axes", "1"),
    "axes out of range": (lambda: pool(X, 2, axes=(0, 3)), "axes", "3"),
    "axes negative out of range": (lambda: pool(X, 2, axes=(0, -4)), "axes", "-4"),
    "axes repeated": (lambda: pool(X, 2, axes=(1, 1)), "axes", "(1, 1)"),
    "axes repeated negative": (lambda: pool(X, 2, axes=(2, -1)), "axes", "(2, -1)"),
    "axes float": (lambda: pool(X, 2, axes=(0.5, 1)), "axes", "0.5"),
    "axes empty": (lambda: pool(X, 2, axes=()), "axes", "empty"),
    "p 0": (lambda: pool(X, 2, mode="lp", p=0), "p", "0"),
    "p -1": (lambda: pool(X, 2, mode="lp", p=-1.0), "p", "-1.0"),
    "p inf": (lambda: pool(X, 2, mode="lp", p=float("inf")), "p", "inf"),
    "p nan": (lambda: pool(X, 2, mode="lp", p=float("nan")), "p", "nan"),
    "p '2'": (lambda: pool(X, 2, mode="lp", p="2"), "p", "'2'"),
    "divisor_override 0": (lambda: pool(X, 2, mode="avg", divisor_override=0), "divisor_override", "0"),
    "divisor_override -2": (lambda: pool(X, 2, mode="l2", divisor_override=-2), "divisor_override", "-2"),
    "divisor_override 1.5": (lambda: pool(X, 2, mode="avg", divisor_override=1.5),
                             "divisor_override", "1.5"),
    "divisor_override with max": (lambda: pool(X, 2, divisor_override=2), "divisor_override", "'max'"),
    "divisor_override with sum": (lambda: pool(X, 2, mode="sum", divisor_override=2),
                                  "divisor_override", "'sum'"),
    "return_indices with avg": (lambda: pool(X, 2, mode="avg", return_indices=True),
                                "return_indices", "'avg'"),
    "return_indices with median": (lambda: pool(X, 2, mode="median", return_indices=True),
                                   "return_indices", "'median'"),
    "dtype complex": (lambda: pool(X, 2, dtype=complex), "dtype", "complex128"),
    "dtype 'foo'": (lambda: pool(X, 2, dtype="foo"), "dtype", "'foo'"),
    "dtype object": (lambda: pool(X, 2, dtype=object), "dtype", "object"),
    "input complex": (lambda: pool(X.astype(complex), 2), "dtype", "complex128"),
    "input object": (lambda: pool(X.astype(object), 2), "dtype", "object"),
    "input str": (lambda: pool(np.array([["a", "b"], ["c", "d"]]), 2), "dtype", "<U1"),
    "input 0-d": (lambda: pool(np.float64(1.0), 1), "input", "0-d"),
    "input ragged": (lambda: pool([[1, 2], [3]], 1), "input", "[[1, 2], [3]]"),
    "grad_output shape": (lambda: pool_backward(np.ones((2, 2, 2)), X, 2), "grad_output", "(2, 2, 2)"),
    "grad_output rank": (lambda: pool_backward(np.ones((3, 3)), X, 2), "grad_output", "(3, 3)"),
    "grad_output complex": (lambda: pool_backward(np.ones((2, 3, 3), complex), X, 2),
                            "grad_output", "complex128"),
    "grad_output str": (lambda: pool_backward(np.full((2, 3, 3), "a"), X, 2), "grad_output", "<U1"),
    "backward bad window": (lambda: pool_backward(np.ones((2, 3, 3)), X, 0), "window", "0"),
    "backward bad mode": (lambda: pool_backward(np.ones((2, 3, 3)), X, 2, mode="x"), "mode", "'x'"),
    "unpool indices shape": (lambda: unpool(np.ones((2, 2)), np.zeros((2, 3), np.int64), (4, 4)),
                             "indices", "(2, 3)"),
    "unpool indices dtype": (lambda: unpool(np.ones((2, 2)), np.zeros((2, 2)), (4, 4)),
                             "indices", "float64"),
    "unpool indices too big": (lambda: unpool(np.ones((2, 2)), np.full((2, 2), 16), (4, 4)),
                               "indices", "(4, 4)"),
    "unpool indices negative": (lambda: unpool(np.ones((2, 2)), np.full((2, 2), -1), (4, 4)),
                                "indices", "(4, 4)"),
    "unpool input_shape": (lambda: unpool(np.ones((2, 2)), np.zeros((2, 2), int), (4, 4, 4)),
                           "input_shape", "(4, 4, 4)"),
    "unpool axes": (lambda: unpool(np.ones((2, 2)), np.zeros((2, 2), int), (4, 4), axes=(0, 2)),
                    "axes", "2"),
    "adaptive output_size 0": (lambda: adaptive_pool(X, 0), "output_size", "0"),
    "adaptive output_size (3, 0)": (lambda: adaptive_pool(X, (3, 0)), "output_size", "0"),
    "adaptive output_size -1": (lambda: adaptive_pool(X, -1), "output_size", "-1"),
    "adaptive output_size 2.5": (lambda: adaptive_pool(X, 2.5), "output_size", "2.5"),
    "adaptive output_size ()": (lambda: adaptive_pool(X, ()), "output_size", "()"),
    "adaptive output_size count": (lambda: adaptive_pool(X, (2, 2, 2, 2)), "output_size", "4"),
    "adaptive output_size vs axes": (lambda: adaptive_pool(X, (2, 2), axes=(1,)), "output_size", "2"),
    "adaptive mode": (lambda: adaptive_pool(X, 2, mode="foo"), "mode", "'foo'"),
    "adaptive return_indices": (lambda: adaptive_pool(X, 2, return_indices=True),
                                "return_indices", "'avg'"),
    "adaptive p": (lambda: adaptive_pool(X, 2, mode="lp", p=0), "p", "0"),
    "adaptive nan_policy": (lambda: adaptive_pool(X, 2, nan_policy="x"), "nan_policy", "'x'"),
    "adaptive dtype": (lambda: adaptive_pool(X, 2, dtype="foo"), "dtype", "'foo'"),
    "adaptive axes": (lambda: adaptive_pool(X, 2, axes=5), "axes", "5"),
    "adaptive empty axis": (lambda: adaptive_pool(np.zeros((0, 3)), 1), "axis", "(0, 3)"),
    "output_shape window": (lambda: output_shape((4, 4), 5), "window", "5"),
    "output_shape padding": (lambda: output_shape((4, 4), 2, padding=3), "padding", "3"),
}


@pytest.mark.parametrize(("call", "name", "value"), list(CASES.values()), ids=list(CASES))
def test_invalid_parameter_raises_pool_error_naming_the_cure(call, name, value):
    with pytest.raises(Exception) as info:  # noqa: B017 - the exact type is asserted below
        call()
    error = info.value
    assert isinstance(error, PoolError), f"{type(error).__name__}: {error}"
    assert isinstance(error, ValueError)
    message = str(error)
    assert name in message, message
    assert value in message, message
    assert any(f"{word} " in message for word in FIX_WORDS), message
    assert "\n" not in message  # one line for the command line


def test_errors_do_not_depend_on_the_backend_state():
    """A refused call leaves nothing behind: the same good call still works afterwards."""
    with pytest.raises(PoolError):
        pool(X, 2, mode="nope")
    assert pool(X, 2).shape == (2, 3, 3)
