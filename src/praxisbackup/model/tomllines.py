"""Line numbers for keys of a TOML document, so configuration errors can name the line.

``tomllib`` returns plain data without positions; this scanner walks the text once and records
where each key path (``("sources", 1, "path")``) was written. It understands the TOML used in
praxisbackup configs: ``[table]``, ``[[array.of.tables]]``, ``key = value`` and dotted keys.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*=')

Path = tuple[str | int, ...]


def _split_key(text: str) -> list[str]:
    return [part.strip().strip('"') for part in text.split(".")]


def key_lines(text: str) -> dict[Path, int]:
    """Map every table header and key path to its 1-based line number."""
    lines: dict[Path, int] = {}
    counters: dict[tuple[str, ...], int] = {}
    current: Path = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = _split_key(header.group(2))
            if header.group(1) == "[[":
                key = tuple(names)
                index = counters.get(key, -1) + 1
                counters[key] = index
                current = (*names, index)
            else:
                current = tuple(names)
            lines.setdefault(current, number)
            continue
        match = _KEY.match(line)
        if match:
            lines.setdefault((*current, *_split_key(match.group(1))), number)
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its nearest written ancestor."""
    probe = tuple(path)
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe[:-1]
    return None
