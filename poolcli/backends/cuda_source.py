"""The CUDA C++ sources of the fused kernels, generated per mode, dtype and geometry (no CuPy needed).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from ..core.modes import MODES, names

FUSED_MODES = names(fused=True)

MAX_AXES = 3

UNROLL_COLUMNS = 64  # last-axis columns one thread may unroll; wider windows loop instead

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
    op = ">" if MODES[spec.mode].keeps == "largest" else "<"
    if spec.src not in FLOATS:
        return f"{new} {op} {best}"
    if spec.omit:
        return f"({new} {op} {best} || ({best} != {best} && {new} == {new}))"
    return f"({new} {op} {best} || {new} != {new})"


def _extreme_start(spec: ForwardSpec) -> str:
    """max: -inf, the dtype's minimum or false; min: the opposite; NaN with nan_policy='omit'."""
    high = MODES[spec.mode].keeps == "smallest"
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
    power = MODES[spec.mode].power
    if power is None:
        return cast
    if power == "2" or spec.p == 2.0:
        return f"({cast} * {cast})"
    return f"{_math(spec.acc, 'pow')}({_math(spec.acc, 'fabs')}({cast}), {_literal(spec.acc, spec.p)})"


def _name(prefix: str, spec) -> str:
    return f"{prefix}_{hashlib.sha1(repr(spec).encode()).hexdigest()[:12]}"


def unrolled_last(axis: AxisSpec, items: int) -> bool:
    return not axis.adaptive and (items - 1) * axis.stride + axis.span <= UNROLL_COLUMNS


@functools.lru_cache(maxsize=512)
def forward_source(spec: ForwardSpec) -> KernelSource:
    """CUDA C for one thread per `spec.items` outputs along the last pooled axis."""
    return _ForwardKernel(spec).source()


