"""Large source files are read past the page cache, one block ahead of the chunker
(:mod:`praxisbackup.engine.sourceread`), with exactly the chunks a stream read gives; packs are
written past it (:func:`praxisbackup.platform.write_direct`), and a restore reads their ranges
past it (``LocalBackend.read_ranges``), byte for byte.

The chunk boundaries decide deduplication against every earlier snapshot: a reader that cut
differently would store every large file anew. So each case compares against
:meth:`Chunker.views` on the same file, at sizes around the block and the maximum chunk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import itertools
import mmap
import os
import random
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import reopen, restored_path
from fsimages import fat_image
from praxisbackup.cli.main import PraxisGroup
from praxisbackup.engine import pipeline, sourceread
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.browse import walk
from praxisbackup.engine.chunking import Chunker, ChunkerParams
from praxisbackup.engine.pack import DATA
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.errors import StorageError
from praxisbackup.platform import direct
from praxisbackup.storage.local import LocalBackend
from test_bad_files import flip_blob

#: Small chunks and blocks, so that a few hundred KiB cross many blocks and carries.
SMALL = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=3)


def make_file(path: Path, size: int, seed: int) -> bytes:
    """Random bytes with a run of zeros (where FastCDC cuts only at the maximum size)."""
    data = bytearray(random.Random(seed).randbytes(size))
    data[size // 3 : size // 3 + size // 4] = bytes(len(data[size // 3 : size // 3 + size // 4]))
    path.write_bytes(data)
    return bytes(data)


def evicted(path: Path) -> int:
    """The file opened, written to disk and out of the page cache (as after a cold start)."""
    fd = os.open(path, os.O_RDONLY)
    for _attempt in range(50):  # DONTNEED skips a page still locked or under writeback: again
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if not pages_cached(fd):
            break
    return fd


def pages_cached(fd: int) -> bool:
    """Whether any page of the file is in the page cache (``mincore`` on a mapping that is
    never touched: unlike a read with ``RWF_NOWAIT``, it starts no read-ahead)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert address not in (None, ctypes.c_void_p(-1).value)
    try:
        pages = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
        assert libc.mincore(address, size, pages) == 0
        return any(b & 1 for b in pages.raw)
    finally:
        libc.munmap(address, size)


def stream_chunks(chunker: Chunker, path: Path) -> list[bytes]:
    with path.open("rb", buffering=0) as stream:
        return [bytes(c) for c in chunker.views(stream)]


def direct_dir(tmp_path: Path) -> Path:
    """A folder on a file system that reads with O_DIRECT: the test's own, else one in the
    checkout (a disk in CI, where /tmp may be memory)."""
    for base in (tmp_path, Path(__file__).resolve().parent):
        probe = base / ".direct-probe"
        probe.write_bytes(b"x" * 4096)
        try:
            os.close(os.open(probe, os.O_RDONLY | os.O_DIRECT))
        except OSError:
            continue
        finally:
            probe.unlink()
        return base
    pytest.fail("no folder here reads with O_DIRECT (the test needs a disk-backed one)")


class RefusedAt:
    """A read or write call that fails with EINVAL at its ``at``-th call (counting only calls
    on descriptors switched to O_DIRECT, with ``direct_only``), as on a medium that accepted
    direct I/O and refuses it midway; ``calls`` counts them."""

    def __init__(self, real: Callable[..., int], at: int, direct_only: bool = False) -> None:
        self.real, self.at, self.direct_only = real, at, direct_only
        self.calls = 0
        self.refused = False

    def __call__(self, fd: int, *args: object) -> int:
        if not self.direct_only or fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            self.calls += 1  # (with direct_only, calls on descriptors switched to O_DIRECT)
            if self.calls == self.at:
                self.refused = True
                raise OSError(errno.EINVAL, "Invalid argument")
        return self.real(fd, *args)


