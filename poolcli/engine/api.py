"""The engine's public entry points: `pool`, `adaptive_pool`, `pool_backward`, `unpool`, `output_shape`; and
`pool_with`, `backward_with`: the same with the options as one `core/spec.PoolSpec` (poolcli's own callers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import as_array
from ..core.geometry import plan_adaptive
from ..core.options import check_input_dtype, check_nodata_fits, resolve_axes
from ..core.spec import PoolSpec
from ..errors import PoolError
from .backward import backward_pass
from .forward import forward_pass
from .layout import batch_size, flat_targets, pooled_last, restore_layout
from .lazy import is_dask_array, known_shape, lazy_adaptive, lazy_backward, lazy_pool


def pool(
    x,
    window,
    stride=None,
    *,
    mode="max",
    padding=0,
    dilation=1,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    p=2.0,
    pad_mode="zeros",
    nan_policy="propagate",
    axes=None,
    dtype=None,
    return_indices=False,
    nodata=None,
):
    """Pool `x` with a sliding window (docs/semantics.md gives the exact meaning of each keyword).

    Integer results are exact whatever the width: a sum of int64/uint64 values that does
    not fit 64 bits is clipped to the output dtype's range (as every integer output is);
    avg is the exact sum rounded once to a float64, then divided by the divisor, or with
    an integer `dtype=` exactly floor(sum/divisor + 1/2), clipped; the median of integers
    is computed in integers (the two middle values' mean rounded half up, or rounded once
    to a float for a float `dtype=`). lp with an integral p <= 64 sums |x|^p of integers
    exactly where a float64 holds it; any other p uses the float formula (p=1e308 gives
    inf where some |x| > 1). median gathers its windows in blocks of at most
    BUDGETS.median_block_bytes of taps, so its memory does not grow with the window's overlap.
    Inputs in non-native byte order ('>f8') pool like native ones and give native results.
    `nodata=V`: cells equal to V are skipped by every mode (avg divides by the cells left) and a
    window of them alone gives V; V must be a value x's dtype holds (docs/semantics.md, section 3).
    Integer parameters must fit an int64 (as must sizes plus padding and the window span),
    else a PoolError.

    >>> import numpy as np
    >>> pool(np.arange(25).reshape(5, 5), 2)
    array([[ 6,  8],
           [16, 18]])
    >>> pool(np.array([[2, 3], [2, 3]], np.uint8), 2, mode="avg", dtype=np.uint8)
    array([[3]], dtype=uint8)
    >>> y, idx = pool(np.array([1, 3, 2, 3, 5, 5]), 2, 1, return_indices=True)
    >>> y.tolist(), idx.tolist()
    ([3, 3, 3, 5, 5], [1, 1, 3, 4, 4])
    >>> pool(np.array([1, -9, 3, -9, -9, -9], np.int16), 2, mode="avg", nodata=-9).tolist()
    [1.0, 3.0, -9.0]
    """
    return pool_with(PoolSpec(window, stride, padding, dilation, axes, mode, ceil_mode, count_include_pad,
                              divisor_override, p, pad_mode, nan_policy, dtype, return_indices, nodata), x)


def pool_with(spec: PoolSpec, x):
    """`pool` with its keywords as one `PoolSpec`: the engine's door for poolcli's own callers."""
    lazy = is_dask_array(x)
    if not lazy:
        xp, x = _checked_input(x)
    plan = spec.plan(known_shape(x) if lazy else x.shape)
    check_nodata_fits(plan.nodata, np.dtype(x.dtype))
    if lazy:
        if plan.return_indices:
            raise PoolError("return_indices is not offered for Dask arrays; pool a NumPy or CuPy array")
        return lazy_pool(x, plan, spec, pool_with)
    return forward_pass(xp, x, plan, plan.dtype, plan.return_indices)


def adaptive_pool(x, output_size, *, mode="avg", axes=None, dtype=None, p=2.0,
                  nan_policy="propagate", return_indices=False, nodata=None):
    """Pool `x` to a fixed output size; bin i covers [floor(i*n/out), ceil((i+1)*n/out)).

    `output_size` is an int or one value per pooled axis (None keeps that axis);
    `output_size=1` is global pooling. Dtypes, exactness, byte order and `nodata` as in `pool`.

    >>> import numpy as np
    >>> adaptive_pool(np.arange(5.0), 3, mode="max")
    array([1., 3., 4.])
    >>> adaptive_pool(np.arange(16.0).reshape(4, 4), 1).tolist()
    [[7.5]]
    """
    if is_dask_array(x):
        plan = plan_adaptive(known_shape(x), output_size, axes, mode=mode, p=p,
                             nan_policy=nan_policy, dtype=dtype, return_indices=return_indices, nodata=nodata)
        check_nodata_fits(plan.nodata, np.dtype(x.dtype))
        return lazy_adaptive(x, plan, lambda block: adaptive_pool(
            block, output_size, mode=mode, axes=axes, dtype=dtype, p=p, nan_policy=nan_policy, nodata=nodata))
    xp, x = _checked_input(x)
    plan = plan_adaptive(x.shape, output_size, axes, mode=mode, p=p, nan_policy=nan_policy, dtype=dtype,
                         return_indices=return_indices, nodata=nodata)
    check_nodata_fits(plan.nodata, x.dtype)
    return forward_pass(xp, x, plan, plan.dtype, plan.return_indices)


def pool_backward(grad_output, x, window, stride=None, **keywords):
    """dL/dx given dL/dy = `grad_output` for `y = pool(x, window, stride, **keywords)`.

    `x` and `grad_output` may be in either byte order; median routes in bounded blocks.

    >>> import numpy as np
    >>> pool_backward(np.ones(5), np.array([1., 3, 2, 3, 5, 5]), 2, 1).tolist()
    [0.0, 2.0, 0.0, 1.0, 2.0, 0.0]
    >>> pool_backward(np.ones((1, 1)), np.ones((2, 2)), 2, mode="avg").tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    keywords.pop("return_indices", None)
    keywords.pop("dtype", None)
    return backward_with(PoolSpec(window, stride, **keywords), grad_output, x)


