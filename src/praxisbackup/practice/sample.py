"""A generated, practice-shaped data set: the demo's sample practice and the benchmark's data.

Shape (scaled by ``size_mb``):

* about 55 % database-like files under ``CompuMED/M1/Orant/DB_M1/Database``: 8 KiB pages with a
  page header and compressible row text, like an Oracle data file;
* about 27 % small documents (1-200 KiB letters, findings, PDFs) in a document archive;
* about 18 % incompressible scans of 5-20 MiB;
* the rest of the M1 PRO folder layout from the vendor's list of essential folders.

Everything is derived from ``seed``, so two runs produce identical trees.
"""

from __future__ import annotations

import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

from praxisbackup.practice.profiles import VARIANT_U9, essential_items

PAGE = 8192
_WORDS = [
    "Patient",
    "Befund",
    "Diagnose",
    "Therapie",
    "Rezept",
    "Ueberweisung",
    "Labor",
    "Blutbild",
    "Blutdruck",
    "Termin",
    "Quartal",
    "Abrechnung",
    "Versichertenkarte",
    "Hausarzt",
    "Praxis",
    "Untersuchung",
    "Anamnese",
    "Medikation",
    "Ibuprofen",
    "Metformin",
    "Ramipril",
    "Simvastatin",
    "Kontrolle",
    "Impfung",
    "Influenza",
    "Tetanus",
    "Roentgen",
]


def _essential() -> tuple[list[str], list[str]]:
    """Folders and required files of the vendor's list for an M1 PRO (Uniface 9) server with
    ifap: one source of truth, the profile."""
    items = essential_items(VARIANT_U9, with_ifap=True)
    # The vendor's list spells the top folder two ways; on a case-sensitive disk it is one folder.
    paths = [
        ("CompuMED" + i.path[8:] if i.path.lower().startswith("compumed/") else i.path, i)
        for i in items
    ]
    dirs = [p for p, i in paths if i.kind == "dir" and i.required]
    files = [p for p, i in paths if i.kind == "file" and i.required]
    return dirs, files


@dataclass
class SampleStats:
    files: int = 0
    bytes: int = 0


def _text(rnd: random.Random, size: int) -> bytes:
    words = []
    total = 0
    while total < size:
        w = rnd.choice(_WORDS) if rnd.random() < 0.8 else str(rnd.randint(0, 99999))
        words.append(w)
        total += len(w) + 1
    return " ".join(words).encode()[:size]


class _PagePool:
    """Pre-made compressible page bodies; pages differ by header and a random row field."""

    def __init__(self, rnd: random.Random, count: int = 512) -> None:
        self.bodies = [_text(rnd, PAGE - 64) for _ in range(count)]

    def page(self, rnd: random.Random, number: int) -> bytes:
        header = struct.pack("<QQ", number, rnd.getrandbits(64)) + rnd.randbytes(48)
        return header + self.bodies[rnd.randrange(len(self.bodies))]


def _write(path: Path, data: bytes, stats: SampleStats, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    stats.files += 1
    stats.bytes += len(data)


def generate(root: Path, size_mb: int = 64, seed: int = 1) -> SampleStats:
    """Create the sample practice tree below ``root`` (which must not exist yet)."""
    rnd = random.Random(seed)
    stats = SampleStats()
    total = size_mb << 20
    base_time = 1_700_000_000.0
    dirs, files = _essential()
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        _write(root / f, _text(rnd, rnd.randint(2_000, 60_000)), stats, base_time)
    for name in ("m1.exe", "m1srv.exe", "uniface.dll", "ora_client.dll"):
        _write(
            root / "CompuMED/M1/Bin" / name,
            rnd.randbytes(rnd.randint(200_000, 900_000)),
            stats,
            base_time,
        )
    _write(root / "CompuMED/M1/U9/common/adm/usys.ini", b"[SETTINGS]\nDB=ORA11\n", stats, base_time)
    _write(root / "CompuMED/M1/Project/m1.asn", b"[PATHS]\n$DB=M1\n", stats, base_time)
    for i in range(8):
        _write(
            root / "CompuMED/M1/Clients" / f"arbeitsplatz-{i}.ini",
            _text(rnd, 3000),
            stats,
            base_time,
        )

    pool = _PagePool(rnd)
    db_budget = int(total * 0.55)
    db_files = max(2, min(6, db_budget // (64 << 20)))
    db_dir = root / "CompuMED/M1/Orant/DB_M1/Database"
    for i in range(db_files):
        pages = max(16, db_budget // db_files // PAGE)
        data = b"".join(pool.page(rnd, n) for n in range(pages))
        _write(db_dir / f"M1DATA{i:02d}.DBF", data, stats, base_time + 86_400)

    doc_budget = int(total * 0.27)
    archive = root / "Praxisarchiv"
    used = 0
    n = 0
    while used < doc_budget:
        size = min(int(rnd.paretovariate(1.2) * 4_000), 200_000) + 1_000
        if rnd.random() < 0.6:
            data = _text(rnd, size)
            name = f"Brief-{n:06d}.txt"
        else:
            data = b"%PDF-1.7\n" + rnd.randbytes(size)
            name = f"Befund-{n:06d}.pdf"
        _write(
            archive / f"{2015 + n % 11}" / f"Patient-{n % 997:04d}" / name,
            data,
            stats,
            base_time - n * 60,
        )
        used += size
        n += 1

    # At least one scan, whatever the size: every source of the demo must exist.
    scan_budget = max(total - stats.bytes, 256 << 10)
    scans = root / "Scans"
    i = 0
    while scan_budget > 0:
        size = min(scan_budget, rnd.randint(5 << 20, 20 << 20))
        _write(scans / f"Scan-{i:04d}.tif", rnd.randbytes(size), stats, base_time)
        scan_budget -= size
        i += 1
    return stats


def mutate(root: Path, seed: int = 2, fraction: float = 0.01) -> SampleStats:
    """A day of practice work: pages rewritten in place inside the database files, a few hundred
    documents added and changed. About ``fraction`` of the data changes."""
    rnd = random.Random(seed)
    stats = SampleStats()
    pool = _PagePool(rnd, 64)
    db_dir = root / "CompuMED/M1/Orant/DB_M1/Database"
    dbs = sorted(db_dir.glob("*.DBF"))
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    page_budget = int(total * fraction * 0.7) // PAGE
    for k in range(page_budget):
        db = dbs[k % len(dbs)]
        pages = db.stat().st_size // PAGE
        with open(db, "r+b") as fh:
            # Changes cluster like real database activity: a few hot regions per file.
            hot = rnd.choice([pages // 7, pages // 3, pages // 2, pages - 50])
            n = max(0, min(pages - 1, hot + rnd.randint(-40, 40)))
            fh.seek(n * PAGE)
            fh.write(pool.page(rnd, n))
        stats.bytes += PAGE
    archive = root / "Praxisarchiv"
    docs = sorted(archive.rglob("*.txt"))
    for i in range(300):
        data = _text(rnd, rnd.randint(1_000, 60_000))
        _write(archive / "2026" / f"Neu-{seed}-{i:04d}.txt", data, stats, 1_800_000_000 + i)
    for doc in rnd.sample(docs, min(100, len(docs))):
        with open(doc, "ab") as fh:
            fh.write(b"\nNachtrag: " + _text(rnd, 200))
        stats.files += 1
    return stats
