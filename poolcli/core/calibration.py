"""What one pixel measures: the axes of an array, named and typed, with their physical size and
unit. A source reads it from its metadata (OME-Zarr transforms, OME-TIFF PhysicalSize, TIFF
resolution tags) or the user gives it (`pixel_size`, `unit`); writers record it (NGFF axes and
transforms, OME-XML, TIFF resolution). No NumPy, so the command line can build one.

The rules: pooling an axis by a factor f multiplies its scale by f and moves its origin by
(f - 1) / 2 of the input's pixels (the centre of the first window); an axis not pooled keeps
both. Level k of a pyramid is level 0 pooled by its factors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import PoolError, param

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
AXIS_ORDER = "tczyx"  # NGFF's order: time, channel, then space (z, y, x)

# NGFF's unit names (the UDUNITS-2 names OME-Zarr 0.4 and 0.5 list), by the axis types they fit.
SPACE_UNITS = (
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot", "gigameter",
    "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile", "millimeter", "nanometer",
    "parsec", "petameter", "picometer", "terameter", "yard", "yoctometer", "yottameter", "zeptometer",
    "zettameter")
TIME_UNITS = (
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond", "hectosecond",
    "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute", "nanosecond", "petasecond",
    "picosecond", "second", "terasecond", "yoctosecond", "yottasecond", "zeptosecond", "zettasecond")
UNIT_ABBREVIATIONS = {"um": "micrometer", "µm": "micrometer", "μm": "micrometer", "micron": "micrometer",
                      "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "m": "meter",
                      "s": "second", "ms": "millisecond", "min": "minute", "h": "hour"}

# The layout letters (io.formats.LAYOUT_AXES) as NGFF axes: d is depth (z), h and w are y and x,
# l (a 1-d length) is x; n (a batch) has no NGFF name.
LAYOUT_NAMES = {"t": "t", "c": "c", "z": "z", "d": "z", "y": "y", "h": "y", "x": "x", "w": "x", "l": "x"}
CHANNELS_AT_MOST = 4  # an unnamed unpooled axis this short is guessed to be channels; a longer one z (or t)
GUESS_RULE = (f"the pooled axes are y, x (z, y, x); an unpooled axis of at most {CHANNELS_AT_MOST} is c, a longer"
              " one z")


def unit_name(unit: str) -> str:
    """NGFF's name of `unit` (an abbreviation such as um spelled out); a PoolError naming the
    parameter for a unit NGFF does not know.

    >>> unit_name("um"), unit_name("Micrometer"), unit_name("second")
    ('micrometer', 'micrometer', 'second')
    """
    name = UNIT_ABBREVIATIONS.get(unit.strip(), unit.strip().lower())
    name = UNIT_ABBREVIATIONS.get(name, name)
    if name not in SPACE_UNITS + TIME_UNITS:
        raise PoolError(f"{param('unit')} {unit!r} is not one of NGFF's units; use a name such as micrometer,"
                        " nanometer, millimeter, meter (or um, nm, mm) for space, second or millisecond for time")
    return name


def layout_names(layout: str) -> tuple[str, ...]:
    """The NGFF axis names of a layout (letters as `io.pooled_axes_for_layout` checks them, commas
    allowed); a PoolError for a batch axis (n), which NGFF cannot name.

    >>> layout_names("z,y,x"), layout_names("hwc"), layout_names("TCZYX")
    (('z', 'y', 'x'), ('y', 'x', 'c'), ('t', 'c', 'z', 'y', 'x'))
    """
    letters = layout.replace(",", "").lower()
    if "n" in letters:
        raise PoolError(f"{param('layout')} {layout!r} has a batch axis (n), which OME-Zarr cannot name; call it t"
                        " (time) or c (channel)")
    return tuple(LAYOUT_NAMES.get(letter, letter) for letter in letters)


def guess_axes(shape: tuple[int, ...], pooled: tuple[int, ...], image: bool = False) -> tuple[str, ...] | None:
    """The NGFF names poolcli guesses for an array's axes, in array order (None where it has no
    guess: more than 5 axes, more than 3 pooled). The pooled axes are, from the last, x, y and z.
    The others, in order: an image's is its channels (c); one alone is c when at most
    CHANNELS_AT_MOST long, else z (t with 3 pooled axes); two are (t, c) when the second is
    that short, else (c, z) when the first is, else (t, z); three are (t, c, z).

    >>> guess_axes((3, 64, 64), (1, 2)), guess_axes((40, 64, 64), (1, 2))
    (('c', 'y', 'x'), ('z', 'y', 'x'))
    >>> guess_axes((64, 48, 3), (0, 1), image=True), guess_axes((2, 3, 8, 16, 12), (2, 3, 4))
    (('y', 'x', 'c'), ('t', 'c', 'z', 'y', 'x'))
    """
    others = [n for axis, n in enumerate(shape) if axis not in pooled]
    spatial = ("z", "y", "x")[3 - len(pooled):] if 1 <= len(pooled) <= 3 else None
    small = [n <= CHANNELS_AT_MOST for n in others]
    if spatial is None or len(others) + len(pooled) > 5:
        return None
    if image and len(others) == 1:
        names: tuple[str, ...] = ("c",)
    elif len(others) == 1:
        names = ("c",) if small[0] else ("z",) if len(pooled) < 3 else ("t",)
    elif len(others) == 2 and len(pooled) < 3:
        names = ("t", "c") if small[1] else ("c", "z") if small[0] else ("t", "z")
    else:
        names = ("t", "c", "z")[:len(others)]
    unpooled, named = iter(names), iter(spatial)
    return tuple(next(named) if axis in pooled else next(unpooled) for axis in range(len(shape)))


@dataclass(frozen=True)
class Calibration:
    """One array's axes (letters of AXIS_TYPES, in array order), the physical size of one step
    along each (1.0 where unknown), the origin of its first pixel, and the units ("" where none
    is known; NGFF's unit names such as "micrometer", "second")."""

    axes: tuple[str, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    units: tuple[str, ...]

    @classmethod
    def uncalibrated(cls, axes: tuple[str, ...]) -> Calibration:
        """Axes named, one pixel a step, no unit."""
        return cls(axes, (1.0,) * len(axes), (0.0,) * len(axes), ("",) * len(axes))

    @property
    def known(self) -> bool:
        """Whether any axis carries a physical size or unit (worth writing as such)."""
        return any(units for units in self.units) or any(s != 1.0 for s in self.scale)

    def pooled(self, factors: tuple[float, ...], centres: tuple[float, ...] | None = None) -> Calibration:
        """The calibration after pooling axis i by factors[i] (1 for an axis not pooled): the
        origin moves to the centre of the first window, `centres[i]` input pixels from the first
        pixel's (default (factors[i] - 1) / 2: a window of the stride, no padding).

        >>> Calibration(("y", "x"), (0.5, 0.25), (0.0, 1.0), ("micrometer",) * 2).pooled((2, 4))
        Calibration(axes=('y', 'x'), scale=(1.0, 1.0), translation=(0.25, 1.375), units=('micrometer', 'micrometer'))
        """
        if len(factors) != len(self.axes):
            raise ValueError(f"{len(factors)} factors for {len(self.axes)} axes")
        if centres is None:
            centres = tuple((f - 1) / 2 for f in factors)
        scale = tuple(s * f for s, f in zip(self.scale, factors))
        translation = tuple(t + s * c for t, s, c in zip(self.translation, self.scale, centres))
        return replace(self, scale=scale, translation=translation)

    def storage_order(self) -> tuple[int, ...]:
        """The array's axes in NGFF's order (time, channel, then z, y, x; ties keep array order).

        >>> Calibration.uncalibrated(("y", "x", "c")).storage_order()
        (2, 0, 1)
        """
        return tuple(sorted(range(len(self.axes)), key=lambda axis: AXIS_ORDER.index(self.axes[axis])))

    def set(self, pooled: tuple[int, ...], pixel_size: tuple[float, ...] | None, unit: str | None) -> Calibration:
        """This calibration with the pixel size and unit the user gives: `pixel_size` one size for
        every pooled axis, one per pooled axis, or one per space axis (z, y, x, pooled or not);
        `unit` (NGFF's name, `unit_name`) on every space axis (the pooled ones where none is
        named space). A PoolError naming the parameter for sizes that are not positive and finite
        or do not fit the axes.

        >>> calibration = Calibration.uncalibrated(("c", "y", "x")).set((1, 2), (0.5,), "um")
        >>> calibration.scale, calibration.units
        ((1.0, 0.5, 0.5), ('', 'micrometer', 'micrometer'))
        >>> Calibration.uncalibrated(("z", "y", "x")).set((1, 2), (2, 0.5, 0.5), None).scale
        (2.0, 0.5, 0.5)
        """
        space = tuple(a for a, name in enumerate(self.axes) if AXIS_TYPES.get(name) == "space") or pooled
        scale, units = list(self.scale), list(self.units)
        if pixel_size is not None:
            sized = {1: pooled, len(pooled): pooled, len(space): space}.get(len(pixel_size))
            if sized is None:
                raise PoolError(f"{param('pixel_size')} gives {len(pixel_size)} sizes for {len(pooled)} pooled axes;"
                                " give one, one per pooled axis or one per space axis"
                                f" ({', '.join(self.axes[a] for a in space)})")
            if not all(0 < size < float("inf") for size in pixel_size):
                raise PoolError(f"{param('pixel_size')} {','.join(map(str, pixel_size))} must be positive, finite"
                                " sizes; e.g. 0.5,0.5")
            for axis, size in zip(sized, pixel_size * len(sized) if len(pixel_size) == 1 else pixel_size):
                scale[axis] = float(size)
        if unit is not None:
            name = unit_name(unit)
            for axis in space:
                units[axis] = name
        return replace(self, scale=tuple(scale), units=tuple(units))


def input_calibration(shape: tuple[int, ...], pooled: tuple[int, ...], known: Calibration | None, *,
                      names: tuple[str, ...] | None = None, image: bool = False,
                      pixel_size: tuple[float, ...] | None = None, unit: str | None = None) -> Calibration | None:
    """An input's calibration as poolcli carries it: its axes named `names` (a layout the user
    gives), else as its metadata names them (`known`), else as `guess_axes` guesses; its sizes,
    origin and units from `known` (one pixel a step without); then the user's `pixel_size` and
    `unit` (`Calibration.set`). None where no axis name is known or guessed and the user sets
    nothing (a writer that must name axes then says how to name them); a PoolError naming the
    layout where the user sets sizes on axes nothing names.

    >>> input_calibration((40, 64, 64), (1, 2), None, pixel_size=(0.5,), unit="um").scale
    (1.0, 0.5, 0.5)
    """
    if known is not None and len(known.axes) != len(shape):
        known = None
    if names is None:
        names = known.axes if known is not None else guess_axes(shape, pooled, image)
    if names is None or len(names) != len(shape):
        if pixel_size is None and unit is None:
            return None
        raise PoolError(f"the axes of a {len(shape)}-d input pooled over axes {list(pooled)} have no names to give"
                        f" sizes to; give {param('layout')} with one letter per axis (t, c, z, y, x), e.g. czyx")
    base = Calibration.uncalibrated(names) if known is None else replace(known, axes=names)
    return base if pixel_size is None and unit is None else base.set(pooled, pixel_size, unit)
