"""OpenCV as poolcli uses it: imported in one place, with OpenCV's own thread pool off.

poolcli runs its work on its own threads (engine slabs) and processes (batch workers).
OpenCV's pthread pool would compete with them, and a process forked after that pool
has started can hang on its first OpenCV call; batch forks its workers. So every
OpenCV call in poolcli runs on the calling thread.
"""

import cv2

cv2.setNumThreads(0)

__all__ = ["cv2"]
