"""Fused CUDA kernels for CuPy arrays: one pass over memory per pooling call.

backend.py imports this module only when a CuPy array is pooled, and CuPy itself is
imported only inside `_cupy()`, so the kernel sources can be generated (and checked)
on a machine without a GPU.

One kernel source is generated per *static* shape of the work: the mode, the dtypes,
the number of pooled axes and each axis's window/stride/dilation (compile-time
constants, so the tap loops unroll), and the options (NaN policy, divisor, indices).
Sizes, output lengths and pads are run-time arguments, so one compiled kernel serves
every input shape; CuPy caches the binaries in memory and on disk.

Each thread computes one output (two neighbours along the last axis where windows
overlap, so shared columns are read once) with its taps unrolled into straight-line code:
interior windows read without checks; border windows read a clamped, valid address for a
tap in the padding and ignore it, so no branch separates the loads and all are in flight
at once. float16 is computed in float32, as the engine does.

Layout: the array is seen as (outer, pooled axes..., inner) when the pooled axes are
adjacent (NCHW pooling H, W: inner = 1; HWC pooling H, W: outer = 1, inner = C), else
the pooled axes are moved last first. Flat indices count over the pooled axes only
(h * W + w), as the NumPy engine's.

Fused here:
  forward   max, min (values and indices), sum, avg, l2, lp over 1, 2 or 3 pooled axes;
            any window, stride, dilation, padding and ceil mode; nan_policy; divisors;
            dtype= requests (`dtypes.finalize` casts); adaptive bins; edge and
            reflect padding (materialised once with cupy.pad, indices mapped back).
  backward  max, min (the forward kernel's indices, then a gather); sum, avg, l2, lp
            (a per-window weight kernel, then a gather): one thread per input element
            adds the contributions of the windows that hold it, so no atomics and the
            result is deterministic. Zero padding only.
Left to the generic engine run through CuPy (`forward`/`backward` return None):
  median, more than 3 pooled axes, backward with edge/reflect padding or adaptive bins,
  axes longer than 2**31 - 1 elements or strides past 2**31 - 1, and integer sum/avg
  whose window sums do not fit the kernels' 64-bit accumulators (the engine's
  `integer_sums_fit`: 64-bit inputs holding values near their limits), which the engine
  computes exactly in 32-bit limbs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
from dataclasses import dataclass

import numpy as np

from .dtypes import finalize, natural_dtype
from .geometry import AdaptiveAxis, PoolPlan, with_materialised_padding
from .modes import names

EXTREME = ("max", "min")
FUSED_MODES = names(fused=True)
MAX_AXES = 3
THREADS = 256  # threads per block
UNROLL_COLUMNS = 64  # last-axis columns one thread may unroll; wider windows loop instead
COMPILE_OPTIONS = ("--fmad=false",)  # no fused multiply-add: sums round like NumPy's

# Tuning knobs the GPU benchmark may set (None: the heuristic in `_items`).
TUNING: dict = {"items": None, "threads": THREADS, "index64": False}

CTYPES = {
    "bool": "unsigned char",
    "int8": "signed char",
    "uint8": "unsigned char",
    "int16": "short",
    "uint16": "unsigned short",
    "int32": "int",
    "uint32": "unsigned int",
    "int64": "long long",
    "uint64": "unsigned long long",
    "float32": "float",
    "float64": "double",
}
FLOATS = ("float32", "float64")

PRELUDE = r"""
#ifndef POOLCLI_PRELUDE
#define POOLCLI_PRELUDE
#define POOLCLI_NAN_F __int_as_float(0x7fc00000)
#define POOLCLI_NAN_D __longlong_as_double(0x7ff8000000000000LL)
/* taps j = 0..K-1 of a window starting at `base` that land in [lo, hi) */
__device__ __forceinline__ int poolcli_count(int base, int K, int D, int lo, int hi) {
    int c = 0;
    for (int j = 0; j < K; ++j) {
        const int q = base + j * D;
        c += (q >= lo && q < hi) ? 1 : 0;
    }
    return c;
}
#endif
"""


def _cupy():
    """CuPy itself (tests on machines without a GPU replace this with a stand-in)."""
    return importlib.import_module("cupy")


# ================================================================== kernel descriptions


@dataclass(frozen=True)
class AxisSpec:
    """The compile-time part of one pooled axis: adaptive bins, or window/stride/dilation."""

    adaptive: bool
    window: int = 0
    stride: int = 0
    dilation: int = 0

    @property
    def span(self) -> int:
        return self.dilation * (self.window - 1) + 1


@dataclass(frozen=True)
class ForwardSpec:
    """Everything that shapes a forward (or backward-weight) kernel's source.

    finish: 'value' (the pooled value), 'round' (integer mean rounded half up, exactly),
    'weight' (the per-window factor the backward gather spreads: grad/divisor for avg,
    grad/(divisor*y) for l2, grad/y^(p-1) for lp).
    divisor: 'override', 'padded' (taps inside [-lo, n+hi)), 'real' (taps inside the
    input) or 'none'.
    """

    mode: str
    src: str  # dtype name the kernel reads
    acc: str  # accumulator dtype name
    out: str  # dtype name the kernel writes
    axes: tuple[AxisSpec, ...]
    items: int = 1  # outputs per thread along the last pooled axis
    inner: bool = False
    omit: bool = False
    indices: bool = False
    divisor: str = "none"
    override: int = 0
    p: float = 2.0
    finish: str = "value"
    index32: bool = True


@dataclass(frozen=True)
class GatherSpec:
    """A backward gather: one thread per input element sums what its windows send back.

    route=True: max/min, add grad[o] where indices[o] is this element; else add weight[o].
    local: 'none', 'l2' (times x) or 'lp' (times sign(x)|x|^(p-1)).
    """

    route: bool
    local: str
    src: str
    work: str
    axes: tuple[AxisSpec, ...]
    inner: bool = False
    omit: bool = False
    p: float = 2.0
    index32: bool = True


@dataclass(frozen=True)
class KernelSource:
    name: str
    code: str
    params: tuple[tuple[str, str], ...]  # (C type, name) in call order


class _Lines:
    """Indented lines of C, opened and closed in step with the loops they hold."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def open(self, text: str) -> None:
        self(text + " {")
        self.depth += 1

    def close(self, count: int = 1) -> None:
        for _ in range(count):
            self.depth -= 1
            self("}")