SIZES = [0, 1, 4095, 4096, 16383, 16384, 16385, 65535, 65536, 65537, 100_003, 1_000_003]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh folder where O_DIRECT works (see :func:`direct_dir`), removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=direct_dir(tmp_path), prefix="direct-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def memory() -> Iterator[Path]:
    """A fresh folder on tmpfs, which refuses O_DIRECT; removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="praxisbackup-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def reader() -> Iterator[sourceread.SourceReader]:
    """A reader with small chunks and blocks (many blocks and carries per file)."""
    made = sourceread.SourceReader(Chunker(SMALL), block=16384)
    yield made
    made.close()


def read_cold(reader: sourceread.SourceReader, path: Path) -> list[bytes]:
    """The chunks of ``path``, read by ``reader`` after the file left the page cache."""
    fd = evicted(path)
    try:
        return [bytes(c) for c in reader.chunks(fd)]
    finally:
        os.close(fd)


def test_direct_reads_cut_exactly_as_a_stream_read(
    disk: Path, reader: sourceread.SourceReader
) -> None:
    assert sourceread.available()
    path = disk / "db.bin"
    for seed, size in enumerate(SIZES):
        data = make_file(path, size, seed)
        got = read_cold(reader, path)
        assert got == stream_chunks(Chunker(SMALL), path), size
        assert b"".join(got) == data
        # Read from the disk (past the cache), except an empty file: nothing to read.
        assert reader.cached is (size == 0), size


def test_a_block_of_one_page_carries_whole_chunks(disk: Path) -> None:
    """Blocks smaller than a chunk: most chunks span several blocks."""
    reader = sourceread.SourceReader(Chunker(SMALL), block=4096)
    path = disk / "long.bin"
    make_file(path, 300_001, 7)
    try:
        got = read_cold(reader, path)
    finally:
        reader.close()
    assert got == stream_chunks(Chunker(SMALL), path)
    assert max(len(c) for c in got) == SMALL.max_size  # the zero run: forced cuts
    assert not reader.cached


def test_a_cached_file_is_read_through_the_cache(
    disk: Path, reader: sourceread.SourceReader
) -> None:
    path = disk / "hot.bin"
    make_file(path, 200_000, 11)
    path.read_bytes()  # in the page cache, as a database the server has just written
    fd = os.open(path, os.O_RDONLY)
    try:
        got = [bytes(c) for c in reader.chunks(fd)]
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)
    assert got == stream_chunks(Chunker(SMALL), path)
    assert reader.cached


def test_a_file_system_without_direct_reads_is_read_through_the_cache(
    memory: Path, reader: sourceread.SourceReader
) -> None:
    """tmpfs refuses O_DIRECT: the same chunks, through the cache."""
    path = memory / "scan.bin"
    make_file(path, 500_000, 13)
    assert read_cold(reader, path) == stream_chunks(Chunker(SMALL), path)
    assert reader.cached


def test_a_direct_read_refused_midway_goes_on_through_the_cache(
    disk: Path, reader: sourceread.SourceReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that accepts O_DIRECT on open but refuses a read (EINVAL): the rest of
    the file is read through the cache, and nothing is lost or cut differently."""
    path = disk / "odd.bin"
    refusing = RefusedAt(os.preadv, 4, direct_only=True)
    monkeypatch.setattr(sourceread.os, "preadv", refusing)
    make_file(path, 400_000, 17)
    got = read_cold(reader, path)
    assert refusing.refused
    assert got == stream_chunks(Chunker(SMALL), path)
    assert reader.cached  # the cache was used for part of it: drop it afterwards


def test_a_reading_stopped_midway_waits_for_the_read_in_flight(
    disk: Path, reader: sourceread.SourceReader
) -> None:
    """Closing the chunks early (an error while sealing a chunk) must not leave a read running
    on a descriptor the caller closes next; the reader then reads the next file correctly."""
    first, second = disk / "a.bin", disk / "b.bin"
    make_file(first, 300_000, 19)
    make_file(second, 300_000, 23)
    fd = evicted(first)
    chunks = reader.chunks(fd)
    next(chunks)
    chunks.close()
    os.close(fd)
    assert read_cold(reader, second) == stream_chunks(Chunker(SMALL), second)


def packer_params(drop_cache: bool = True) -> pipeline.PackerParams:
    return pipeline.PackerParams(
        encryption_key=bytes(32),
        chunk_id_key=bytes(32),
        chunker=ChunkerParams(seed=5),
        compression_level=1,
        pack_size=16 << 20,
        drop_cache=drop_cache,
        known=b"",
    )


