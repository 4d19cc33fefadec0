"""The repository engine: encrypted, deduplicated, verified snapshots on a backup medium.

Modules, bottom-up:

* :mod:`.crypto`     - master key, key slots, AEAD, keyed chunk ids
* :mod:`.objects`    - encrypted single-file objects (config, index, snapshots, locks)
* :mod:`.chunking`   - content-defined chunking with a per-repository secret
* :mod:`.pack`       - pack file format (blobs + encrypted self-describing header)
* :mod:`.index`      - which blob lives in which pack
* :mod:`.repository` - opening, writing blobs, saving snapshots, locking
* :mod:`.tree`       - directory objects and file metadata
* :mod:`.snapshot`   - snapshot objects and lookup
* :mod:`.archiver`   - backup
* :mod:`.restorer`   - restore
* :mod:`.checker`    - check and read-data verification
* :mod:`.forget`     - retention policy
* :mod:`.prune`      - removing unreferenced data
* :mod:`.repair`     - rebuilding the index from packs

The byte-level format is described in ``docs/design.md``.
"""
