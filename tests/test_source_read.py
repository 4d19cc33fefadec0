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
import errno
import fcntl
import os
import random
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from praxisbackup.cli.main import PraxisGroup
from praxisbackup.engine import pipeline, sourceread
from praxisbackup.engine.chunking import Chunker, ChunkerParams
from praxisbackup.errors import StorageError
from praxisbackup.platform import direct
from praxisbackup.storage.local import LocalBackend

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
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return fd


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


SIZES = [0, 1, 4095, 4096, 16383, 16384, 16385, 65535, 65536, 65537, 100_003, 1_000_003]


def test_direct_reads_cut_exactly_as_a_stream_read(tmp_path: Path) -> None:
    assert sourceread.available()
    folder = direct_dir(tmp_path)
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
    path = folder / "db.bin"
    try:
        for seed, size in enumerate(SIZES):
            data = make_file(path, size, seed)
            fd = evicted(path)
            try:
                got = [bytes(c) for c in reader.chunks(fd)]
            finally:
                os.close(fd)
            assert got == stream_chunks(chunker, path), size
            assert b"".join(got) == data
            # Read from the disk (past the cache), except an empty file: nothing to read.
            assert reader.cached is (size == 0), size
    finally:
        reader.close()
        path.unlink(missing_ok=True)


def test_a_block_of_one_page_carries_whole_chunks(tmp_path: Path) -> None:
    """Blocks smaller than a chunk: most chunks span several blocks."""
    folder = direct_dir(tmp_path)
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=4096)
    path = folder / "long.bin"
    try:
        make_file(path, 300_001, 7)
        fd = evicted(path)
        try:
            got = [bytes(c) for c in reader.chunks(fd)]
        finally:
            os.close(fd)
        assert got == stream_chunks(chunker, path)
        assert max(len(c) for c in got) == SMALL.max_size  # the zero run: forced cuts
        assert not reader.cached
    finally:
        reader.close()
        path.unlink(missing_ok=True)


def test_a_cached_file_is_read_through_the_cache(tmp_path: Path) -> None:
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
    path = direct_dir(tmp_path) / "hot.bin"
    try:
        make_file(path, 200_000, 11)
        path.read_bytes()  # in the page cache, as a database the server has just written
        fd = os.open(path, os.O_RDONLY)
        try:
            got = [bytes(c) for c in reader.chunks(fd)]
            assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        finally:
            os.close(fd)
        assert got == stream_chunks(chunker, path)
        assert reader.cached
    finally:
        reader.close()
        path.unlink(missing_ok=True)


def test_a_file_system_without_direct_reads_is_read_through_the_cache() -> None:
    """tmpfs refuses O_DIRECT: the same chunks, through the cache."""
    shm = Path("/dev/shm")
    assert shm.is_dir()
    path = shm / f"praxisbackup-test-{os.getpid()}.bin"
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
    try:
        make_file(path, 500_000, 13)
        fd = evicted(path)
        try:
            got = [bytes(c) for c in reader.chunks(fd)]
        finally:
            os.close(fd)
        assert got == stream_chunks(chunker, path)
        assert reader.cached
    finally:
        reader.close()
        path.unlink(missing_ok=True)


