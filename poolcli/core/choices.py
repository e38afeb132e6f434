"""The names poolcli's options accept, in one light module (no NumPy): the command line's
start-up reads them without importing the engine.

>>> MODES
('max', 'min', 'avg', 'sum', 'l2', 'lp', 'median', 'majority', 'nearest')
"""

from .modes import names

MODES = names()  # one record each in modes.py
PAD_MODES = ("zeros", "edge", "reflect")
NAN_POLICIES = ("propagate", "omit")
BACKENDS = ("auto", "numpy", "cupy")
DTYPE_CHOICES = ("auto", "keep", "float32", "float64", "uint8", "uint16")
ALPHA_CHOICES = ("premultiplied", "straight")
COMPRESSIONS = ("zstd", "lz4", "zlib", "none")  # of streamed outputs; each store says which it takes
# The names `--format` takes: formats.written_suffixes(), one record per format in formats.py.

JPEG_QUALITY = 90
"""JPEG quality of every command unless ``--quality`` says otherwise (1..100).

With 4:2:0 chroma subsampling this is Pillow's and libjpeg's default: about half the
bytes of quality 95 with full chroma, and no difference a viewer sees on photos.
"""
NODATA_CHOICES = ("fill", "none")  # --nodata besides a number: a Zarr input's fill value; no nodata at all
