"""The embedded ledger: a real EVM (py-evm, Cancun rules) persisted in SQLite.

One block is mined per transaction. The chain's key-value store is a SQLite table whose
writes are buffered in memory and committed in one SQLite transaction after each mined
block, so a crash (even ``kill -9``) leaves the chain at its last committed block and
never half-written. A transaction that would revert is not mined: its writes are
dropped and the revert reason is raised. Writers in several processes are serialised by
a file lock and reload the head after taking it.

Besides the key-value table ``kv``, chain.sqlite holds a plain table
``meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)`` with ``head`` (the head block number,
decimal) and ``head_hash`` (``0x`` + hex), written in the same SQLite transaction as each
mined block: a reader learns the head without py-evm (the CLI's fast read path does).
Opening never creates a chain unless asked to (``create=True``, by ``init``): a deleted,
emptied or unreadable chain.sqlite is reported as damage, never silently replaced.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import rlp
from eth import constants
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.vm.forks import CancunVM
from eth_hash.auto import keccak
from eth_keys import keys
from eth_typing import BlockNumber
from eth_utils import to_canonical_address, to_checksum_address
from filelock import FileLock, Timeout

from mltrail.errors import LedgerError, MltrailError, RefusedError, VerificationError
from mltrail.keystore import Signer
from mltrail.ledger.backend import BlockInfo, Log, Receipt, damaged, revert_reason, sign

CHAIN_ID = 31_415
GAS_LIMIT = 30_000_000


class EmbeddedChain(MiningChain):
    chain_id = CHAIN_ID
    vm_configuration = ((constants.GENESIS_BLOCK_NUMBER, CancunVM),)

    def create_header_from_parent(self, parent_header: Any, **params: Any) -> Any:
        params.setdefault("gas_limit", parent_header.gas_limit)
        return super().create_header_from_parent(parent_header, **params)


def check_row(path: Path, key: bytes, value: bytes) -> None:
    """A row with a 32-byte key is content-addressed in py-evm's layout (trie nodes of
    state, storage, transactions and receipts; contract code; headers): its key must be the
    keccak256 of its value, or the row was edited in place."""
    if len(key) == 32 and keccak(value) != key:
        raise damaged(f"{path}: row 0x{key.hex()} does not hash to its key (a trie node, "
                      "code or header was edited in place)")


def missing_data(exc: BaseException) -> bool:
    """Whether py-evm failed because a trie node or code row is missing from the chain file
    (a deleted row: damage, never a contract's refusal)."""
    from eth.vm.interrupt import EVMMissingData
    from trie.exceptions import MissingTrieNode

    return isinstance(exc, EVMMissingData | MissingTrieNode)


def _missing_damage(path: Path, exc: BaseException) -> VerificationError:
    return damaged(f"{path}: the state lacks a row the contract reads "
                   f"({type(exc).__name__}: a trie node or code was deleted)")


class SqliteKV(BaseDB):
    """A py-evm key-value database in one SQLite table, with buffered commits.

    Every row read from the file is checked against its key (:func:`check_row`), so a write
    that reads an edited trie node, header or code is refused as ``ledger damaged`` instead
    of building on it (``ledger check`` checks every row, read or not)."""

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._setup(create)
        except BaseException:
            self.conn.close()
            raise
        self.pending: dict[bytes, bytes | None] = {}
        self.cache: dict[bytes, bytes] = {}
        self._version = self._data_version()

    def _setup(self, create: bool) -> None:
        if not create and self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='kv'").fetchone() is None:
            raise damaged("chain file holds no chain (emptied or replaced?)")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                          "value TEXT NOT NULL)")

    def _data_version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def refresh(self) -> None:
        """Drop pending writes, and the read cache if another process committed since."""
        self.pending.clear()
        version = self._data_version()
        if version != self._version:
            self.cache.clear()
            self._version = version

    def __getitem__(self, key: bytes) -> bytes:
        if key in self.pending:
            value = self.pending[key]
            if value is None:
                raise KeyError(key)
            return value
        if key in self.cache:
            return self.cache[key]
        row = self._query("SELECT v FROM kv WHERE k=?", key)
        if row is None:
            raise KeyError(key)
        value = bytes(row[0])
        check_row(self.path, key, value)
        if len(self.cache) > 500_000:
            self.cache.clear()
        self.cache[key] = value
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self.pending[key] = None

    def _exists(self, key: bytes) -> bool:
        if key in self.pending:
            return self.pending[key] is not None
        if key in self.cache:
            return True
        return self._query("SELECT 1 FROM kv WHERE k=?", key) is not None

    def _query(self, sql: str, key: bytes) -> Any:
        try:
            return self.conn.execute(sql, (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise damaged(f"chain file is unreadable ({exc})") from exc

    def commit(self, meta: dict[str, str] | None = None) -> None:
        """Write every pending change (and ``meta`` rows) in one SQLite transaction."""
        if not self.pending and not meta:
            return
        puts = [(k, v) for k, v in self.pending.items() if v is not None]
        dels = [(k,) for k, v in self.pending.items() if v is None]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
            self.conn.executemany("DELETE FROM kv WHERE k=?", dels)
            self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  sorted((meta or {}).items()))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        for k, v in self.pending.items():
            if v is None:
                self.cache.pop(k, None)
            else:
                self.cache[k] = v
        self.pending.clear()

    def close(self) -> None:
        # Leave no committed frames in chain.sqlite-wal, even while another handle keeps
        # the file open: SQLite applies a WAL to whatever file bears the name, so frames
        # left behind would be overlaid on a chain file copied in later (a mixed chain).
        with suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


_HEAD_KEY = b"mltrail:genesis"
_CALLER_KEY = keys.PrivateKey(b"\x00" * 31 + b"\x01")  # signs read-only calls only


class EmbeddedBackend:
    """A persistent single-node chain in ``path`` (created on first use)."""

    kind = "embedded"
    chain_id = CHAIN_ID

    def __init__(self, path: Path, lock_path: Path | None = None, lock_timeout: float = 60,
                 create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise damaged(f"chain file {self.path} is missing")
        try:
            self.kv = SqliteKV(self.path, create)
        except sqlite3.DatabaseError as exc:
            raise damaged(f"chain file {self.path} is unreadable ({exc})") from exc
        self.lock = FileLock(str(lock_path or self.path.with_suffix(".lock")), timeout=lock_timeout)
        try:
            with self._locked():
                if not self.kv._exists(_HEAD_KEY):
                    if not create:
                        raise damaged(f"chain file {self.path} holds no chain (emptied?)")
                    self._genesis()
                self.chain = EmbeddedChain(AtomicDB(self.kv))
                self.chain.get_canonical_head()
        except sqlite3.DatabaseError as exc:
            self.kv.close()
            raise damaged(f"chain file {self.path} is unreadable ({exc})") from exc
        except Exception as exc:
            self.kv.close()
            if isinstance(exc, MltrailError):
                raise
            raise damaged(f"chain file {self.path} holds no readable chain "  # py-evm's
                          f"({type(exc).__name__})") from exc  # CanonicalHeadNotFound ...

    def _genesis(self) -> None:
        params: dict[str, Any] = {
            "coinbase": constants.ZERO_ADDRESS, "difficulty": 0, "gas_limit": GAS_LIMIT,
            "extra_data": b"mltrail", "nonce": b"\x00" * 8, "mix_hash": constants.ZERO_HASH32,
            "timestamp": int(time.time()), "base_fee_per_gas": 0,
        }
        chain = EmbeddedChain.from_genesis(AtomicDB(self.kv), params, {})
        self.kv[_HEAD_KEY] = b"1"
        self.kv.commit(self._head_meta(chain.get_canonical_head()))

    @staticmethod
    def _head_meta(header: Any) -> dict[str, str]:
        return {"head": str(int(header.block_number)), "head_hash": "0x" + bytes(header.hash).hex()}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self.lock:
                yield
        except Timeout as exc:
            raise LedgerError(f"ledger busy: could not lock {self.lock.lock_file}") from exc

    def _reload(self) -> None:
        self.kv.refresh()
        self.chain = EmbeddedChain(AtomicDB(self.kv))

    def head(self) -> int:
        self._reload()
        return int(self.chain.get_canonical_head().block_number)

    def nonce(self, address: str) -> int:
        return int(self.chain.get_vm().state.get_nonce(to_canonical_address(address)))

    def transact(self, account: Signer, to: str | None, data: bytes, gas: int) -> Receipt:
        """Sign, apply and mine one transaction; refuse (and drop) it if it reverts."""
        with self._locked():
            self._reload()
            raw = sign(account, CHAIN_ID, self.nonce(account.address), to, data, gas, 0, 0)
            vm = self.chain.get_vm()
            tx = vm.get_transaction_builder().decode(raw)
            try:
                _, receipt, comp = self.chain.apply_transaction(tx)
                if comp.is_error:
                    self._reload()
                    raise RefusedError(f"refused by contract: {revert_reason(bytes(comp.output))}")
                block = self.chain.mine_block()
            except (RefusedError, VerificationError):
                raise
            except Exception as exc:
                self._reload()
                if missing_data(exc):
                    raise _missing_damage(self.path, exc) from exc
                raise LedgerError(f"embedded chain refused the transaction: {exc}") from exc
            self.kv.commit(self._head_meta(block.header))
            created = comp.msg.storage_address if to is None else None
            return self._receipt(block, 0, receipt,
                                 to_checksum_address(created) if created else None)

    def _receipt(self, block: Any, index: int, receipt: Any, created: str | None) -> Receipt:
        tx_hash = "0x" + bytes(block.transactions[index].hash).hex()
        prev = block.get_receipts(self.chain.chaindb)[index - 1].gas_used if index else 0
        ts = int(block.header.timestamp)
        logs = tuple(
            Log(to_checksum_address(lg.address), tuple(t.to_bytes(32, "big") for t in lg.topics),
                bytes(lg.data), int(block.number), tx_hash, i, ts)
            for i, lg in enumerate(receipt.logs))
        return Receipt(tx_hash, int(block.number), int(receipt.gas_used) - prev, ts, logs, created,
                       bytes(block.hash))

    def call(self, to: str, data: bytes, block: int | None = None) -> bytes:
        """Run a read-only call against the state at ``block`` (default: the head)."""
        self._reload()
        head = (self.chain.get_canonical_head() if block is None else
                self.chain.get_canonical_block_header_by_number(BlockNumber(block)))
        vm = self.chain.get_vm(head)
        tx = vm.create_unsigned_transaction(
            nonce=0, gas_price=0, gas=GAS_LIMIT // 2, to=to_canonical_address(to), value=0,
            data=data).as_signed_transaction(_CALLER_KEY, chain_id=CHAIN_ID)
        try:
            return bytes(self.chain.get_transaction_result(tx, head))
        except Exception as exc:  # py-evm raises Revert(output) on a revert
            if missing_data(exc):
                raise _missing_damage(self.path, exc) from exc
            output = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
            raise RefusedError(f"refused by contract: {revert_reason(output)}") from exc

    def code_at(self, address: str) -> bytes:
        self._reload()
        return bytes(self.chain.get_vm().state.get_code(to_canonical_address(address)))

    def logs(self, address: str, from_block: int, to_block: int) -> list[Log]:
        want = to_canonical_address(address)
        out: list[Log] = []
        for n in range(max(from_block, 1), to_block + 1):
            block = self.chain.get_canonical_block_by_number(BlockNumber(n))
            receipts = block.get_receipts(self.chain.chaindb)
            log_index = 0
            for i, rc in enumerate(receipts):
                tx_hash = "0x" + bytes(block.transactions[i].hash).hex()
                for lg in rc.logs:
                    if lg.address == want:
                        out.append(Log(to_checksum_address(lg.address),
                                       tuple(t.to_bytes(32, "big") for t in lg.topics),
                                       bytes(lg.data), n, tx_hash, log_index,
                                       int(block.header.timestamp)))
                    log_index += 1
        return out

    def blocks(self, from_block: int, to_block: int) -> Iterator[BlockInfo]:
        for n in range(from_block, to_block + 1):
            canonical = self.chain.chaindb.get_canonical_block_hash(BlockNumber(n))
            h = self.chain.chaindb.get_block_header_by_hash(canonical)
            recomputed = keccak(rlp.encode(h))
            yield BlockInfo(n, bytes(canonical), bytes(h.parent_hash), int(h.timestamp),
                            recomputed == bytes(canonical))

    def block_hash(self, number: int) -> bytes:
        """The canonical hash of block ``number`` (damage if there is none)."""
        try:
            return bytes(self.chain.chaindb.get_canonical_block_hash(BlockNumber(number)))
        except Exception as exc:  # noqa: BLE001 - HeaderNotFound and friends
            raise damaged(f"block {number} is missing from {self.path}") from exc

    def close(self) -> None:
        self.kv.close()
