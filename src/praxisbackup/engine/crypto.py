"""Keys and encryption.

A repository has one random *master key* (an AES-256-GCM key for encryption and a BLAKE3 key
for chunk ids). The master key never leaves memory unencrypted: each *key slot* on the medium
holds it wrapped with a key derived from a passphrase by scrypt (memory-hard). Several slots
let the practice have a daily passphrase and a recovery key that each open the repository.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from praxisbackup.errors import IntegrityError

NONCE_SIZE = 12
TAG_SIZE = 16
#: Bytes an encrypted blob is longer than its plaintext.
OVERHEAD = NONCE_SIZE + TAG_SIZE
KEY_FILE_VERSION = 1
KEY_AD = b"praxisbackup key slot v1"


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost parameters stored in every key slot."""

    n: int = 1 << 17  # 128 MiB of memory with r=8
    r: int = 8
    p: int = 1

    @classmethod
    def from_env(cls) -> KdfParams:
        """Default parameters, optionally lowered by ``PRAXISBACKUP_KDF_N`` (e.g. for tests).

        The chosen parameters are stored in the key slot, so a repository keeps opening with
        whatever cost it was created with.
        """
        raw = os.environ.get("PRAXISBACKUP_KDF_N")
        if raw:
            n = int(raw)
            if n < 2 or n & (n - 1):
                raise ValueError("PRAXISBACKUP_KDF_N must be a power of two >= 2")
            return cls(n=n)
        return cls()


@dataclass(frozen=True)
class MasterKey:
    """The secrets that open a repository."""

    encryption: bytes  # 32 bytes, AES-256-GCM
    chunk_id: bytes  # 32 bytes, BLAKE3 key for blob ids

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))

    def cipher(self) -> Cipher:
        return Cipher(self.encryption)


class Cipher:
    """AES-256-GCM with a random 96-bit nonce per message and associated data.

    The associated data binds a ciphertext to what it claims to be (blob type and id, object
    kind), so a ciphertext moved to another place fails to decrypt.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes | memoryview, ad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, sealed: bytes | memoryview, ad: bytes, what: str) -> bytes:
        if len(sealed) < OVERHEAD:
            raise IntegrityError(f"{what} is truncated ({len(sealed)} bytes)")
        view = memoryview(sealed)
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], ad)
        except InvalidTag:
            raise IntegrityError(f"{what} failed authentication (damaged or tampered)") from None


def blob_id(key: MasterKey, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3 of a blob's plaintext: equal content gives equal ids inside one
    repository, but ids cannot be matched against known files without the key."""
    return blake3.blake3(data, key=key.chunk_id).digest()


def storage_id(data: bytes | memoryview) -> str:
    """Name of a stored file: BLAKE3 of its (encrypted) bytes, so renames and bit rot are seen."""
    return blake3.blake3(data).hexdigest()


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    """The key-encryption key of a slot: taken from a derivation started ahead of need
    (:func:`derive_ahead`) when one was started for exactly these inputs, else derived now."""
    _ahead_settled.wait(AHEAD_PATIENCE)
    with _ahead_lock:
        started = _ahead.pop((passphrase, salt, params), None)
    if started is not None and started.exception() is None:
        return started.result()
    return _derive_now(passphrase, salt, params)


def _derive_now(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))


#: Derivations started ahead of need, by (passphrase, salt, parameters): at most one per
#: command (see :func:`derive_ahead`).
_ahead: dict[tuple[str, bytes, KdfParams], Future[bytes]] = {}
_ahead_lock = threading.Lock()
#: Clear while a derivation ahead may still be registered (:func:`expect_ahead`): a slot's
#: key is then not derived twice at once (twice the memory, and a core taken from the work).
_ahead_settled = threading.Event()
_ahead_settled.set()
#: Seconds opening waits for that registration at most (it takes milliseconds; a medium that
#: hangs the reading of the slots would hang the opening's own reading as well).
AHEAD_PATIENCE = 30.0


def expect_ahead() -> None:
    """A derivation ahead of need may be registered soon: :func:`_derive` waits for
    :func:`ahead_settled` (which the starter must call in every case)."""
    _ahead_settled.clear()


def ahead_settled() -> None:
    _ahead_settled.set()


def derive_ahead(passphrase: str, slot: ParsedKeySlot) -> None:
    """Derive ``slot``'s key-encryption key now, on the calling thread (a command's thread
    started for it: scrypt releases the interpreter lock, so the command's modules load
    meanwhile). Opening the slot with the same passphrase takes the result, waiting for it if
    need be; a failed derivation is simply done again there."""
    started: Future[bytes] = Future()
    with _ahead_lock:
        _ahead[(passphrase, slot.salt, slot.params)] = started
    ahead_settled()  # (registered: opening may look for it now)
    try:
        started.set_result(_derive_now(passphrase, slot.salt, slot.params))
    except BaseException as exc:  # noqa: BLE001 - kept for _derive, which derives again
        started.set_exception(exc)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class KeySlotInfo:
    """The parts of a key slot that are readable once it is opened."""

    label: str
    created: str
    host: str
    user: str


def make_key_slot(
    master: MasterKey, passphrase: str, label: str, host: str, user: str, params: KdfParams
) -> bytes:
    """Serialize a key slot file that opens ``master`` with ``passphrase``."""
    salt = secrets.token_bytes(32)
    kek = _derive(passphrase, salt, params)
    secret = json.dumps(
        {
            "encryption": _b64(master.encryption),
            "chunk_id": _b64(master.chunk_id),
            "label": label,
            "created": datetime.now(UTC).isoformat(),
            "host": host,
            "user": user,
        }
    ).encode()
    doc = {
        "version": KEY_FILE_VERSION,
        "kdf": {"name": "scrypt", "n": params.n, "r": params.r, "p": params.p, "salt": _b64(salt)},
        "data": _b64(Cipher(kek).seal(secret, KEY_AD)),
    }
    return json.dumps(doc, indent=1).encode()


