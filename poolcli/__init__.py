"""poolcli: pooling of images and feature maps, exactly as SPEC.md says, on NumPy or CuPy."""

from .engine import adaptive_pool, output_shape, pool, pool_backward, unpool
from .errors import PoolError

__version__ = "0.1.0"

__all__ = ["PoolError", "__version__", "adaptive_pool", "output_shape", "pool", "pool_backward", "unpool"]