def test_a_direct_read_refused_midway_goes_on_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that accepts O_DIRECT on open but refuses a read (EINVAL): the rest of
    the file is read through the cache, and nothing is lost or cut differently."""
    folder = direct_dir(tmp_path)
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
    path = folder / "odd.bin"
    real_preadv: Callable[..., int] = os.preadv
    calls = {"n": 0}

    def refusing(fd: int, buffers: list[memoryview], offset: int, *flags: int) -> int:
        calls["n"] += 1
        if calls["n"] == 4 and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(22, "Invalid argument")
        return real_preadv(fd, buffers, offset, *flags)

    monkeypatch.setattr(sourceread.os, "preadv", refusing)
    try:
        make_file(path, 400_000, 17)
        fd = evicted(path)
        try:
            got = [bytes(c) for c in reader.chunks(fd)]
        finally:
            os.close(fd)
        assert calls["n"] > 4
        assert got == stream_chunks(chunker, path)
        assert reader.cached  # the cache was used for part of it: drop it afterwards
    finally:
        reader.close()
        path.unlink(missing_ok=True)


def test_a_reading_stopped_midway_waits_for_the_read_in_flight(tmp_path: Path) -> None:
    """Closing the chunks early (an error while sealing a chunk) must not leave a read running
    on a descriptor the caller closes next; the reader then reads the next file correctly."""
    folder = direct_dir(tmp_path)
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
    first, second = folder / "a.bin", folder / "b.bin"
    try:
        make_file(first, 300_000, 19)
        make_file(second, 300_000, 23)
        fd = evicted(first)
        chunks = reader.chunks(fd)
        next(chunks)
        chunks.close()
        os.close(fd)
        fd = evicted(second)
        try:
            got = [bytes(c) for c in reader.chunks(fd)]
        finally:
            os.close(fd)
        assert got == stream_chunks(chunker, second)
    finally:
        reader.close()
        first.unlink(missing_ok=True)
        second.unlink(missing_ok=True)


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


def test_a_large_file_read_direct_is_read_direct_again_next_time(tmp_path: Path) -> None:
    """Deciding on a direct read looks at the first page, which makes the kernel read a few
    pages ahead. With ``drop_source_cache`` they are dropped, so the file is still cold at the
    next run and read direct again (an outsider saw it alternate: direct, cached, direct)."""
    folder = direct_dir(tmp_path)
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    path = folder / "cold.bin"
    try:
        make_file(path, pipeline.SMALL_FILE * 3, 29)
        os.close(evicted(path))
        for _run in range(3):
            read = packer.read_file(str(path))
            assert read.status == "ok" and read.size == path.stat().st_size
            assert packer._reader is not None and not packer._reader.cached
            assert not first_page_cached(path)  # nothing of it left in the cache
            os.close(evicted(path))  # (the probe above read ahead too)
        reference = Chunker(ChunkerParams(seed=5))
        assert len(read.ids) == len(stream_chunks(reference, path))
    finally:
        path.unlink(missing_ok=True)


def test_a_file_that_cannot_be_read_at_an_offset_is_streamed(tmp_path: Path) -> None:
    """A stream (some FUSE files are): read on from where it is, as before - not skipped with
    "Illegal seek" (found by an outsider)."""
    chunker = Chunker(SMALL)
    reader = sourceread.SourceReader(chunker, block=16384)
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
        reader.close()
    assert got == stream_chunks(chunker, path)
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
def test_a_pack_is_written_past_the_cache_byte_for_byte(tmp_path: Path, sizes: list[int]) -> None:
    folder = direct_dir(tmp_path) / f"stage-{os.getpid()}-{len(sizes)}-{sizes[0]}"
    parts = [random.Random(n).randbytes(n) for n in sizes]
    try:
        written, uncached = stage_and_read(folder, parts)
        assert written == b"".join(parts)  # not padded, nothing lost
        assert uncached  # the disk has it; the page cache was not filled with it
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_pack_on_a_file_system_without_direct_writes_is_written_normally() -> None:
    folder = Path("/dev/shm") / f"praxisbackup-stage-{os.getpid()}"
    parts = [random.Random(3).randbytes((5 << 20) + 7)]
    try:
        written, _uncached = stage_and_read(folder, parts)
        assert written == parts[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_direct_write_refused_midway_is_written_again_normally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = direct_dir(tmp_path) / f"refused-{os.getpid()}"
    parts = [random.Random(5).randbytes((9 << 20) + 3)]
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def refusing(fd: int, data: memoryview, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct.os, "pwrite", refusing)
    try:
        written, _uncached = stage_and_read(folder, parts)
        assert calls["n"] == 2
        assert written == parts[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_full_medium_during_a_direct_write_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = direct_dir(tmp_path) / f"full-{os.getpid()}"

    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct.os, "pwrite", full)
    try:
        backend = LocalBackend(str(folder / "repo"))
        backend.create()
        with pytest.raises(StorageError) as raised:
            backend.stage("data", "cd" * 32, [bytes(3 << 20)])
        assert str(raised.value).endswith("the backup medium is full")
        assert list((folder / "repo" / "data" / "cd").iterdir()) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def test_a_restore_reads_ranges_past_the_cache_byte_for_byte(tmp_path: Path) -> None:
    folder = direct_dir(tmp_path) / f"ranges-{os.getpid()}"
    try:
        size = 9_000_001 + 4321
        backend, data = pack_file(folder, size)
        ranges = [*RANGES, (size - 4321, 4321)]
        parts = backend.read_ranges("data", "ef" * 32, ranges, direct.ReadBuffer())
        assert [bytes(p) for p in parts] == [data[o : o + n] for o, n in ranges]
        assert not first_page_cached(folder / "repo" / "data" / "ef" / ("ef" * 32))
        # Beyond the end: the same clear error as a read through the cache gives.
        with pytest.raises(StorageError, match="shorter than expected"):
            backend.read_ranges("data", "ef" * 32, [(size - 10, 11)], direct.ReadBuffer())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_ranges_on_a_medium_without_direct_reads_are_read_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmpfs (refuses O_DIRECT on open), and a medium that refuses a direct read midway."""
    shm = Path("/dev/shm") / f"praxisbackup-ranges-{os.getpid()}"
    try:
        backend, data = pack_file(shm, 9_100_000)
        parts = backend.read_ranges("data", "ef" * 32, RANGES, direct.ReadBuffer())
        assert [bytes(p) for p in parts] == [data[o : o + n] for o, n in RANGES]
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    folder = direct_dir(tmp_path) / f"refusing-{os.getpid()}"
    calls = {"n": 0}
    real = direct.read_aligned

    def refusing(fd: int, view: memoryview, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, view, offset)

    monkeypatch.setattr(pipeline.platform, "read_aligned", refusing)
    try:
        backend, data = pack_file(folder, 9_100_000)
        parts = backend.read_ranges("data", "ef" * 32, RANGES, direct.ReadBuffer())
        assert calls["n"] == 2
        assert [bytes(p) for p in parts] == [data[o : o + n] for o, n in RANGES]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
