"""OpenCV as poolcli uses it: imported in one place, on first use, with its own thread pool off.

Importing OpenCV costs about 20 ms of start-up, more than it saves on one small image, so
io/ asks for it only where it pays (`pays`): for every JPEG (libjpeg's warnings are how
poolcli tells a corrupt JPEG, and only OpenCV lets them through), for large images, and
once it is loaded anyway (batch loads it before forking its workers).

poolcli runs its work on its own threads (engine slabs) and processes (batch workers).
OpenCV's pthread pool would compete with them, and a process forked after that pool
has started can hang on its first OpenCV call; batch forks its workers. So every
OpenCV call in poolcli runs on the calling thread.
"""

import sys

MIN_PIXELS = 4 << 20
"""Images of at least this many pixels are decoded and encoded by OpenCV even when it is not
loaded yet: there its speed pays for its import."""


def cv2():
    """The cv2 module, imported and set up on the first call."""
    import cv2 as module

    if not getattr(module, "_poolcli_ready", False):
        module.setNumThreads(0)
        module._poolcli_ready = True
    return module


def loaded() -> bool:
    """Whether OpenCV is imported already (then it costs nothing more to use)."""
    return "cv2" in sys.modules


def pays(pixels: int) -> bool:
    """Whether OpenCV should decode or encode an image of `pixels` pixels, where Pillow gives
    the same pixels (or bytes) and only the time differs."""
    return loaded() or pixels >= MIN_PIXELS
