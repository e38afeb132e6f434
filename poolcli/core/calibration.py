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

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


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

    def pooled(self, factors: tuple[float, ...]) -> Calibration:
        """The calibration after pooling axis i by factors[i] (1 for an axis not pooled)."""
        if len(factors) != len(self.axes):
            raise ValueError(f"{len(factors)} factors for {len(self.axes)} axes")
        scale = tuple(s * f for s, f in zip(self.scale, factors))
        translation = tuple(t + s * (f - 1) / 2 for t, s, f in zip(self.translation, self.scale, factors))
        return replace(self, scale=scale, translation=translation)