class _ForwardKernel:
    """The writer of one forward kernel: the thread's place, its windows' starts, the taps (an
    unchecked copy for interior windows, a checked one for the border), each item's result."""

    def __init__(self, spec: ForwardSpec) -> None:
        self.spec = spec
        self.mode = MODES[spec.mode]
        self.last = len(spec.axes) - 1
        self.T, self.A, self.OUT = CTYPES[spec.src], CTYPES[spec.acc], CTYPES[spec.out]
        self.IDX = "int" if spec.index32 else "long long"
        self.extreme = self.mode.reducer == "extreme"
        self.items = spec.items if unrolled_last(spec.axes[self.last], spec.items) else 1
        self.count_real = spec.omit or spec.divisor == "real"
        axis = spec.axes[self.last]
        self.unrolled = not axis.adaptive and (self.items > 1 or axis.span <= UNROLL_COLUMNS)
        self.span = (self.items - 1) * axis.stride + axis.span  # columns the thread's windows cover
        self.c = _Lines()

    def source(self) -> KernelSource:
        self.thread_place()
        self.window_starts()
        self.start_items()
        self.every_tap()
        self.write_items()
        return _kernel_source("poolcli_forward", self.spec, self.params(), self.c)

    def params(self) -> list[tuple[str, str]]:
        spec = self.spec
        params = [(f"const {self.T}* __restrict__", "x"), (f"{self.OUT}* __restrict__", "y")]
        if spec.indices:
            params.append(("long long* __restrict__", "yi"))
        if spec.finish == "weight":
            params.append((f"const {self.OUT}* __restrict__", "g"))
        params.append((self.IDX, "groups"))
        if spec.inner:
            params.append((self.IDX, "inner"))
        for a in range(len(spec.axes)):
            params += [("int", f"n{a}"), ("int", f"o{a}"), ("int", f"lo{a}"), ("int", f"hi{a}")]
        params.append(("int", "glast"))
        return params

    def thread_place(self) -> None:
        """The thread's batch b, inner column ci and window w{a} on every pooled axis."""
        c, IDX, last = self.c, self.IDX, self.last
        U = _thread_start(c, self.spec, "groups")
        c(f"const int gl = (int)(r % ({U})glast);")
        c(f"r /= ({U})glast;")
        for a in reversed(range(last)):
            c(f"const int w{a} = (int)(r % ({U})o{a});")
            c(f"r /= ({U})o{a};")
        c(f"const {IDX} b = ({IDX})r;")
        c(f"const int w{last} = gl * {self.items};")
        c(f"const {IDX} xb = b * (" + " * ".join(f"({IDX})n{a}" for a in range(len(self.spec.axes))) + ");")

    def window_starts(self) -> None:
        """Window starts (regular axes) or bin bounds (adaptive axes), outside the loops."""
        for a, axis in enumerate(self.spec.axes):
            if axis.adaptive:
                self.c(f"const int s{a} = (int)(((long long)w{a} * n{a}) / o{a});")
                self.c(f"const int e{a} = (int)(((long long)(w{a} + 1) * n{a} + o{a} - 1) / o{a});")
            else:
                self.c(f"const int cb{a} = w{a} * {axis.stride} - lo{a};")

    def start_items(self) -> None:
        c, T = self.c, self.T
        for i in range(self.items):
            if self.extreme and self.spec.indices:  # the first real tap always wins, then the rule decides
                c(f"{T} best{i} = 0;")
                c(f"bool has{i} = false;")
                c(f"long long arg{i} = -1;")
            elif self.extreme:  # a start that every real tap replaces or equals
                c(f"{T} best{i} = {_extreme_start(self.spec)};")
            else:
                c(f"{self.A} acc{i} = 0;")
                if self.count_real:
                    c(f"int real{i} = 0;")
                if self.spec.omit:
                    c(f"int present{i} = 0;")

    def every_tap(self) -> None:
        """Interior windows (all of this thread's unrolled taps inside the input, the common
        case) need no checks at all; the others take the checked copy of the same code."""
        last = self.last
        inside = [f"cb{a} >= 0 && cb{a} + {ax.span} <= n{a}" for a, ax in enumerate(self.spec.axes[:last])
                  if not ax.adaptive and ax.window <= 8]
        if self.unrolled:
            inside.append(f"cb{last} >= 0 && cb{last} + {self.span} <= n{last}")
        if not inside:
            self.taps(checked=True)
            return
        self.c.open("if (" + " && ".join(inside) + ")")
        self.taps(checked=False)
        self.c.close()
        self.c.open("else")
        self.taps(checked=True)
        self.c.close()

    def taps(self, checked: bool) -> None:
        """Every tap in row-major window order. Short windows unroll into straight-line code;
        `checked`: a tap may fall outside the input, and then reads a clamped (valid) address
        and is ignored, so no branch separates the loads and they are all in flight at once."""
        ok = "true"
        for a in range(self.last):
            ok = self.outer_axis_loop(a, checked, ok)
        axis = self.spec.axes[self.last]
        if axis.adaptive:
            self.looped_last_axis(f"for (int q{self.last} = s{self.last}; q{self.last} < e{self.last}; ++q{self.last})",
                                  ok)
        elif self.unrolled:
            self.unrolled_last_axis(checked, ok)
        else:
            self.c("#pragma unroll 4")
            self.looped_last_axis(f"for (int j{self.last} = 0; j{self.last} < {axis.window}; ++j{self.last})", ok,
                                  regular=True)
        self.c.close(self.last)

    def outer_axis_loop(self, a: int, checked: bool, ok: str) -> str:
        """Open the loop over the taps of pooled axis `a` (not the last); the guard of its taps."""
        c, axis = self.c, self.spec.axes[a]
        if axis.adaptive:
            c.open(f"for (int q{a} = s{a}; q{a} < e{a}; ++q{a})")
            c(f"const {self.IDX} f{a} = {self.flat(a, f'q{a}')};")
            return ok
        if axis.window <= 8:
            c("#pragma unroll")
        c.open(f"for (int j{a} = 0; j{a} < {axis.window}; ++j{a})")
        c(f"const int q{a} = cb{a} + j{a} * {axis.dilation};")
        if axis.window > 8:
            c(f"if ((unsigned)q{a} >= (unsigned)n{a}) continue;  /* padding or overhang */")
            c(f"const {self.IDX} f{a} = {self.flat(a, f'q{a}')};")
            return ok
        if not checked:
            c(f"const {self.IDX} f{a} = {self.flat(a, f'q{a}')};")
            return ok
        c(f"const bool ok{a} = {_both(ok, f'(unsigned)q{a} < (unsigned)n{a}')};  /* not padding */")
        c(f"const {self.IDX} f{a} = {self.flat(a, f'(ok{a} ? q{a} : 0)')};")
        return f"ok{a}"

    def looped_last_axis(self, loop: str, ok: str, regular: bool = False) -> None:
        last = self.last
        self.c.open(loop)
        if regular:
            self.c(f"const int q{last} = cb{last} + j{last} * {self.spec.axes[last].dilation};")
            self.c(f"if ((unsigned)q{last} >= (unsigned)n{last}) continue;")
        self.load(f"q{last}")
        self.update(0, ok)
        self.c.close()

    def unrolled_last_axis(self, checked: bool, ok: str) -> None:
        """Every column any of the thread's windows reads, once, in increasing order."""
        c, last, axis = self.c, self.last, self.spec.axes[self.last]
        for col in range(self.span):
            users = [i for i in range(self.items)
                     if col - i * axis.stride >= 0
                     and (col - i * axis.stride) % axis.dilation == 0
                     and (col - i * axis.stride) // axis.dilation < axis.window]
            if not users:
                continue
            c.open("")
            c(f"const int q{last} = cb{last} + {col};")
            if checked:
                c(f"const bool ok{last} = {_both(ok, f'(unsigned)q{last} < (unsigned)n{last}')};")
                self.load(f"(ok{last} ? q{last} : 0)")
            else:
                self.load(f"q{last}")
            for i in users:
                self.update(i, f"ok{last}" if checked else "true")
            c.close()

    def flat(self, a: int, q: str) -> str:
        return q if a == 0 else f"f{a - 1} * ({self.IDX})n{a} + {q}"

    def load(self, q: str) -> None:
        last = self.last
        self.c(f"const {self.IDX} f{last} = {self.flat(last, q)};")
        self.c(f"const {self.T} v = x[" + (f"(xb + f{last}) * inner + ci" if self.spec.inner else f"xb + f{last}")
               + "];")

    def update(self, i: int, ok: str) -> None:
        """Fold tap value v into item i where `ok` (the tap is inside the input)."""
        c, spec = self.c, self.spec
        guard = "" if ok == "true" else f"{ok} && "
        if self.extreme and spec.indices:
            c(f"if ({guard}(!has{i} || {_better(spec, 'v', f'best{i}')})) "
              f"{{ best{i} = v; arg{i} = (long long)f{self.last}; has{i} = true; }}")
            return
        if self.extreme:
            c(f"if ({guard}{_better(spec, 'v', f'best{i}')}) best{i} = v;")
            return
        if ok != "true":
            c.open(f"if ({ok})")
        if self.count_real:
            c(f"real{i} += 1;")
        if spec.omit:
            c(f"if (v == v) {{ acc{i} += {_transform(spec, 'v')}; present{i} += 1; }}")
        else:
            c(f"acc{i} += {_transform(spec, 'v')};")
        if ok != "true":
            c.close()

    def padded_count(self, a: int, shift: str = "") -> str:
        """The divisor count of axis `a`: the bin's length, or the taps inside the padded input."""
        ax = self.spec.axes[a]
        if ax.adaptive:
            return f"(e{a} - s{a})"
        return f"poolcli_count(cb{a}{shift}, {ax.window}, {ax.dilation}, -lo{a}, n{a} + hi{a})"

    def write_items(self) -> None:
        c, last = self.c, self.last
        yo = "b"
        for a in range(last):
            yo = f"({yo} * o{a} + w{a})"
        c(f"const {self.IDX} yo = {yo} * o{last} + w{last};")
        for i in range(self.items):
            c.open(f"if (w{last} + {i} < o{last})")
            c(f"const {self.IDX} k = " + (f"(yo + {i}) * inner + ci;" if self.spec.inner else f"yo + {i};"))
            if self.extreme:
                c(f"y[k] = best{i};")
                if self.spec.indices:
                    c(f"yi[k] = arg{i};")
            else:
                self.write_sum(i)
            c.close()

    def write_sum(self, i: int) -> None:
        """The value (or backward weight) of item i of a sum-family window."""
        c, spec, OUT = self.c, self.spec, self.OUT
        if self.mode.divisor or spec.finish == "round":
            self.divisor_count(i)
        if spec.finish == "round":  # floor((2 total + d) / (2 d)) in exact integer arithmetic
            c(f"const {OUT} num = 2 * ({OUT})acc{i} + ({OUT})dc;")
            c(f"const {OUT} den = 2 * ({OUT})dc;")
            c(f"{OUT} val = num / den;")
            if spec.out != "uint64":  # C truncates: floor where num / den < 0 (den < 0 too: a negative override)
                c("if (num % den != 0 && (num < 0) != (den < 0)) val -= 1;")
            c("y[k] = val;")
        elif spec.finish == "weight":
            self.write_weight(self.sum_value(i))
        elif spec.omit and spec.out in FLOATS:  # an all-NaN window has no value
            c(f"y[k] = present{i} == 0 ? {_nan(spec.out)} : {self.sum_value(i)};")
        else:
            c(f"y[k] = {self.sum_value(i)};")

    def divisor_count(self, i: int) -> None:
        """dc: the override, the taps inside the padded input, or the real taps; less NaN cells."""
        c, spec, last = self.c, self.spec, self.last
        if spec.divisor == "override":
            c(f"long long dc = {spec.override}LL;")  # any non-zero int64, as PyTorch takes
        elif spec.divisor == "padded":
            terms = [self.padded_count(a) for a in range(last)]
            terms.append(self.padded_count(last, f" + {i} * {spec.axes[last].stride}"))
            c("int dc = " + " * ".join(terms) + ";")
        else:
            c(f"int dc = real{i};")
        if spec.omit and spec.divisor != "override":  # NaN cells leave the divisor
            c(f"dc -= real{i} - present{i};")
            c("if (dc < 1) dc = 1;")

    def sum_value(self, i: int) -> str:
        """The table's recipe: the sum, divided by dc where the mode divides, then its root."""
        spec, OUT = self.spec, self.OUT
        value = f"(({OUT})acc{i})"
        if self.mode.divisor:
            value = f"{value} / ({OUT})dc"
        if self.mode.power is None:
            return value
        if self.mode.power == "2" or spec.p == 2.0:
            return f"{_math(spec.out, 'sqrt')}({value})"
        return f"{_math(spec.out, 'pow')}({value}, {_literal(spec.out, 1.0 / spec.p)})"

    def write_weight(self, value: str) -> None:
        """What the backward gather spreads per window: g / dc, g / (dc * y) or g / y^(p-1)."""
        c, spec, OUT = self.c, self.spec, self.OUT
        c(f"const {OUT} gv = g[k];")
        if self.mode.power is None:  # avg: g / dc; sum: g itself
            c(f"y[k] = gv / ({OUT})dc;" if self.mode.divisor else "y[k] = gv;")
            return
        if self.mode.power == "2" or spec.p == 2.0:
            power = "yv"
        else:
            power = f"{_math(spec.out, 'pow')}(yv, {_literal(spec.out, spec.p - 1)})"
        divisor = f"(({OUT})dc * {power})" if self.mode.divisor else power
        c(f"const {OUT} yv = {value};")
        c(f"y[k] = yv > 0 ? gv / {divisor} : ({OUT})0;")


def _both(ok: str, term: str) -> str:
    return term if ok == "true" else f"{ok} && {term}"


def _thread_start(c: _Lines, spec: ForwardSpec | GatherSpec, limit: str) -> str:
    """The thread's number t (none past `limit`) as r, less its inner column ci; the unsigned type."""
    IDX = "int" if spec.index32 else "long long"
    c(f"const {IDX} t = ({IDX})blockIdx.x * ({IDX})blockDim.x + ({IDX})threadIdx.x;")
    c(f"if (t >= {limit}) return;")
    U = "unsigned" if spec.index32 else "unsigned long long"  # unsigned division is cheaper
    c(f"{U} r = ({U})t;")
    if spec.inner:
        c(f"const {IDX} ci = ({IDX})(r % ({U})inner);")
        c(f"r /= ({U})inner;")
    return U


def _kernel_source(prefix: str, spec: ForwardSpec | GatherSpec, params: list[tuple[str, str]],
                   lines: _Lines) -> KernelSource:
    name = _name(prefix, spec)
    signature = ",\n    ".join(f"{ctype} {pname}" for ctype, pname in params)
    code = f'{PRELUDE}\nextern "C" __global__ void {name}(\n    {signature})\n{{\n' + "\n".join(lines.lines) + "\n}\n"
    return KernelSource(name, code, tuple(params))


@functools.lru_cache(maxsize=512)
def gather_source(spec: GatherSpec) -> KernelSource:
    """CUDA C for one thread per input element summing its windows' contributions."""
    c = _Lines()
    IDX = "int" if spec.index32 else "long long"
    _gather_place(c, spec, IDX)
    _gather_windows(c, spec, IDX)
    _gather_finish(c, spec)
    return _kernel_source("poolcli_gather", spec, _gather_params(spec, IDX), c)


def _reads_x(spec: GatherSpec) -> bool:
    return spec.local != "none" or spec.omit


def _gather_params(spec: GatherSpec, IDX: str) -> list[tuple[str, str]]:
    T, W = CTYPES[spec.src], CTYPES[spec.work]
    params = [(f"const {T}* __restrict__", "x")] if _reads_x(spec) else []
    params.append((f"const {W}* __restrict__", "w"))
    if spec.route:
        params.append(("const long long* __restrict__", "yi"))
    params += [(f"{W}* __restrict__", "out"), (IDX, "total")]
    if spec.inner:
        params.append((IDX, "inner"))
    for a in range(len(spec.axes)):
        params += [("int", f"n{a}"), ("int", f"o{a}"), ("int", f"lo{a}")]
    return params


def _gather_place(c: _Lines, spec: GatherSpec, IDX: str) -> None:
    """The element's batch b and position q{a} on every pooled axis (and its flat index, routing)."""
    m = len(spec.axes)
    U = _thread_start(c, spec, "total")
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


def _gather_windows(c: _Lines, spec: GatherSpec, IDX: str) -> None:
    """s: the sum over every window holding the element of what that window sends back."""
    last = len(spec.axes) - 1
    c(f"{'double' if spec.route else CTYPES[spec.work]} s = 0;")
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
    c("if (yi[k] == me) s += (double)w[k];" if spec.route else "s += w[k];")
    c.close(last + 1)


def _gather_finish(c: _Lines, spec: GatherSpec) -> None:
    """The element's gradient: s, times the local factor of l2 (x) or lp (sign(x)|x|^(p-1))."""
    W = CTYPES[spec.work]
    c(f"{W} res = ({W})s;")
    if _reads_x(spec):
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
