"""`PoolSpec`: every option of one pooling call, as one frozen value that travels from the
command line (or the keyword API) to the engine. `check` tests what holds whatever the input,
once; `plan` adds the input's shape (`geometry.plan_pool`, the one door) and trusts a checked
spec's options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .geometry import PoolPlan, check_windows, plan_adaptive, plan_pool
from .options import check_options

GEOMETRY = ("window", "stride", "padding", "dilation", "axes")
ADAPTIVE_OPTIONS = ("mode", "p", "nan_policy", "dtype", "return_indices", "nodata")  # what adaptive pooling reads


@dataclass(frozen=True)
class PoolSpec:
    """The keywords of `poolcli.pool`, `ceil_mode` among them (docs/semantics.md gives each)."""

    window: Any
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    axes: Any = None
    mode: str = "max"
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    p: float = 2.0
    pad_mode: str = "zeros"
    nan_policy: str = "propagate"
    dtype: Any = None
    return_indices: bool = False
    nodata: int | float | None = None  # cells equal to it are missing (docs/semantics.md, section 3)
    output_size: Any = None  # set: adaptive pooling to this size (`adaptive_pool`'s), the windows unused
    checked: bool = field(default=False, compare=False, repr=False)  # its options passed `check`

    def options(self) -> dict:
        """The options that do not depend on the shape (`core/options.check_options`'s keywords)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in (*GEOMETRY, "checked", "output_size")}

    def keywords(self) -> dict:
        """The spec as the keywords of `poolcli.pool`."""
        return {name: value for name, value in asdict(self).items() if name != "checked"}

    def check(self, count: int) -> PoolSpec:
        """Raise PoolError for anything wrong whatever the input (`count` pooled axes); the spec
        with its options resolved (the mode's canonical name, the dtype), marked checked."""
        resolved = check_options(**self.options())
        check_windows(self.window, self.stride, self.padding, self.dilation, count)
        return replace(self, **resolved, checked=True)

    def plan(self, shape: tuple[int, ...]) -> PoolPlan:
        """The validated plan for an input of `shape` (the shape's checks; a checked spec's
        options are not checked again); with an `output_size`, `adaptive_pool`'s plan."""
        if self.output_size is not None:
            options = self.options()
            return plan_adaptive(tuple(shape), self.output_size, self.axes,
                                 **{k: options[k] for k in ADAPTIVE_OPTIONS})
        return plan_pool(tuple(shape), self.window, self.stride, padding=self.padding, dilation=self.dilation,
                         axes=self.axes, checked=self.checked, **self.options())

    def but(self, **changes: Any) -> PoolSpec:
        """The spec with `changes` (still checked if they are geometry or an already checked dtype)."""
        return replace(self, **changes)


def spec_of_plan(plan: PoolPlan, ceil_mode: bool) -> PoolSpec:
    """The plan's geometry as an explicit spec (resolved pads: 'same' included), so a band pools
    with the whole array's geometry and only its own pads on the banded axes."""
    axes = plan.sliding
    return PoolSpec(window=tuple(g.window for g in axes), stride=tuple(g.stride for g in axes),
                    dilation=tuple(g.dilation for g in axes), padding=[(g.pad_lo, g.pad_hi) for g in axes],
                    axes=tuple(g.axis for g in axes), ceil_mode=ceil_mode, mode=plan.mode,
                    count_include_pad=plan.count_include_pad, divisor_override=plan.divisor_override, p=plan.p,
                    pad_mode=plan.pad_mode, nan_policy=plan.nan_policy, nodata=plan.nodata, checked=True)
