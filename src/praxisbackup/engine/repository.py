"""Opening a repository, reading blobs, and the objects that live beside the packs.

A :class:`Repository` is the engine's handle on one medium: it holds the master key, the
parsed config and the in-memory index, and it is the only thing that reads or writes objects.
Everything above it (archiver, restorer, checker, prune) works in terms of blobs, trees and
snapshots.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from praxisbackup import platform
from praxisbackup.engine import crypto
from praxisbackup.engine.chunking import ChunkerParams
from praxisbackup.engine.crypto import Cipher, KdfParams, KeySlotInfo, MasterKey
from praxisbackup.engine.index import Index, IndexFile, PackRecord, decode_index, encode_index
from praxisbackup.engine.objects import ObjectKind, decompressor, open_object, seal_object
from praxisbackup.engine.pack import (
    TRAILER_SIZE,
    PackEntry,
    header_span,
    open_blob,
    parse_header,
)
from praxisbackup.errors import (
    IntegrityError,
    PraxisError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    StorageError,
    UsageError,
    WrongPasswordError,
)
from praxisbackup.storage import Backend

REPO_VERSION = 1
#: Names of the damage records check writes into ``meta/``.
DAMAGE_PREFIX = "damage-"
DEFAULT_PACK_SIZE = 16 << 20
DEFAULT_COMPRESSION_LEVEL = 1


@dataclass(frozen=True)
class RepoConfig:
    """Repository-wide settings, stored encrypted in the ``config`` object."""

    id: str
    created: str
    chunker: ChunkerParams
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    pack_size: int = DEFAULT_PACK_SIZE
    version: int = REPO_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RepoConfig:
        try:
            doc = json.loads(raw)
            if doc["version"] != REPO_VERSION:
                raise IntegrityError(
                    f"repository format version {doc['version']} is not supported by this "
                    f"praxisbackup (supports {REPO_VERSION})"
                )
            return cls(
                id=str(doc["id"]),
                created=str(doc["created"]),
                chunker=ChunkerParams(**doc["chunker"]),
                compression_level=int(doc["compression_level"]),
                pack_size=int(doc["pack_size"]),
            )
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise IntegrityError(f"the repository config is malformed: {exc}") from None


@dataclass
class IndexLoadReport:
    """What loading the index saw; check reports the problems, other commands refuse them."""

    files: int = 0
    superseded: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)


def _candidates(passphrase: str) -> list[str]:
    """What a passphrase is tried as: itself, and a recovery key typed loosely, normalized."""
    normalized = crypto.normalize_recovery_key(passphrase)
    return [passphrase] if normalized == passphrase else [passphrase, normalized]


def _key_slots(
    backend: Backend, candidates: int
) -> tuple[list[str], list[tuple[int, str, crypto.ParsedKeySlot]], list[str]]:
    """(all slot names, usable slots in the order they are tried, damaged ones). Every slot's
    structure and cost is checked first (cheap), and the cheapest is tried first, until the
    budget is spent: crafted slots cannot make opening take minutes or swap."""
    slots = sorted(info.name for info in backend.list("keys"))
    damaged: list[str] = []
    usable: list[tuple[int, str, crypto.ParsedKeySlot]] = []
    for slot_id in slots:
        raw = backend.read("keys", slot_id)
        try:
            if crypto.storage_id(raw) != slot_id:
                raise IntegrityError(f"key slot {slot_id[:8]} does not match its name")
            parsed = crypto.parse_key_slot(raw, f"key slot {slot_id[:8]}")
        except IntegrityError:
            damaged.append(slot_id)
            continue
        usable.append((parsed.cost * candidates, slot_id, parsed))
    usable.sort(key=lambda item: (item[0], item[1]))
    return slots, usable, damaged


def _write_key_slot(
    backend: Backend, master: MasterKey, passphrase: str, label: str, kdf: KdfParams | None
) -> str:
    """Store a new key slot opening ``master`` with ``passphrase``; returns its id."""
    if not passphrase:
        raise WrongPasswordError("an empty passphrase is not allowed")
    slot = crypto.make_key_slot(
        master,
        passphrase,
        label,
        platform.hostname(),
        platform.username(),
        kdf or KdfParams.from_env(),
    )
    slot_id = crypto.storage_id(slot)
    backend.write("keys", slot_id, slot)
    return slot_id


class Repository:
    """An opened repository."""

    def __init__(
        self,
        backend: Backend,
        key: MasterKey,
        config: RepoConfig,
        key_slot: str,
        key_info: KeySlotInfo,
    ) -> None:
        self.backend = backend
        self.key = key
        self.cipher: Cipher = key.cipher()
        self.config = config
        self.key_slot = key_slot
        self.key_info = key_info
        self.index = Index()
        self.index_files: list[str] = []
        #: Snapshot files that could not be read (name -> why), filled by list_snapshots.
        self.unreadable_snapshots: dict[str, str] = {}
        #: Files in data/ that are no usable pack (set by adopt_unindexed_packs).
        self.junk_packs: list[str] = []
        #: Locks this process holds (engine.lock), and why one was lost (refresh failed).
        self.held_locks: list[object] = []
        self.lock_lost: PraxisError | None = None

    def confirm_locks(self) -> None:
        """Every lock this process holds must still be on the medium (RepositoryLock.confirm);
        raises the lost lock's error otherwise."""
        for held in self.held_locks:
            confirm = getattr(held, "confirm", None)
            if confirm is not None:
                confirm()
        self.check_lock()

    def check_lock(self) -> None:
        """Stop work once a lock of this process could not be refreshed: another process may
        already have taken it for stale (a prune could delete what this one reads)."""
        if self.lock_lost is not None:
            raise self.lock_lost

    # -- creation and opening --------------------------------------------------------------
    @classmethod
    def init(
        cls,
        backend: Backend,
        passphrase: str,
        *,
        kdf: KdfParams | None = None,
        label: str = "initial key",
        chunker: ChunkerParams | None = None,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        pack_size: int = DEFAULT_PACK_SIZE,
    ) -> Repository:
        """Create a new repository with one key slot."""
        if backend.is_repository():
            raise RepositoryExistsError(f"{backend.location} already holds a repository")
        if not passphrase:
            raise WrongPasswordError("an empty passphrase is not allowed")
        base = chunker or ChunkerParams()
        params = ChunkerParams(
            base.min_size, base.avg_size, base.max_size, secrets.randbits(63) | 1
        )
        config = RepoConfig(
            id=secrets.token_hex(16),
            created=datetime.now(UTC).isoformat(),
            chunker=params,
            compression_level=compression_level,
            pack_size=pack_size,
        )
        master = MasterKey.generate()
        backend.create()
        _write_key_slot(backend, master, passphrase, label, kdf)
        # The config is written last: its presence is what makes the folder a repository.
        backend.write(
            "config", "config", seal_object(master.cipher(), ObjectKind.CONFIG, config.to_json())
        )
        opened = cls.open(backend, passphrase)
        return opened

    @classmethod
    def open(cls, backend: Backend, passphrase: str) -> Repository:
        """Open with a passphrase (or recovery key); raises WrongPasswordError if none fits."""
        if not backend.is_repository():
            raise RepositoryNotFoundError(
                f"there is no praxisbackup repository at {backend.location}"
            )
        candidates = _candidates(passphrase)
        slots, usable, damaged = _key_slots(backend, len(candidates))
        if not slots:
            raise IntegrityError(f"the repository at {backend.location} has no key slots")
        spent = 0
        untried = 0
        for cost, slot_id, parsed in usable:
            if spent + cost > crypto.MAX_OPEN_COST and spent:
                untried += 1
                continue
            spent += cost
            for candidate in candidates:
                try:
                    opened = crypto.open_key_slot(parsed, candidate, f"key slot {slot_id[:8]}")
                except IntegrityError:
                    damaged.append(slot_id)
                    break
                if opened is not None:
                    master, info = opened
                    raw_config = backend.read("config", "config")
                    config = RepoConfig.from_json(
                        open_object(
                            master.cipher(), raw_config, ObjectKind.CONFIG, "the repository config"
                        )
                    )
                    return cls(backend, master, config, slot_id, info)
        hint = (
            f" ({len(damaged)} key slot(s) are damaged or too expensive to try)" if damaged else ""
        )
        if untried:
            hint += f" ({untried} key slot(s) not tried: the time for trying was used up)"
        raise WrongPasswordError(
            f"wrong passphrase: it opens none of the {len(slots)} key slot(s) of the "
            f"repository at {backend.location}{hint}",
            code="error.wrong_passphrase",
            location=backend.location,
        )

    @staticmethod
    def derive_ahead(backend: Backend, passphrase: str) -> None:
        """Derive, on the calling thread, the key that :meth:`open` with ``passphrase`` tries
        first (see :func:`crypto.derive_ahead`); nothing if there is no usable key slot."""
        if backend.is_repository():
            _slots, usable, _damaged = _key_slots(backend, len(_candidates(passphrase)))
            if usable:
                crypto.derive_ahead(passphrase, usable[0][2])

    # -- keys ---------------------------------------------------------------------------
    def add_key(self, passphrase: str, label: str, kdf: KdfParams | None = None) -> str:
        return _write_key_slot(self.backend, self.key, passphrase, label, kdf)

    def list_keys(self) -> list[str]:
        return sorted(info.name for info in self.backend.list("keys"))

    def remove_key(self, slot_id: str) -> None:
        """Remove another key slot; never the last one, never the one that opened this
        repository (removing it would lock out whoever is working with it right now)."""
        slots = self.list_keys()
        if slot_id not in slots:
            raise IntegrityError(f"there is no key slot {slot_id}")
        if slot_id == self.key_slot:
            raise UsageError(
                "refusing to remove the key slot that opened the repository; "
                "open it with another key"
            )
        self._delete_key(slot_id, slots)

    def _delete_key(self, slot_id: str, slots: list[str]) -> None:
        if len(slots) == 1:
            raise IntegrityError(
                "refusing to remove the last key slot: the repository would be lost"
            )
        self.backend.delete("keys", slot_id)

    def change_passphrase(self, new_passphrase: str) -> str:
        """Replace the key slot in use by one for ``new_passphrase`` (same label); the new
        slot is proven to open the repository before the old one is removed."""
        new_slot = self.add_key(new_passphrase, self.key_info.label)
        Repository.open(self.backend, new_passphrase)
        self._delete_key(self.key_slot, self.list_keys())
        self.key_slot = new_slot
        return new_slot

    # -- index ----------------------------------------------------------------------------
    def read_index_file(self, name: str) -> IndexFile:
        raw = self.backend.read("index", name)
        what = f"index file {name[:12]}"
        if crypto.storage_id(raw) != name:
            raise IntegrityError(f"{what} does not match its name (damaged or replaced)")
        return decode_index(open_object(self.cipher, raw, ObjectKind.INDEX, what), what)

    def load_index(self, tolerate_damage: bool = False) -> IndexLoadReport:
        """Read every index file. Damage raises unless ``tolerate_damage`` (check, repair)."""
        report = IndexLoadReport()
        names = sorted(info.name for info in self.backend.list("index"))
        # One pass, each file's packs indexed as it is read (never every file's entries in
        # memory at once: a million blobs would double the index's size while loading).
        loaded: list[str] = []
        superseded: set[str] = set()
        self.index = Index()
        for name in names:
            try:
                doc = self.read_index_file(name)
            except IntegrityError as exc:
                if not tolerate_damage:
                    raise IntegrityError(
                        f"{exc}; run 'praxisbackup repair' to rebuild the index"
                    ) from None
                report.damaged[name] = str(exc)
                continue
            loaded.append(name)
            superseded.update(doc.supersedes)
            for pack in doc.packs:
                self.index.add_pack(pack.pack_id, pack.size, pack.entries)
        if superseded.intersection(loaded):
            # Files a later one supersedes are still there (a prune or repair was interrupted
            # before deleting them; rare): index again without them.
            self.index = Index()
            for name in loaded:
                if name not in superseded:
                    for pack in self.read_index_file(name).packs:
                        self.index.add_pack(pack.pack_id, pack.size, pack.entries)
        self.index_files = [name for name in loaded if name not in superseded]
        report.superseded = [name for name in loaded if name in superseded]
        report.files = len(self.index_files)
        self.load_damage_records()
        return report

    # -- damage found by check ------------------------------------------------------------
    def damage_record_names(self) -> list[str]:
        return sorted(n for n in self.list_names("meta") if n.startswith(DAMAGE_PREFIX))

    def load_damage_records(self) -> int:
        """Mark the blob copies that check found damaged (``meta/damage-*``), so reads try
        other copies first and the next backup stores those blobs again. Returns how many."""
        marked = 0
        for name in self.damage_record_names():
            try:
                doc = json.loads(self.read_meta(name))
                copies = [(str(p), int(t), bytes.fromhex(b)) for p, t, b in doc["copies"]]
            except (IntegrityError, StorageError, ValueError, KeyError, TypeError):
                continue  # an unreadable record only loses the hint; check finds it again
            for pack_id, blob_type, blob_id in copies:
                if blob_type in (0, 1) and len(blob_id) == 32:
                    self.index.mark_bad(pack_id, blob_type, blob_id)
                    marked += 1
        return marked

    def record_damage(self, copies: list[tuple[str, int, bytes]], found_by: str) -> str | None:
        """Write a damage record naming blob copies that failed verification (pack id, type,
        blob id). Returns its name, or None if there was nothing to record."""
        if not copies:
            return None
        doc = {
            "version": 1,
            "time": datetime.now(UTC).isoformat(),
            "found_by": found_by,
            "copies": [[p, t, b.hex()] for p, t, b in sorted(set(copies))],
        }
        name = DAMAGE_PREFIX + secrets.token_hex(8)
        self.write_meta(name, json.dumps(doc).encode())
        return name

    def write_index(self, doc: IndexFile) -> str:
        self.confirm_locks()  # lock removed meanwhile? a prune may have deleted its packs
        raw = seal_object(self.cipher, ObjectKind.INDEX, encode_index(doc))
        name = crypto.storage_id(raw)
        self.backend.write("index", name, raw)
        return name

    def read_pack_entries(self, pack_id: str, size: int | None = None) -> list[PackEntry]:
        """Read and parse a pack's header from the medium (only its tail is read)."""
        what = f"pack {pack_id[:12]}"
        if size is None:
            size = self.backend.size("data", pack_id)
        if size < TRAILER_SIZE:
            raise IntegrityError(f"{what} is too short to be a pack")
        trailer = self.backend.read_range("data", pack_id, size - TRAILER_SIZE, TRAILER_SIZE)
        offset, length = header_span(size, trailer, what)
        sealed = self.backend.read_range("data", pack_id, offset, length)
        return parse_header(self.cipher, sealed, offset, what)

    def adopt_unindexed_packs(self) -> int:
        """Index packs that exist on the medium but are in no index (left by an interrupted
        backup), so their data is reused instead of written again. Returns how many.

        A leftover is adopted only if its content matches its name and its header opens; any
        other file in ``data/`` (junk, a pack copied under another name, a damaged leftover)
        is listed in ``junk_packs`` - prune removes those, check reports them."""
        records = []
        self.junk_packs = []
        for info in self.backend.list("data"):
            if self.index.has_pack(info.name):
                continue
            try:
                if crypto.storage_id(self.backend.read("data", info.name)) != info.name:
                    raise IntegrityError(f"pack {info.name[:12]} does not match its name")
                entries = self.read_pack_entries(info.name, info.size)
            except (IntegrityError, StorageError):
                self.junk_packs.append(info.name)
                continue
            records.append(PackRecord(info.name, info.size, entries))
        if records:
            # Listed in index_files like every other index file, so a prune in the same
            # process supersedes it (otherwise it would keep naming packs prune deletes).
            self.index_files.append(self.write_index(IndexFile(packs=records)))
            for rec in records:
                self.index.add_pack(rec.pack_id, rec.size, rec.entries)
        return len(records)

    # -- blobs ---------------------------------------------------------------------------
    def decode_blob(
        self,
        blob_type: int,
        blob_id: bytes,
        sealed: bytes | memoryview,
        raw_length: int,
        compressed: bool,
        what: str,
    ) -> bytes:
        """Decrypt, decompress and verify a blob read from a pack."""
        return open_blob(
            self.cipher,
            self.key,
            decompressor(),
            blob_type,
            blob_id,
            sealed,
            raw_length,
            compressed,
            what,
        )

    def read_blob(self, blob_type: int, blob_id: bytes) -> bytes:
        """Read, decrypt and verify a blob. A blob stored in several packs is read from the
        next copy when one fails (the failed copy is then avoided by this process)."""
        self.check_lock()
        kind = "tree" if blob_type == 1 else "data"
        locations = self.index.locations(blob_type, blob_id)
        if not locations:
            raise IntegrityError(f"{kind} blob {blob_id.hex()[:12]} is not in the index (missing)")
        first_error: PraxisError | None = None
        for loc in locations:
            try:
                sealed = self.backend.read_range("data", loc.pack_id, loc.offset, loc.length)
                return self.decode_blob(
                    blob_type,
                    blob_id,
                    sealed,
                    loc.raw_length,
                    loc.compressed,
                    f"{kind} blob {blob_id.hex()[:12]} in pack {loc.pack_id[:12]}",
                )
            except (IntegrityError, StorageError) as exc:
                self.index.mark_bad(loc.pack_id, blob_type, blob_id)
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    # -- snapshots and other objects ---------------------------------------------------
    def write_object(self, kind: str, object_kind: ObjectKind, payload: bytes) -> str:
        if kind != "locks":
            self.check_lock()
        raw = seal_object(self.cipher, object_kind, payload)
        name = crypto.storage_id(raw)
        self.backend.write(kind, name, raw)
        return name

    def read_object(self, kind: str, name: str, object_kind: ObjectKind) -> bytes:
        raw = self.backend.read(kind, name)
        what = f"{object_kind.name.lower()} {name[:12]}"
        if crypto.storage_id(raw) != name:
            raise IntegrityError(f"{what} does not match its name (damaged or replaced)")
        return open_object(self.cipher, raw, object_kind, what)

    def write_meta(self, name: str, payload: bytes) -> None:
        """Store a named encrypted document (replaces one of the same name atomically)."""
        self.check_lock()
        self.backend.write("meta", name, seal_object(self.cipher, ObjectKind.META, payload))

    def read_meta(self, name: str) -> bytes:
        raw = self.backend.read("meta", name)
        return open_object(self.cipher, raw, ObjectKind.META, f"document {name}")

    def list_names(self, kind: str) -> Iterator[str]:
        for info in self.backend.list(kind):
            yield info.name

    def close(self) -> None:
        self.backend.close()
