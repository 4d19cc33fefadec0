"""Writing blobs: compress, encrypt, pack, store, index - on both CPU cores.

A backup's file data arrives as whole packs from the worker processes
(:mod:`.pipeline`, :meth:`BlobWriter.add_pack`); trees, and the blobs prune copies, are handed
over one by one (:meth:`BlobWriter.add`): chunks the repository already has are dropped right
there, new ones are compressed and encrypted by a pool of threads (zstd, AES-GCM and BLAKE3
release the GIL) and appended to an open pack. Full packs go to a single writer thread that
stores them (fsync + rename) and then records them in the index. An index file is written every
:data:`INDEX_FLUSH_PACKS` packs and at the end, so an interrupted backup leaves indexed packs
that the next run reuses.

Order on the medium is always: pack durable -> index file naming it durable -> snapshot.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zstandard

from praxisbackup.engine.index import IndexFile, PackRecord
from praxisbackup.engine.pack import DATA, TREE, FinishedPack, PackBuilder, blob_ad, blob_payload
from praxisbackup.engine.repository import Repository

INDEX_FLUSH_PACKS = 32
#: ... or once the packs not yet in an index file hold this many blobs (tiny files: one pack
#: can hold a hundred thousand blobs, and their entries wait in memory until written).
INDEX_FLUSH_BLOBS = 50_000
#: Blobs are passed to the compression workers in batches of this many bytes or blobs.
BATCH_BYTES = 1 << 20
BATCH_COUNT = 64


@dataclass
class WriteStats:
    """What the writer stored (plaintext and on-medium bytes of new blobs)."""

    blobs_new: int = 0
    bytes_new_raw: int = 0
    bytes_new_stored: int = 0
    packs_written: int = 0


class BlobWriter:
    """Deduplicating, parallel blob writer. Use as a context manager or call :meth:`close`."""

    def __init__(self, repo: Repository, workers: int | None = None) -> None:
        self.repo = repo
        self.stats = WriteStats()
        self._workers = workers or max(2, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="blob")
        self._slots = threading.BoundedSemaphore(self._workers * 3)
        self._lock = threading.Lock()
        self._pending: tuple[set[bytes], set[bytes]] = (set(), set())
        self._builders = {DATA: PackBuilder(), TREE: PackBuilder()}
        self._queue: queue.Queue[FinishedPack | None] = queue.Queue(maxsize=1)
        self._unflushed: list[PackRecord] = []
        self._unflushed_blobs = 0
        self._batch: list[tuple[int, bytes, bytes]] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._local = threading.local()
        self._level = repo.config.compression_level
        self._pack_size = repo.config.pack_size
        self._store_thread = threading.Thread(
            target=self._store_loop, name="pack-store", daemon=True
        )
        self._store_thread.start()
        self._closed = False

    # -- public API ---------------------------------------------------------------------
    def has(self, blob_type: int, blob_id: bytes) -> bool:
        with self._lock:
            return (
                self.repo.index.has_good(blob_type, blob_id) or blob_id in self._pending[blob_type]
            )

    def add(self, blob_type: int, blob_id: bytes, data: bytes) -> bool:
        """Queue a blob for storage unless the repository has it. Returns True if new.

        Blobs are handed to the workers in batches of about BATCH_BYTES, so tens of thousands
        of small files do not cost a thread hand-off each.
        """
        self._raise_if_failed()
        with self._lock:
            if self.repo.index.has_good(blob_type, blob_id) or blob_id in self._pending[blob_type]:
                return False
            self._pending[blob_type].add(blob_id)
            self._batch.append((blob_type, blob_id, data))
            self._batch_bytes += len(data)
            if self._batch_bytes < BATCH_BYTES and len(self._batch) < BATCH_COUNT:
                return True
            batch = self._take_batch()
        self._submit(batch)
        return True

    def add_pack(self, pack: FinishedPack) -> None:
        """Store a pack a backup worker assembled (its blobs are new to the repository, or
        were new to the worker). Blocks while the pack before it is still being stored."""
        self._raise_if_failed()
        with self._lock:
            for e in pack.entries:
                self._pending[e.type].add(e.id)
            self.stats.blobs_new += len(pack.entries)
            self.stats.bytes_new_raw += sum(e.raw_length for e in pack.entries)
            self.stats.bytes_new_stored += sum(e.length for e in pack.entries)
        self._queue.put(pack)

    def _take_batch(self) -> list[tuple[int, bytes, bytes]]:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _submit(self, batch: list[tuple[int, bytes, bytes]]) -> None:
        if not batch:
            return
        self._slots.acquire()
        future = self._pool.submit(self._seal_batch, batch)
        future.add_done_callback(self._done)

    def _seal_batch(self, batch: list[tuple[int, bytes, bytes]]) -> None:
        for blob_type, blob_id, data in batch:
            self._seal(blob_type, blob_id, data)

    def flush(self) -> None:
        """Store everything queued so far and write an index file for it."""
        self._raise_if_failed()
        with self._lock:
            batch = self._take_batch()
        self._submit(batch)
        for _ in range(self._workers * 3):
            self._slots.acquire()
        try:
            with self._lock:
                finished = [b.finish(self.repo.cipher) for b in self._builders.values() if len(b)]
                self._builders = {DATA: PackBuilder(), TREE: PackBuilder()}
            for pack in finished:
                self._queue.put(pack)
            self._queue.join()
        finally:
            for _ in range(self._workers * 3):
                self._slots.release()
        self._raise_if_failed()
        self._flush_index()

    def close(self) -> None:
        """Stop the threads (after :meth:`flush`, or to abandon the work after an error)."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        self._queue.put(None)
        self._store_thread.join()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _done(self, future: Future[None]) -> None:
        self._slots.release()
        exc = future.exception()
        if exc is not None and self._error is None:
            self._error = exc

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = getattr(self._local, "comp", None)
        if comp is None:
            comp = zstandard.ZstdCompressor(level=self._level, write_content_size=False)
            self._local.comp = comp
            self._local.probe = zstandard.ZstdCompressor(level=1, write_content_size=False)
        return comp

    def _seal(self, blob_type: int, blob_id: bytes, data: bytes) -> None:
        payload, flags = blob_payload(data, self._compressor(), self._local.probe)
        sealed = self.repo.cipher.seal(payload, blob_ad(blob_type, blob_id))
        full: FinishedPack | None = None
        with self._lock:
            builder = self._builders[blob_type]
            builder.add(blob_type, flags, blob_id, sealed, len(data))
            self.stats.blobs_new += 1
            self.stats.bytes_new_raw += len(data)
            self.stats.bytes_new_stored += len(sealed)
            if builder.size >= self._pack_size:
                self._builders[blob_type] = PackBuilder()
                full = builder.finish(self.repo.cipher)
        if full is not None:
            self._queue.put(full)

    def _store_loop(self) -> None:
        while True:
            pack = self._queue.get()
            try:
                if pack is None:
                    return
                if self._error is None:
                    self._store(pack)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                if self._error is None:
                    self._error = exc
            finally:
                self._queue.task_done()

    def _store(self, pack: FinishedPack) -> None:
        self.repo.check_lock()
        if pack.staged is not None:
            self.repo.backend.commit("data", pack.id, pack.staged)
        else:
            self.repo.backend.write("data", pack.id, pack.parts)
        record = PackRecord(pack.id, pack.size, pack.entries)
        with self._lock:
            self.repo.index.add_pack(pack.id, pack.size, pack.entries)
            for e in pack.entries:
                self._pending[e.type].discard(e.id)
            self._unflushed.append(record)
            self._unflushed_blobs += len(record.entries)
            self.stats.packs_written += 1
            flush_now = (
                len(self._unflushed) >= INDEX_FLUSH_PACKS
                or self._unflushed_blobs >= INDEX_FLUSH_BLOBS
            )
        if flush_now:
            self._flush_index()

    def _flush_index(self) -> None:
        with self._lock:
            records, self._unflushed = self._unflushed, []
            self._unflushed_blobs = 0
        if records:
            name = self.repo.write_index(IndexFile(packs=records))
            with self._lock:
                self.repo.index_files.append(name)
