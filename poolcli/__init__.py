"""poolcli: pooling of images and feature maps, exactly as docs/semantics.md says, on NumPy or CuPy.

The public functions are imported on first use, so that `import poolcli` (and the command
line's start-up) costs nothing until pooling is asked for.
"""

from .version import __version__

__all__ = ["PoolError", "__version__", "adaptive_pool", "output_shape", "pool", "pool_backward", "unpool"]

_FROM_ENGINE = ("adaptive_pool", "output_shape", "pool", "pool_backward", "unpool")


def __getattr__(name: str):
    if name in _FROM_ENGINE:
        from . import engine

        return getattr(engine, name)
    if name == "PoolError":
        from .errors import PoolError

        return PoolError
    raise AttributeError(f"module 'poolcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