def backward_with(spec: PoolSpec, grad_output, x):
    """`pool_backward` with its keywords as one `PoolSpec` (its dtype and return_indices unused)."""
    spec = spec.but(dtype=None, return_indices=False)
    if is_dask_array(x) or is_dask_array(grad_output):
        import dask.array as da

        x = da.asarray(x)
        plan = spec.plan(known_shape(x))
        check_nodata_fits(plan.nodata, np.dtype(x.dtype))
        grad_shape = known_shape(grad_output) if is_dask_array(grad_output) else tuple(grad_output.shape)
        if grad_shape != plan.out_shape:
            raise PoolError(f"grad_output has shape {tuple(grad_output.shape)} but pooling gives {plan.out_shape};"
                            " pass the gradient of the pooled output")
        return lazy_backward(grad_output, x, plan, spec, backward_with)
    xp, x = _checked_input(x)
    plan = spec.plan(x.shape)
    check_nodata_fits(plan.nodata, x.dtype)
    grad = _native(xp.asarray(grad_output))
    if grad.dtype.kind not in "biuf":
        raise PoolError(f"grad_output dtype {grad.dtype} is not a real number type; "
                        "pass a float gradient of the pooled output")
    if tuple(grad.shape) != plan.out_shape:
        raise PoolError(
            f"grad_output has shape {tuple(grad.shape)} but pooling gives {plan.out_shape}; "
            "pass the gradient of the pooled output"
        )
    return backward_pass(xp, grad, x, plan)


def unpool(y, indices, input_shape, *, axes=None):
    """Put each value of `y` back at its max/min index: the inverse routing of `return_indices`.

    `input_shape` is the full input shape, or only the pooled axes' sizes.

    >>> import numpy as np
    >>> y, idx = pool(np.array([[1, 4], [3, 2]]), 2, return_indices=True)
    >>> unpool(y, idx, (2, 2)).tolist()
    [[0, 4], [0, 0]]
    """
    xp, y = as_array(y)
    y, indices = _native(y), _native(xp.asarray(indices))
    if tuple(indices.shape) != tuple(y.shape):
        raise PoolError(f"indices shape {tuple(indices.shape)} differs from y's {tuple(y.shape)}; "
                        "pass the indices returned with y")
    if indices.dtype.kind not in "iu":
        raise PoolError(f"indices dtype {indices.dtype} is not an integer; pass pool(..., return_indices=True)[1]")
    shape = tuple(int(n) for n in input_shape)
    if axes is None and len(shape) < y.ndim:
        axes = tuple(range(y.ndim - len(shape), y.ndim))
    pooled = tuple(sorted(resolve_axes(y.ndim, None, axes)))
    full = list(y.shape)
    if len(shape) == y.ndim:
        full = list(shape)
    elif len(shape) == len(pooled):
        for axis, n in zip(pooled, shape):
            full[axis] = n
    else:
        raise PoolError(f"input_shape {shape} fits neither y's {y.ndim} axes nor the {len(pooled)} pooled axes; "
                        "pass x.shape")
    size = math.prod(full[a] for a in pooled)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= size):
        raise PoolError(f"indices run outside 0..{size - 1} for input_shape {tuple(full)}; "
                        "pass the shape of the pooled input")
    out = xp.zeros(batch_size(y.shape, pooled) * size, dtype=y.dtype)
    out[flat_targets(xp, indices, pooled, size)] = pooled_last(xp, y, pooled).ravel()
    return restore_layout(xp, out, full, pooled)


def output_shape(shape, window, stride=None, **keywords):
    """The shape `pool` returns for an input of `shape`, without computing anything.

    >>> output_shape((1, 3, 224, 224), 3, 2, padding=1)
    (1, 3, 112, 112)
    >>> output_shape((5,), 2, ceil_mode=True)
    (3,)
    """
    keywords.pop("return_indices", None)
    keywords.pop("dtype", None)
    return PoolSpec(window, stride, **keywords).plan(tuple(int(n) for n in shape)).out_shape


def _checked_input(x) -> tuple[Any, Any]:
    try:
        xp, x = as_array(x)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise PoolError(f"input {_short(x)} is not a rectangular array ({error}); "
                        "pass a NumPy or CuPy array") from error
    check_input_dtype(x.dtype)
    return xp, _native(x)


def _native(a):
    """`a` in native byte order: a '>f8' array on a little-endian machine (from a file, say)
    is converted once here, since NumPy's ufuncs refuse explicit non-native dtypes."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

