"""stgvcodec: a video codec built on 2D Gaussian splatting (STGV).

Importing the package loads no compiled kernel; render backends load on first use.
"""

__version__ = "0.1.0"