def _math(dtype_name: str, function: str) -> str:
    """sqrtf/powf/fabsf for float, sqrt/pow/fabs for double."""
    return function + "f" if dtype_name == "float32" else function


def _literal(dtype_name: str, value: float) -> str:
    """A C constant rounded to `dtype_name` exactly as `np.dtype(dtype_name).type(value)`."""
    return f"(({CTYPES[dtype_name]})({float(value)!r}))"


def _nan(dtype_name: str) -> str:
    return "POOLCLI_NAN_F" if dtype_name == "float32" else "POOLCLI_NAN_D"


def _better(spec: ForwardSpec, new: str, best: str) -> str:
    """Whether `new` replaces `best` (the NumPy engine's rule: a NaN always replaces,
    or with nan_policy='omit' a number replaces a NaN; ties keep the first)."""
    op = ">" if spec.mode == "max" else "<"
    if spec.src not in FLOATS:
        return f"{new} {op} {best}"
    if spec.omit:
        return f"({new} {op} {best} || ({best} != {best} && {new} == {new}))"
    return f"({new} {op} {best} || {new} != {new})"


def _extreme_start(spec: ForwardSpec) -> str:
    """max: -inf, the dtype's minimum or false; min: the opposite; NaN with nan_policy='omit'."""
    high = spec.mode == "min"
    if spec.src in FLOATS:
        if spec.omit:
            return _nan(spec.src)
        inf = "__int_as_float(0x7f800000)" if spec.src == "float32" else "__longlong_as_double(0x7ff0000000000000LL)"
        return inf if high else f"-{inf}"
    if spec.src == "bool":
        return "1" if high else "0"
    info = np.iinfo(spec.src)
    value = int(info.max if high else info.min)
    literal = f"({value + 1}LL - 1)" if value < 0 else f"{value}ULL"
    return f"(({CTYPES[spec.src]}){literal})"


def _transform(spec: ForwardSpec, value: str) -> str:
    """What a sum-family window adds per tap: x, x^2 or |x|^p, in the accumulator type."""
    cast = f"(({CTYPES[spec.acc]}){value})"
    if spec.mode in ("sum", "avg"):
        return cast
    if spec.mode == "l2" or spec.p == 2.0:
        return f"({cast} * {cast})"
    return f"{_math(spec.acc, 'pow')}({_math(spec.acc, 'fabs')}({cast}), {_literal(spec.acc, spec.p)})"


def _name(prefix: str, spec) -> str:
    return f"{prefix}_{hashlib.sha1(repr(spec).encode()).hexdigest()[:12]}"


def _unrolled_last(axis: AxisSpec, items: int) -> bool:
    return not axis.adaptive and (items - 1) * axis.stride + axis.span <= UNROLL_COLUMNS