def first_page_cached(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_large_file_read_direct_is_read_direct_again_next_time(disk: Path) -> None:
    """Deciding on a direct read looks at the first page, which makes the kernel read a few
    pages ahead. With ``drop_source_cache`` they are dropped, so the file is still cold at the
    next run and read direct again (an outsider saw it alternate: direct, cached, direct)."""
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    path = disk / "cold.bin"
    make_file(path, pipeline.SMALL_FILE * 3, 29)
    os.close(evicted(path))
    for _run in range(3):
        read = packer.read_file(str(path))
        assert read.status == "ok" and read.size == path.stat().st_size
        assert packer._reader is not None and not packer._reader.cached
        assert not first_page_cached(path)  # nothing of it left in the cache
        os.close(evicted(path))  # (the probe above read ahead too)
    assert len(read.ids) == len(stream_chunks(Chunker(ChunkerParams(seed=5)), path))


def test_a_file_that_cannot_be_read_at_an_offset_is_streamed(
    tmp_path: Path, reader: sourceread.SourceReader
) -> None:
    """A stream (some FUSE files are): read on from where it is, as before - not skipped with
    "Illegal seek" (found by an outsider)."""
    path = tmp_path / "stream.bin"
    data = make_file(path, 300_000, 37)
    rfd, wfd = os.pipe()

    def write() -> None:
        try:
            with contextlib.suppress(BrokenPipeError):  # the reader gave up: the test fails
                os.write(wfd, data)
        finally:
            os.close(wfd)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        got = [bytes(c) for c in reader.chunks(rfd)]
    finally:
        os.close(rfd)
        writer.join()
    assert got == stream_chunks(Chunker(SMALL), path)
    assert reader.cached


def test_without_room_for_the_reader_large_files_are_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No memory or no thread for the reader (an address-space limit): the same chunks,
    streamed as before - not a failed worker with a traceback (found by an outsider)."""

    def no_thread(*args: object, **kwargs: object) -> sourceread.SourceReader:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(pipeline.sourceread, "SourceReader", no_thread)
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    path = tmp_path / "big.bin"
    make_file(path, pipeline.SMALL_FILE * 2 + 5, 41)
    read = packer.read_file(str(path))
    assert read.status == "ok" and read.size == path.stat().st_size
    assert len(read.ids) == len(stream_chunks(Chunker(ChunkerParams(seed=5)), path))
    assert packer._reader is None


def test_a_worker_failure_is_one_line_and_its_report_goes_to_the_crash_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker's traceback never reaches the user, the protocol or the e-mail: one line names
    the error, the crash log keeps the report."""
    trace = (
        "Traceback (most recent call last):\n"
        '  File "sourceread.py", line 82, in chunks\n'
        "RuntimeError: can't start new thread\n"
    )
    error = pipeline.WorkerError.failed("backup", trace)
    assert str(error) == "a backup worker process failed (RuntimeError: can't start new thread)"
    monkeypatch.setenv("PRAXISBACKUP_LOG_DIR", str(tmp_path / "logs"))
    with pytest.raises(SystemExit) as stopped:
        PraxisGroup._report(error, "en")
    assert stopped.value.code == 2
    shown = capsys.readouterr().err
    assert "Traceback" not in shown and shown.count("\n") == 1
    assert "a backup worker process failed (RuntimeError: can't start new thread)" in shown
    (log,) = (tmp_path / "logs").iterdir()
    assert str(log) in shown
    assert 'File "sourceread.py", line 82, in chunks' in log.read_text()


# -- packs are written past the cache (platform.write_direct through LocalBackend.stage) ------
def stage_and_read(folder: Path, parts: list[bytes]) -> tuple[bytes, bool]:
    """Stage ``parts`` as a pack; its bytes and whether its first page was left uncached."""
    backend = LocalBackend(str(folder / "repo"))
    backend.create()
    staged = backend.stage("data", "ab" * 32, parts)
    path = folder / "repo" / "data" / "ab" / staged
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
            uncached = False
        except BlockingIOError:
            uncached = True
        except OSError:  # a file system that cannot tell (tmpfs)
            uncached = False
    finally:
        os.close(fd)
    return path.read_bytes(), uncached


@pytest.mark.parametrize("sizes", [[1 << 20], [4 << 20], [(4 << 20) + 1], [12, 16 << 20, 12345]])
def test_a_pack_is_written_past_the_cache_byte_for_byte(disk: Path, sizes: list[int]) -> None:
    parts = [random.Random(n).randbytes(n) for n in sizes]
    written, uncached = stage_and_read(disk, parts)
    assert written == b"".join(parts)  # not padded, nothing lost
    assert uncached  # the disk has it; the page cache was not filled with it


def test_a_pack_on_a_file_system_without_direct_writes_is_written_normally(memory: Path) -> None:
    parts = [random.Random(3).randbytes((5 << 20) + 7)]
    written, _uncached = stage_and_read(memory, parts)
    assert written == parts[0]


def test_a_direct_write_refused_midway_is_written_again_normally(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [random.Random(5).randbytes((9 << 20) + 3)]
    refusing = RefusedAt(os.pwrite, 2)
    monkeypatch.setattr(direct.os, "pwrite", refusing)
    written, _uncached = stage_and_read(disk, parts)
    assert refusing.calls == 2
    assert written == parts[0]


def test_a_full_medium_during_a_direct_write_is_a_clear_error_and_leaves_nothing(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct.os, "pwrite", full)
    backend = LocalBackend(str(disk / "repo"))
    backend.create()
    with pytest.raises(StorageError) as raised:
        backend.stage("data", "cd" * 32, [bytes(3 << 20)])
    assert str(raised.value).endswith("the backup medium is full")
    assert list((disk / "repo" / "data" / "cd").iterdir()) == []


# -- a restore reads its packs' ranges past the cache (LocalBackend.read_ranges) --------------
def pack_file(folder: Path, size: int) -> tuple[LocalBackend, bytes]:
    backend = LocalBackend(str(folder / "repo"))
    backend.create()
    data = random.Random(size).randbytes(size)
    backend.write("data", "ef" * 32, [data])
    fd = evicted(folder / "repo" / "data" / "ef" / ("ef" * 32))
    os.close(fd)
    return backend, data


#: Unaligned, overlapping, adjacent, far apart (separate reads), and up to the unaligned end.
RANGES = [(5, 100), (4090, 20), (100_000, 3 << 20), (100_050, 10), (9_000_000, 1), (0, 1)]


def read_ranges(backend: LocalBackend, ranges: list[tuple[int, int]]) -> list[bytes]:
    return [bytes(p) for p in backend.read_ranges("data", "ef" * 32, ranges, direct.ReadBuffer())]


def test_a_restore_reads_ranges_past_the_cache_byte_for_byte(disk: Path) -> None:
    size = 9_000_001 + 4321
    backend, data = pack_file(disk, size)
    ranges = [*RANGES, (size - 4321, 4321)]
    assert read_ranges(backend, ranges) == [data[o : o + n] for o, n in ranges]
    assert not first_page_cached(disk / "repo" / "data" / "ef" / ("ef" * 32))
    # Beyond the end: the same clear error as a read through the cache gives.
    with pytest.raises(StorageError, match="shorter than expected"):
        read_ranges(backend, [(size - 10, 11)])


def test_ranges_on_a_medium_without_direct_reads_are_read_through_the_cache(memory: Path) -> None:
    backend, data = pack_file(memory, 9_100_000)
    assert read_ranges(backend, RANGES) == [data[o : o + n] for o, n in RANGES]


def test_ranges_refused_midway_are_read_again_through_the_cache(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = RefusedAt(direct.read_aligned, 2)
    monkeypatch.setattr(pipeline.platform, "read_aligned", refusing)
    backend, data = pack_file(disk, 9_100_000)
    assert read_ranges(backend, RANGES) == [data[o : o + n] for o, n in RANGES]
    assert refusing.calls == 2


def test_a_failing_medium_is_named_as_such_not_as_file_exists(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a medium failing mid-backup (an xfs shutdown), the pack's folder exists but cannot
    be looked at: the error must be the medium's, not "File exists" (found by an outsider)."""
    backend = LocalBackend(str(disk / "repo"))
    backend.create()
    (disk / "repo" / "data" / "ab").mkdir(exist_ok=True)
    real_open = os.open

    def failing_medium(path: str, *args: object, **kwargs: object) -> int:
        if ".tmp-" in str(path):
            raise OSError(errno.EIO, "Input/output error")
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # its stat fails too
    monkeypatch.setattr(os, "open", failing_medium)
    with pytest.raises(StorageError) as raised:
        backend.stage("data", "ab" * 32, [bytes(100)])
    assert "File exists" not in str(raised.value)
    assert str(raised.value).endswith("the backup medium reported an input/output error")


# -- a restore writes large files past the cache (platform.DirectFile, restorewindow) ---------
def pieces_of(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    edges = [0, *cuts, len(data)]
    return [(a, data[a:b]) for a, b in itertools.pairwise(edges)]


#: Cuts at and around block edges, two inside one block (a piece touching no whole block),
#: adjacent ones (a piece of one byte).
CUTS = [1, 4095, 4097, 5000, 5001, 8192, 300_000, 1_048_576, 1_048_577, 2_000_000]


def write_pieces(path: Path, size: int, pieces: list[tuple[int, bytes]]) -> None:
    """A new file of ``size`` bytes written from ``pieces`` (offset, bytes) by a DirectFile,
    as a restore does: edges kept, whole blocks direct, open edges at the end, cut back."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = direct.DirectFile.start(fd, size)
        assert writer is not None
        block = direct.ReadBuffer().view(direct.WRITE_BLOCK)
        for offset, piece in pieces:
            low, whole = writer.absorb(offset, piece, block)
            writer.write_aligned(low, whole, block)
        writer.finish(block)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [2_000_001 + 4096, 2_101_248, 3_000_000])
@pytest.mark.parametrize("order", ["forward", "backward", "shuffled"])
def test_pieces_in_any_order_are_written_past_the_cache_byte_for_byte(
    disk: Path, size: int, order: str
) -> None:
    data = random.Random(size).randbytes(size)
    pieces = pieces_of(data, CUTS)
    if order == "backward":
        pieces.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(pieces)
    write_pieces(disk / "restored", size, pieces)
    assert not first_page_cached(disk / "restored")
    assert (disk / "restored").read_bytes() == data


def test_a_piece_that_never_comes_leaves_zeros_and_the_rest_exact(disk: Path) -> None:
    data = random.Random(1).randbytes(3_000_000)
    lost = [(offset, piece) for offset, piece in pieces_of(data, CUTS) if offset != 5001]
    write_pieces(disk / "damaged", len(data), lost)  # 5001 .. 8192 never came
    assert (disk / "damaged").read_bytes() == data[:5001] + bytes(8192 - 5001) + data[8192:]


def big_files() -> dict[str, bytes]:
    """Large files: unaligned chunk edges, a sparse one, one of whole blocks."""
    return {
        "db.dbf": random.Random(2).randbytes(5_000_003),
        "sparse.img": b"x" * 100 + bytes(6 << 20) + b"end",
        "aligned.bin": random.Random(3).randbytes(3 << 20),
    }


def restore_big_files(
    repo: Repository,
    folder: Path,
    while_restoring: Callable[[], object] = lambda: None,
    files: dict[str, bytes] | None = None,
) -> tuple[Path, dict[str, bytes]]:
    """Back up and restore ``files`` (default: :func:`big_files`); where they landed and what
    they held. ``while_restoring`` is called between."""
    src = folder / "praxis"
    src.mkdir()
    files = files or big_files()
    for name, content in files.items():
        (src / name).write_bytes(content)
    snapshot = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    target = folder / "target"
    target.mkdir()
    while_restoring()
    result = Restorer(repo, snapshot, RestoreOptions(str(target), processes=0)).run()
    assert result.ok, result.errors
    return restored_path(target, src), files


def test_a_restore_writes_large_files_past_the_cache_byte_for_byte(
    disk: Path, repo: Repository
) -> None:
    restored, files = restore_big_files(repo, disk)
    assert not first_page_cached(restored / "db.dbf")  # (before it is read back below)
    for name, content in files.items():
        assert (restored / name).read_bytes() == content, name
    assert os.stat(restored / "sparse.img").st_blocks * 512 < 1 << 20  # the hole stayed one


#: One chunk of 1 MiB + 1: its padded last block is written first, its whole blocks next.
ONE_CHUNK = {"one-chunk.bin": random.Random(4).randbytes(1_048_577)}


@pytest.mark.parametrize(
    ("files", "at"),
    [(ONE_CHUNK, 1), (ONE_CHUNK, 2), *((None, n) for n in (1, 3, 6, 9))],
)
def test_a_direct_write_refused_midway_restores_the_file_through_the_cache(
    disk: Path,
    repo: Repository,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, bytes] | None,
    at: int,
) -> None:
    """Refused after the padded last block was written, a file kept its padding (an outsider:
    "size 1056768 instead of 1052673", and exit 0)."""
    refusing = RefusedAt(os.pwrite, at, direct_only=True)
    restored, files = restore_big_files(
        repo, disk, lambda: monkeypatch.setattr(direct.os, "pwrite", refusing), files
    )
    assert refusing.refused
    for name, content in files.items():
        assert (restored / name).read_bytes() == content, name


def test_a_restore_to_fat_through_fuse_is_exact(tmp_path: Path, repo: Repository) -> None:
    """fusefat accepts O_DIRECT but refuses a write beyond a hole with EPERM (an outsider: 8
    of 56 large files failed): large files go through the cache there; files ending in zeros
    get them written."""
    with fat_image(tmp_path, 64) as fat:
        fd = os.open(fat / "probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            assert direct.DirectFile.start(fd, 5 << 20) is None  # through the cache
        finally:
            os.close(fd)
        # Files that end in zeros: fusefat cannot extend a file by truncating (EPERM), so
        # their trailing hole is written (an outsider: they were not restored at all).
        ending_in_zeros = {"zeros.bin": bytes(5000), "tail-hole.img": b"x" * 100 + bytes(300_000)}
        restored, files = restore_big_files(repo, fat, files=big_files() | ending_in_zeros)
        for name, content in files.items():
            assert (restored / name).read_bytes() == content, name


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_damaged_chunk_keeps_every_readable_byte_and_no_padding(
    disk: Path, repo: Repository, where: str
) -> None:
    """What could be read is kept as NAME.praxisbackup-damaged, every byte where it belongs:
    also when the damaged chunk is the first one a thread writes (an outsider: nothing was
    kept), and without the padding of a direct write after the last byte that came."""
    src = disk / "praxis"
    src.mkdir()
    content = random.Random(9).randbytes(6_000_003)
    (src / "akte.dbf").write_bytes(content)
    snapshot = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    node = next(n for path, n in walk(repo, snapshot.tree_id) if path.endswith("/akte.dbf"))
    chunks = node.content
    pick = {"first": 0, "middle": len(chunks) // 2, "last": len(chunks) - 1}[where]
    lengths = [repo.index.lookup(DATA, c).raw_length for c in chunks]  # type: ignore[union-attr]
    start = sum(lengths[:pick])
    flip_blob(Path(repo.backend.location), repo, DATA, chunks[pick], 30)
    fresh = reopen(Path(repo.backend.location))
    target = disk / "target"
    target.mkdir()
    result = Restorer(fresh, snapshot, RestoreOptions(str(target), processes=0)).run()
    fresh.close()
    assert [e.reason.split(":")[0] for e in result.errors] == ["not restored, data damaged"]
    kept = restored_path(target, src) / "akte.dbf.praxisbackup-damaged"
    expected = content[:start] + bytes(lengths[pick]) + content[start + lengths[pick] :]
    if where == "last":
        expected = content[:start]  # nothing came after it
    assert kept.read_bytes() == expected


def test_a_restore_to_a_file_system_without_direct_writes_is_exact(
    memory: Path, repo: Repository
) -> None:
    restored, files = restore_big_files(repo, memory)
    for name, content in files.items():
        assert (restored / name).read_bytes() == content, name
