"""The one error type for malformed, truncated or corrupt bitstreams (no torch, no numpy)."""

from __future__ import annotations


class BitstreamError(ValueError):
    """Input that is not a valid bitstream; the message says what is wrong and where (byte offset)."""