#: scrypt needs 128 * n * r bytes of memory: a key slot may ask for at most 1 GiB.
MAX_KDF_MEMORY = 1 << 30
#: Work of one derivation, n * r * p (the default slot costs 2^20, about half a second):
#: a slot may cost at most 16 times the default ...
MAX_SLOT_COST = 1 << 24
#: ... and opening a repository tries slots (cheapest first) until 64 times the default.
MAX_OPEN_COST = 1 << 26


def kdf_cost(params: KdfParams) -> int:
    return params.n * params.r * params.p


def check_kdf(params: KdfParams, what: str) -> None:
    """Refuse scrypt parameters that are malformed or would demand too much memory or time
    (a slot on a medium is data from outside: it must not make opening hang or swap)."""
    if params.n < 2 or params.n & (params.n - 1) or params.r < 1 or params.p < 1:
        raise IntegrityError(f"{what} has implausible scrypt parameters")
    if 128 * params.n * params.r > MAX_KDF_MEMORY:
        raise IntegrityError(
            f"{what} asks for {128 * params.n * params.r >> 20} MiB of memory "
            f"(at most {MAX_KDF_MEMORY >> 20} MiB are allowed): not tried"
        )
    if kdf_cost(params) > MAX_SLOT_COST:
        raise IntegrityError(
            f"{what} asks for {kdf_cost(params) >> 20} times the default key derivation work "
            f"(at most {MAX_SLOT_COST >> 20}): not tried"
        )


@dataclass(frozen=True)
class ParsedKeySlot:
    """A key slot's outer structure, checked without deriving anything."""

    params: KdfParams
    salt: bytes
    sealed: bytes

    @property
    def cost(self) -> int:
        return kdf_cost(self.params)


def parse_key_slot(raw: bytes, what: str) -> ParsedKeySlot:
    """Check a key slot's structure and cost (cheap); IntegrityError if it is malformed, too
    expensive to try, or cannot hold a key."""
    try:
        doc = json.loads(raw)
        if doc["version"] != KEY_FILE_VERSION or doc["kdf"]["name"] != "scrypt":
            raise IntegrityError(f"{what} has an unsupported format version")
        kdf = doc["kdf"]
        params = KdfParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
        salt = _unb64(kdf["salt"])
        sealed = _unb64(doc["data"])
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}") from None
    check_kdf(params, what)
    if len(salt) < 16 or len(sealed) < OVERHEAD + 2:
        raise IntegrityError(f"{what} is malformed: salt or sealed key too short")
    return ParsedKeySlot(params, salt, sealed)


def open_key_slot(
    raw: bytes | ParsedKeySlot, passphrase: str, what: str
) -> tuple[MasterKey, KeySlotInfo] | None:
    """Try a passphrase on a key slot. Returns None if it is the wrong passphrase.

    Raises :class:`IntegrityError` if the slot itself is malformed or too expensive.
    """
    slot = raw if isinstance(raw, ParsedKeySlot) else parse_key_slot(raw, what)
    kek = _derive(passphrase, slot.salt, slot.params)
    try:
        secret = Cipher(kek).open(slot.sealed, KEY_AD, what)
    except IntegrityError:
        return None
    try:
        inner = json.loads(secret)
        master = MasterKey(_unb64(inner["encryption"]), _unb64(inner["chunk_id"]))
        info = KeySlotInfo(inner["label"], inner["created"], inner["host"], inner["user"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{what} holds a malformed key: {exc}") from None
    if len(master.encryption) != 32 or len(master.chunk_id) != 32:
        raise IntegrityError(f"{what} holds a key of the wrong length")
    return master, info


def generate_recovery_key() -> str:
    """A random recovery passphrase that can be typed from paper: 8 groups of 5 characters
    from an alphabet without look-alikes (about 190 bits)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    chars = [secrets.choice(alphabet) for _ in range(40)]
    return "-".join("".join(chars[i : i + 5]) for i in range(0, 40, 5))


def normalize_recovery_key(text: str) -> str:
    """Accept a recovery key typed with spaces, lower case or missing dashes."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(cleaned) == 40:
        return "-".join(cleaned[i : i + 5] for i in range(0, 40, 5))
    return text


SECRET_AD = b"praxisbackup sealed secret v1"


def seal_secret(passphrase: str, secret: str, params: KdfParams | None = None) -> bytes:
    """Encrypt a small secret (the practice's recovery key) under a passphrase, as JSON."""
    params = params or KdfParams.from_env()
    salt = secrets.token_bytes(32)
    sealed = Cipher(_derive(passphrase, salt, params)).seal(secret.encode(), SECRET_AD)
    doc = {"n": params.n, "r": params.r, "p": params.p, "salt": _b64(salt), "data": _b64(sealed)}
    return json.dumps(doc).encode()


def open_secret(passphrase: str, raw: bytes) -> str | None:
    """Decrypt :func:`seal_secret` output; None for a wrong passphrase."""
    try:
        doc = json.loads(raw)
        params = KdfParams(n=int(doc["n"]), r=int(doc["r"]), p=int(doc["p"]))
        salt, sealed = _unb64(doc["salt"]), _unb64(doc["data"])
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
        raise IntegrityError(f"the sealed secret is malformed: {exc}") from None
    check_kdf(params, "the sealed secret")
    try:
        return (
            Cipher(_derive(passphrase, salt, params))
            .open(sealed, SECRET_AD, "sealed secret")
            .decode()
        )
    except IntegrityError:
        return None
