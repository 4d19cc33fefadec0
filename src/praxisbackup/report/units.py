"""Sizes for logs and command output, in a module of its own: the engine commands print sizes
without loading the document renderer and its fonts."""

from __future__ import annotations

__all__ = ["human_size"]


def human_size(n: float) -> str:
    """Size in binary units with a decimal point, for logs and stored finding parameters (the
    documents show them the reader's way through :func:`report.i18n.size`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
