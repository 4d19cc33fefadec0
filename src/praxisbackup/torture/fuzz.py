"""Mutation fuzzing of everything praxisbackup parses from a medium or a config file.

Valid samples come from a real repository; each round mutates one (bit flips, byte changes,
truncation, duplication, random splices) and feeds it to its parser. A clean, named error
(any PraxisError) or a "wrong key" result is expected; any other exception is a finding."""

from __future__ import annotations

import json
import random
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from praxisbackup.engine import crypto
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.index import decode_index
from praxisbackup.engine.objects import ObjectKind, open_object
from praxisbackup.engine.pack import parse_pack
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.engine.tree import decode_tree
from praxisbackup.errors import PraxisError
from praxisbackup.media.label import read_label
from praxisbackup.model.config import parse_config
from praxisbackup.model.example import example_toml
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.storage import LocalBackend


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        choice = rnd.randrange(6)
        if not b:
            b = bytearray(rnd.randbytes(rnd.randint(0, 64)))
            continue
        pos = rnd.randrange(len(b))
        if choice == 0:
            b[pos] ^= 1 << rnd.randrange(8)
        elif choice == 1:
            b[pos] = rnd.randrange(256)
        elif choice == 2:
            del b[pos:]
        elif choice == 3:
            b[pos:pos] = b[pos : pos + rnd.randint(1, 64)]
        elif choice == 4:
            b[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        else:
            del b[pos : pos + rnd.randint(1, 32)]
    return bytes(b)


def samples(work: Path) -> tuple[Repository, dict[str, tuple[bytes, Callable[[bytes], object]]]]:
    src = work / "fuzz-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "a.txt").write_text("Befund " * 100)
    (src / "b.bin").write_bytes(random.Random(1).randbytes(50_000))
    repo = Repository.init(LocalBackend(str(work / "fuzz-repo")), "pw")
    repo.load_index()
    snap = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    cipher = repo.cipher
    index_name = next(iter(repo.list_names("index")))
    index_raw = repo.backend.read("index", index_name)
    index_plain = open_object(cipher, index_raw, ObjectKind.INDEX, "index")
    pack_name = next(iter(repo.list_names("data")))
    pack_raw = repo.backend.read("data", pack_name)
    key_name = next(iter(repo.list_names("keys")))
    key_raw = repo.backend.read("keys", key_name)
    tree_raw = repo.read_blob(1, snap.tree_id)
    snap_json = snap.to_json()
    label = json.dumps(
        {
            "format": 1,
            "medium_id": "ab",
            "label": "Mo",
            "created": "2026-01-01",
            "repository_id": repo.config.id,
            "repository_folder": "praxisbackup",
        }
    ).encode()
    protocol = RunProtocol("r", "p", "h", "2026-01-01T00:00:00", "1").to_json().encode()
    label_dir = Path(tempfile.mkdtemp(prefix="fuzz-label-", dir=work))

    def label_parser(data: bytes) -> object:
        (label_dir / "praxisbackup-medium.json").write_bytes(data)
        return read_label(str(label_dir))

    targets: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
        "key slot": (key_raw, lambda d: crypto.open_key_slot(d, "pw", "key")),
        "index object": (index_raw, lambda d: open_object(cipher, d, ObjectKind.INDEX, "index")),
        "index payload": (index_plain, lambda d: decode_index(d, "index")),
        "pack": (pack_raw, lambda d: parse_pack(cipher, d, "pack")),
        "tree": (tree_raw, lambda d: decode_tree(d, "tree")),
        "snapshot": (snap_json, lambda d: Snapshot.from_json(d, "x")),
        "medium label": (label, label_parser),
        "run protocol / register": (protocol, RunProtocol.from_json),
        "config": (example_toml().encode(), lambda d: parse_config(d.decode("utf-8", "replace"))),
    }
    return repo, targets


def fuzz_campaign(work: Path, seconds: float, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    _repo, targets = samples(work)
    tried: dict[str, int] = dict.fromkeys(targets, 0)
    unhandled: list[str] = []
    deadline = time.monotonic() + seconds
    names = list(targets)
    while time.monotonic() < deadline:
        name = rnd.choice(names)
        sample, parser = targets[name]
        data = _mutate(sample, rnd)
        tried[name] += 1
        try:
            parser(data)
        except PraxisError:
            continue
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer is looking for
            if len(unhandled) < 20:
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                unhandled.append(f"{name}: {tb} (input {data[:60]!r}...)")
            else:
                unhandled.append(name)
    return {
        "inputs": sum(tried.values()),
        "per_parser": tried,
        "unhandled": len(unhandled),
        "examples": unhandled[:20],
    }