@functools.lru_cache(maxsize=512)
def forward_source(spec: ForwardSpec) -> KernelSource:
    """CUDA C for one thread per `spec.items` outputs along the last pooled axis."""
    m = len(spec.axes)
    last = m - 1
    T, A, OUT = CTYPES[spec.src], CTYPES[spec.acc], CTYPES[spec.out]
    IDX = "int" if spec.index32 else "long long"
    extreme = spec.mode in EXTREME
    items = spec.items if _unrolled_last(spec.axes[last], spec.items) else 1
    count_real = spec.omit or spec.divisor == "real"

    params = [(f"const {T}* __restrict__", "x"), (f"{OUT}* __restrict__", "y")]
    if spec.indices:
        params.append(("long long* __restrict__", "yi"))
    if spec.finish == "weight":
        params.append((f"const {OUT}* __restrict__", "g"))
    params.append((IDX, "groups"))
    if spec.inner:
        params.append((IDX, "inner"))
    for a in range(m):
        params += [("int", f"n{a}"), ("int", f"o{a}"), ("int", f"lo{a}"), ("int", f"hi{a}")]
    params.append(("int", "glast"))

    c = _Lines()
    c(f"const {IDX} t = ({IDX})blockIdx.x * ({IDX})blockDim.x + ({IDX})threadIdx.x;")
    c("if (t >= groups) return;")
    U = "unsigned" if spec.index32 else "unsigned long long"  # unsigned division is cheaper
    c(f"{U} r = ({U})t;")
    if spec.inner:
        c(f"const {IDX} ci = ({IDX})(r % ({U})inner);")
        c(f"r /= ({U})inner;")
    c(f"const int gl = (int)(r % ({U})glast);")
    c(f"r /= ({U})glast;")
    for a in reversed(range(last)):
        c(f"const int w{a} = (int)(r % ({U})o{a});")
        c(f"r /= ({U})o{a};")
    c(f"const {IDX} b = ({IDX})r;")
    c(f"const int w{last} = gl * {items};")
    c(f"const {IDX} xb = b * (" + " * ".join(f"({IDX})n{a}" for a in range(m)) + ");")
    # window starts (regular axes) or bin bounds (adaptive axes), outside the loops
    for a, axis in enumerate(spec.axes):
        if axis.adaptive:
            c(f"const int s{a} = (int)(((long long)w{a} * n{a}) / o{a});")
            c(f"const int e{a} = (int)(((long long)(w{a} + 1) * n{a} + o{a} - 1) / o{a});")
        else:
            c(f"const int cb{a} = w{a} * {axis.stride} - lo{a};")

    for i in range(items):
        if extreme:
            if spec.indices:  # the first real tap always wins, then the rule decides
                c(f"{T} best{i} = 0;")
                c(f"bool has{i} = false;")
                c(f"long long arg{i} = -1;")
            else:  # a start that every real tap replaces or equals
                c(f"{T} best{i} = {_extreme_start(spec)};")
        else:
            c(f"{A} acc{i} = 0;")
            if count_real:
                c(f"int real{i} = 0;")
            if spec.omit:
                c(f"int present{i} = 0;")

    def flat(a: int, q: str) -> str:
        return q if a == 0 else f"f{a - 1} * ({IDX})n{a} + {q}"

    def update(i: int, ok: str) -> None:
        """Fold tap value v into item i where `ok` (the tap is inside the input)."""
        guard = "" if ok == "true" else f"{ok} && "
        if extreme and spec.indices:
            c(f"if ({guard}(!has{i} || {_better(spec, 'v', f'best{i}')})) "
              f"{{ best{i} = v; arg{i} = (long long)f{last}; has{i} = true; }}")
            return
        if extreme:
            c(f"if ({guard}{_better(spec, 'v', f'best{i}')}) best{i} = v;")
            return
        if ok != "true":
            c.open(f"if ({ok})")
        if count_real:
            c(f"real{i} += 1;")
        if spec.omit:
            c(f"if (v == v) {{ acc{i} += {_transform(spec, 'v')}; present{i} += 1; }}")
        else:
            c(f"acc{i} += {_transform(spec, 'v')};")
        if ok != "true":
            c.close()

    def load(q: str) -> None:
        c(f"const {IDX} f{last} = {flat(last, q)};")
        c(f"const {T} v = x[" + (f"(xb + f{last}) * inner + ci" if spec.inner else f"xb + f{last}") + "];")

    def both(ok: str, term: str) -> str:
        return term if ok == "true" else f"{ok} && {term}"

    def taps(checked: bool) -> None:
        """Every tap in row-major window order. Short windows unroll into straight-line code;
        `checked`: a tap may fall outside the input, and then reads a clamped (valid) address
        and is ignored, so no branch separates the loads and they are all in flight at once."""
        ok = "true"
        for a in range(last):
            axis = spec.axes[a]
            if axis.adaptive:
                c.open(f"for (int q{a} = s{a}; q{a} < e{a}; ++q{a})")
                c(f"const {IDX} f{a} = {flat(a, f'q{a}')};")
            elif axis.window <= 8:
                c("#pragma unroll")
                c.open(f"for (int j{a} = 0; j{a} < {axis.window}; ++j{a})")
                c(f"const int q{a} = cb{a} + j{a} * {axis.dilation};")
                if checked:
                    c(f"const bool ok{a} = {both(ok, f'(unsigned)q{a} < (unsigned)n{a}')};  /* not padding */")
                    c(f"const {IDX} f{a} = {flat(a, f'(ok{a} ? q{a} : 0)')};")
                    ok = f"ok{a}"
                else:
                    c(f"const {IDX} f{a} = {flat(a, f'q{a}')};")
            else:
                c.open(f"for (int j{a} = 0; j{a} < {axis.window}; ++j{a})")
                c(f"const int q{a} = cb{a} + j{a} * {axis.dilation};")
                c(f"if ((unsigned)q{a} >= (unsigned)n{a}) continue;  /* padding or overhang */")
                c(f"const {IDX} f{a} = {flat(a, f'q{a}')};")

        axis = spec.axes[last]
        if axis.adaptive:
            c.open(f"for (int q{last} = s{last}; q{last} < e{last}; ++q{last})")
            load(f"q{last}")
            update(0, ok)
            c.close()
        elif unrolled:
            # every column any of the thread's windows reads, once, in increasing order
            for col in range(span):
                users = [i for i in range(items)
                         if col - i * axis.stride >= 0
                         and (col - i * axis.stride) % axis.dilation == 0
                         and (col - i * axis.stride) // axis.dilation < axis.window]
                if not users:
                    continue
                c.open("")
                c(f"const int q{last} = cb{last} + {col};")
                if checked:
                    c(f"const bool ok{last} = {both(ok, f'(unsigned)q{last} < (unsigned)n{last}')};")
                    load(f"(ok{last} ? q{last} : 0)")
                else:
                    load(f"q{last}")
                for i in users:
                    update(i, f"ok{last}" if checked else "true")
                c.close()
        else:
            c("#pragma unroll 4")
            c.open(f"for (int j{last} = 0; j{last} < {axis.window}; ++j{last})")
            c(f"const int q{last} = cb{last} + j{last} * {axis.dilation};")
            c(f"if ((unsigned)q{last} >= (unsigned)n{last}) continue;")
            load(f"q{last}")
            update(0, ok)
            c.close()
        c.close(last)

    axis = spec.axes[last]
    unrolled = not axis.adaptive and (items > 1 or axis.span <= UNROLL_COLUMNS)
    span = (items - 1) * axis.stride + axis.span
    # Interior windows (all of this thread's unrolled taps inside the input, the common
    # case) need no checks at all; the others take the checked copy of the same code.
    inside = [f"cb{a} >= 0 && cb{a} + {ax.span} <= n{a}" for a, ax in enumerate(spec.axes[:last])
              if not ax.adaptive and ax.window <= 8]
    if unrolled:
        inside.append(f"cb{last} >= 0 && cb{last} + {span} <= n{last}")
    if inside:
        c.open("if (" + " && ".join(inside) + ")")
        taps(checked=False)
        c.close()
        c.open("else")
        taps(checked=True)
        c.close()
    else:
        taps(checked=True)

    # per-axis divisor counts of the outer axes (the last axis's are per item)
    def padded_count(a: int, shift: str = "") -> str:
        ax = spec.axes[a]
        if ax.adaptive:
            return f"(e{a} - s{a})"
        return f"poolcli_count(cb{a}{shift}, {ax.window}, {ax.dilation}, -lo{a}, n{a} + hi{a})"

    yo = "b"
    for a in range(last):
        yo = f"({yo} * o{a} + w{a})"
    c(f"const {IDX} yo = {yo} * o{last} + w{last};")
    for i in range(items):
        c.open(f"if (w{last} + {i} < o{last})")
        c(f"const {IDX} k = " + (f"(yo + {i}) * inner + ci;" if spec.inner else f"yo + {i};"))
        if extreme:
            c(f"y[k] = best{i};")
            if spec.indices:
                c(f"yi[k] = arg{i};")
            c.close()
            continue
        _emit_sum_finish(c, spec, i, padded_count, last)
        c.close()

    name = _name("poolcli_forward", spec)
    signature = ",\n    ".join(f"{ctype} {pname}" for ctype, pname in params)
    code = f'{PRELUDE}\nextern "C" __global__ void {name}(\n    {signature})\n{{\n' + "\n".join(c.lines) + "\n}\n"
    return KernelSource(name, code, tuple(params))


def _emit_sum_finish(c: _Lines, spec: ForwardSpec, i: int, padded_count, last: int) -> None:
    """The value (or backward weight) of item i of a sum-family window."""
    OUT = CTYPES[spec.out]
    need_divisor = spec.mode in ("avg", "l2") or spec.finish == "round"
    if need_divisor:
        if spec.divisor == "override":
            c(f"int dc = {spec.override};")
        elif spec.divisor == "padded":
            terms = [padded_count(a) for a in range(last)] + [padded_count(last, f" + {i} * {spec.axes[last].stride}")]
            c("int dc = " + " * ".join(terms) + ";")
        else:
            c(f"int dc = real{i};")
        if spec.omit and spec.divisor != "override":  # NaN cells leave the divisor
            c(f"dc -= real{i} - present{i};")
            c("if (dc < 1) dc = 1;")
    if spec.finish == "round":  # floor((2 total + d) / (2 d)) in exact integer arithmetic
        c(f"const {OUT} num = 2 * ({OUT})acc{i} + ({OUT})dc;")
        c(f"const {OUT} den = 2 * ({OUT})dc;")
        c(f"{OUT} val = num / den;")
        if spec.out != "uint64":
            c("if (num % den != 0 && num < 0) val -= 1;")
        c("y[k] = val;")
        return
    sqrt, pw = _math(spec.out, "sqrt"), _math(spec.out, "pow")
    total = f"(({OUT})acc{i})"
    if spec.mode == "sum":
        value = total
    elif spec.mode == "avg":
        value = f"{total} / ({OUT})dc"
    elif spec.mode == "l2":
        value = f"{sqrt}({total} / ({OUT})dc)"
    elif spec.p == 2.0:
        value = f"{sqrt}({total})"
    else:
        value = f"{pw}({total}, {_literal(spec.out, 1.0 / spec.p)})"
    if spec.finish == "weight":
        c(f"const {OUT} gv = g[k];")
        if spec.mode == "avg":
            c(f"y[k] = gv / ({OUT})dc;")
        elif spec.mode == "l2":
            c(f"const {OUT} yv = {value};")
            c(f"y[k] = yv > 0 ? gv / (({OUT})dc * yv) : ({OUT})0;")
        else:  # lp
            power = "yv" if spec.p == 2.0 else f"{pw}(yv, {_literal(spec.out, spec.p - 1)})"
            c(f"const {OUT} yv = {value};")
            c(f"y[k] = yv > 0 ? gv / {power} : ({OUT})0;")
        return
    if spec.omit and spec.out in FLOATS:  # an all-NaN window has no value
        c(f"y[k] = present{i} == 0 ? {_nan(spec.out)} : {value};")
    else:
        c(f"y[k] = {value};")


@functools.lru_cache(maxsize=512)
def gather_source(spec: GatherSpec) -> KernelSource:
    """CUDA C for one thread per input element summing its windows' contributions."""
    m = len(spec.axes)
    last = m - 1
    T, W = CTYPES[spec.src], CTYPES[spec.work]
    IDX = "int" if spec.index32 else "long long"
    reads_x = spec.local != "none" or spec.omit
    params = []
    if reads_x:
        params.append((f"const {T}* __restrict__", "x"))
    params.append((f"const {W}* __restrict__", "w"))
    if spec.route:
        params.append(("const long long* __restrict__", "yi"))
    params += [(f"{W}* __restrict__", "out"), (IDX, "total")]
    if spec.inner:
        params.append((IDX, "inner"))
    for a in range(m):
        params += [("int", f"n{a}"), ("int", f"o{a}"), ("int", f"lo{a}")]

    c = _Lines()
    c(f"const {IDX} t = ({IDX})blockIdx.x * ({IDX})blockDim.x + ({IDX})threadIdx.x;")
    c("if (t >= total) return;")
    U = "unsigned" if spec.index32 else "unsigned long long"
    c(f"{U} r = ({U})t;")
    if spec.inner:
        c(f"const {IDX} ci = ({IDX})(r % ({U})inner);")
        c(f"r /= ({U})inner;")
    for a in reversed(range(m)):
        c(f"const int q{a} = (int)(r % ({U})n{a});")
        c(f"r /= ({U})n{a};")
    c(f"const {IDX} b = ({IDX})r;")
    c(f"const {IDX} yb = b * (" + " * ".join(f"({IDX})o{a}" for a in range(m)) + ");")
    if spec.route:
        me = "q0"
        for a in range(1, m):
            me = f"({me}) * (long long)n{a} + q{a}"
        c(f"const long long me = {me};")
    acc = "double" if spec.route else W
    c(f"{acc} s = 0;")
    for a, axis in enumerate(spec.axes):
        if axis.window <= 8:
            c("#pragma unroll")
        c.open(f"for (int j{a} = 0; j{a} < {axis.window}; ++j{a})")
        c(f"const int u{a} = q{a} + lo{a} - j{a} * {axis.dilation};")
        c(f"if (u{a} < 0 || u{a} % {axis.stride} != 0) continue;")
        c(f"const int w{a} = u{a} / {axis.stride};")
        c(f"if (w{a} >= o{a}) continue;")
        c(f"const {IDX} k{a} = " + (f"w{a};" if a == 0 else f"k{a - 1} * ({IDX})o{a} + w{a};"))
    c(f"const {IDX} k = " + (f"(yb + k{last}) * inner + ci;" if spec.inner else f"yb + k{last};"))
    if spec.route:
        c("if (yi[k] == me) s += (double)w[k];")
    else:
        c("s += w[k];")
    c.close(m)
    c(f"{W} res = ({W})s;")
    if reads_x:
        c(f"const {W} xv = ({W})x[t];")
    if spec.local == "l2":
        c("res = res * xv;")
    elif spec.local == "lp":
        fabs, pw = _math(spec.work, "fabs"), _math(spec.work, "pow")
        c(f"const {W} ax = {fabs}(xv);")
        c(f"const {W} sg = xv > 0 ? ({W})1 : ({W})-1;")
        c(f"res = ax > 0 ? res * (sg * {pw}(ax, {_literal(spec.work, spec.p - 1)})) : ({W})0;")
    if spec.omit:
        c(f"if (xv != xv) res = ({W})0;")
    c("out[t] = res;")

    name = _name("poolcli_gather", spec)
    signature = ",\n    ".join(f"{ctype} {pname}" for ctype, pname in params)
    code = f'{PRELUDE}\nextern "C" __global__ void {name}(\n    {signature})\n{{\n' + "\n".join(c.lines) + "\n}\n"
    return KernelSource(name, code, tuple(params))


# ================================================================== launching


@functools.lru_cache(maxsize=256)
def _compiled(source: KernelSource, raw_kernel_class):
    return raw_kernel_class(source.code, source.name, options=COMPILE_OPTIONS)


def _launch(cp, source: KernelSource, count: int, values: dict) -> None:
    """Run `source` with one thread per unit of `count`; `values` maps parameter names."""
    if count <= 0:
        return
    args = []
    for ctype, pname in source.params:
        value = values[pname]
        if "*" in ctype:
            args.append(value)
        else:
            args.append(np.int32(value) if ctype == "int" else np.int64(value))
    threads = int(TUNING.get("threads") or THREADS)
    kernel = _compiled(source, cp.RawKernel)
    kernel((-(-count // threads),), (threads,), tuple(args))


@dataclass(frozen=True)
class _Layout:
    """How an array with pooled axes maps onto (outer, pooled..., inner)."""

    pooled: tuple[int, ...]
    outer: int
    inner: int
    moved: bool  # the pooled axes were moved last (not adjacent in the array)

    def view(self, cp, a):
        """`a` (input- or output-shaped) as a C-contiguous (outer, pooled..., inner) array."""
        if self.moved:
            m = len(self.pooled)
            a = cp.moveaxis(a, self.pooled, tuple(range(a.ndim - m, a.ndim)))
        return cp.ascontiguousarray(a)

    def restore(self, cp, flat, shape: tuple[int, ...]):
        """A buffer laid out as `view` would lay out an array of `shape`, back in `shape`."""
        if not self.moved:
            return flat.reshape(shape)
        m = len(self.pooled)
        moved_shape = [n for axis, n in enumerate(shape) if axis not in self.pooled] + [shape[a] for a in self.pooled]
        back = cp.moveaxis(flat.reshape(moved_shape), tuple(range(len(shape) - m, len(shape))), self.pooled)
        return cp.ascontiguousarray(back)


def _layout(shape: tuple[int, ...], pooled: tuple[int, ...]) -> _Layout:
    first, last = pooled[0], pooled[-1]
    if pooled == tuple(range(first, last + 1)):
        return _Layout(pooled, math.prod(shape[:first]), math.prod(shape[last + 1:]), False)
    return _Layout(pooled, math.prod(n for a, n in enumerate(shape) if a not in pooled), 1, True)


def _axis_specs(plan: PoolPlan) -> tuple[AxisSpec, ...]:
    return tuple(AxisSpec(True) if isinstance(g, AdaptiveAxis) else AxisSpec(False, g.window, g.stride, g.dilation)
                 for g in plan.axes)


def _axis_values(plan: PoolPlan, gather: bool = False) -> dict:
    values = {}
    for a, g in enumerate(plan.axes):
        values.update({f"n{a}": g.size, f"o{a}": g.out, f"lo{a}": getattr(g, "pad_lo", 0)})
        if not gather:
            values[f"hi{a}"] = getattr(g, "pad_hi", 0)
    return values


def _items(axis: AxisSpec, out_last: int, inner: int) -> int:
    """Outputs per thread along the last pooled axis: neighbours share input columns."""
    if TUNING.get("items"):
        return int(TUNING["items"])
    if axis.adaptive or inner > 1 or out_last < 8:
        return 1
    return 2 if axis.stride < axis.span else 1  # overlapping windows: 2 outputs share columns


def _fits_int32(*sizes: int) -> bool:
    """32-bit index arithmetic where every offset fits (TUNING['index64'] forces 64-bit)."""
    return not TUNING.get("index64") and max(sizes) < 2**31 - 2**20  # room for the last block


def supported(x, plan: PoolPlan, *, backward: bool = False) -> bool:
    """Whether a fused kernel covers this call (else the generic engine runs on CuPy)."""
    if plan.mode not in FUSED_MODES or not 1 <= len(plan.axes) <= MAX_AXES:
        return False
    if x.dtype.name not in CTYPES and x.dtype != np.float16:
        return False
    if any(g.size + getattr(g, "pad_lo", 0) + getattr(g, "pad_hi", 0) >= 2**31 - 1 for g in plan.axes):
        return False
    if any(getattr(g, "stride", 1) >= 2**31 - 1 for g in plan.axes):  # a C int in the kernels
        return False
    if backward:
        padded = any(getattr(g, "pad_lo", 0) or getattr(g, "pad_hi", 0) for g in plan.axes)
        return not (padded and plan.pad_mode != "zeros") and not any(isinstance(g, AdaptiveAxis) for g in plan.axes)
    return True


def _materialised(cp, x, plan: PoolPlan):
    """Edge/reflect padding is real data: pad once, then pool with zero pads."""
    if plan.pad_mode == "zeros" or all(g.pad_lo == g.pad_hi == 0 for g in plan.axes if not isinstance(g, AdaptiveAxis)):
        return x, plan
    padded_plan = with_materialised_padding(plan, x.dtype.itemsize)  # checks the padded size first
    widths = [(0, 0)] * x.ndim
    for g in plan.sliding:
        widths[g.axis] = (g.pad_lo, g.pad_hi)
    return cp.pad(x, widths, mode=plan.pad_mode), padded_plan


def _original_indices(cp, indices, padded_plan: PoolPlan, plan: PoolPlan):
    """Flat indices over the materialised padding, mapped to flat indices of the input."""
    remaining = indices
    result = cp.zeros_like(indices)
    step = 1
    for padded, original in zip(reversed(padded_plan.axes), reversed(plan.axes)):
        position = remaining % padded.size
        remaining = remaining // padded.size
        source = cp.asarray(padded.original_positions(np.arange(padded.size)).astype(np.int64))
        result += source[position] * step
        step *= original.size
    return result


# ================================================================== forward


def _forward_dtypes(dtype: np.dtype, mode: str, requested: np.dtype | None) -> tuple[str, str, str, str]:
    """(src, acc, out, finish): what the kernel reads, accumulates in and writes."""
    src = "float32" if dtype == np.float16 else dtype.name
    if mode in EXTREME:
        return src, src, src, "value"
    if src in FLOATS:
        return src, src, src, "value"
    integer = "uint64" if dtype.kind == "u" else "int64"
    if mode == "sum":
        return src, integer, integer, "value"
    if mode == "avg":
        if requested is not None and requested.kind in "iu":
            return src, integer, integer, "round"
        return src, integer, "float64", "value"
    return src, "float64", "float64", "value"


def _divisor(plan: PoolPlan) -> tuple[str, int]:
    if plan.mode not in ("avg", "l2"):
        return "none", 0
    if plan.divisor_override is not None:
        return "override", int(plan.divisor_override)
    return ("padded" if plan.count_include_pad else "real"), 0


def _run_forward(cp, x, plan: PoolPlan, *, indices: bool, finish: str | None = None, dtypes=None, grad=None):
    """Launch one forward-family kernel; returns (values, indices) laid out as plan.out_shape."""
    layout = _layout(plan.shape, plan.pooled_axes)
    src, acc, out, default_finish = dtypes
    source_array = layout.view(cp, x if x.dtype.name == src else x.astype(src))
    out_shape = plan.out_shape
    out_size = math.prod(out_shape)
    last = plan.axes[-1]
    axes = _axis_specs(plan)
    items = _items(axes[-1], last.out, layout.inner)
    if not _unrolled_last(axes[-1], items):
        items = 1
    glast = -(-last.out // items)
    groups = layout.outer * layout.inner * glast * math.prod(g.out for g in plan.axes[:-1])
    divisor, override = _divisor(plan)
    spec = ForwardSpec(
        mode=plan.mode, src=src, acc=acc, out=out, axes=axes, items=items, inner=layout.inner > 1,
        omit=plan.nan_policy == "omit" and src in FLOATS, indices=indices, divisor=divisor, override=override,
        p=float(plan.p), finish=finish or default_finish,
        index32=_fits_int32(source_array.size, out_size, groups),
    )
    source = forward_source(spec)
    y = cp.empty(out_size, dtype=out)
    yi = cp.empty(out_size, dtype=np.int64) if indices else None
    values = dict(x=source_array, y=y, yi=yi, groups=groups, inner=layout.inner, glast=glast, **_axis_values(plan))
    if grad is not None:
        values["g"] = layout.view(cp, grad)
    _launch(cp, source, groups, values)
    y = layout.restore(cp, y, out_shape)
    return y, (layout.restore(cp, yi, out_shape) if indices else None)


def forward(x, plan: PoolPlan, dtype: np.dtype | None, return_indices: bool, sums_fit):
    """The pooled result (as `engine._forward` returns it), or None where no kernel is fused.

    `sums_fit(xp, source, plan)` is the engine's word on whether integer window sums fit the
    kernels' 64-bit accumulators (else the engine's exact wide path runs)."""
    if not supported(x, plan):
        return None

    cp = _cupy()
    natural = natural_dtype(x.dtype, plan.mode)
    source, padded_plan = _materialised(cp, x, plan)
    if not sums_fit(cp, source, padded_plan):
        return None  # 64-bit accumulators would overflow: the engine's exact wide path
    indices = return_indices and plan.mode in EXTREME
    y, yi = _run_forward(cp, source, padded_plan, indices=indices,
                         dtypes=_forward_dtypes(x.dtype, plan.mode, dtype))
    y = finalize(cp, y, natural, dtype)
    if not indices:
        return y
    if padded_plan is not plan:
        yi = _original_indices(cp, yi, padded_plan, plan)
    return y, yi


# ================================================================== backward


def backward(grad, x, plan: PoolPlan):
    """dL/dx (as `engine._backward` returns it), or None where no kernel is fused."""
    if not supported(x, plan, backward=True):
        return None
    cp = _cupy()
    grad_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    work = np.dtype(np.float32) if grad_dtype.itemsize < 4 else grad_dtype
    grad = grad.astype(work, copy=False)
    src = "float32" if x.dtype == np.float16 else x.dtype.name
    omit = plan.nan_policy == "omit" and src in FLOATS
    if plan.mode in EXTREME:
        _, routes = _run_forward(cp, x, plan, indices=True, dtypes=(src, src, src, "value"))
        weights = grad
    elif plan.mode == "sum":
        routes, weights = None, grad
    else:
        routes = None
        weights, _ = _run_forward(cp, x, plan, indices=False, finish="weight",
                                  dtypes=(src, work.name, work.name, "weight"), grad=grad)
    local = plan.mode if plan.mode in ("l2", "lp") else "none"
    layout = _layout(plan.shape, plan.pooled_axes)
    total = math.prod(plan.shape)
    spec = GatherSpec(
        route=routes is not None, local=local, src=src, work=work.name, axes=_axis_specs(plan),
        inner=layout.inner > 1, omit=omit and plan.mode not in EXTREME, p=float(plan.p),
        index32=_fits_int32(total, math.prod(plan.out_shape)),
    )
    source = gather_source(spec)
    out = cp.empty(total, dtype=work)
    values = dict(w=layout.view(cp, weights), out=out, total=total, inner=layout.inner,
                  **_axis_values(plan, gather=True))
    if routes is not None:
        values["yi"] = layout.view(cp, routes)
    if local != "none" or spec.omit:
        values["x"] = layout.view(cp, x if x.dtype.name == src else x.astype(src))
    _launch(cp, source, total, values)
    return layout.restore(cp, out, plan.shape).astype(grad_dtype, copy=False)
