"""Typed calls to the AuditToken and AuditMarket contracts, the same on every backend.

Owns the encoding of findings (metric units, the commitment hash, the verdict codes) and
the reading of rounds from the chain. Every rule (windows, roles, tolerances, payouts) is
decided by the contract; this module only sends transactions through the ledger backend
and decodes what the chain says. It never runs an audit and never keeps state on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, ValidationError

from mltrail._fs import atomic_write
from mltrail.config import Home, find_home
from mltrail.errors import InputError, NotFoundError, RefusedError
from mltrail.identity import address_of, unlock_from
from mltrail.ledger import contracts
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Backend, Receipt
from mltrail.ledger.client import TxResult, open_backend
from mltrail.provenance.digest import to_bytes32

METRICS = ("agreement", "accuracy", "robustness", "p99_latency", "availability")
UNITS = ("ppm", "ppm", "ppm", "us", "ppm")
VALUE_LIMIT = 1 << 48
PASS, FAIL = 1, 2
STATUS = {0: "none", 1: "open", 2: "consensus", 3: "no consensus", 4: "escalated"}
SLASH_REASONS = {1: "did not reveal", 2: "deviated from consensus", 3: "did not commit"}
GAS_DEPLOY, GAS_ADMIN, GAS_TOKEN = 3_000_000, 200_000, 120_000
GAS_REQUEST, GAS_COMMIT, GAS_REVEAL = 400_000, 200_000, 200_000
GAS_FINALIZE_BASE, GAS_FINALIZE_PER = 250_000, 90_000
NETWORK_FILE = "oracle-network.json"


def metrics_mask(names: list[str] | tuple[str, ...]) -> int:
    """The bit mask of metric names (``all`` = every metric)."""
    mask = 0
    for n in names:
        for part in n.split(","):
            part = part.strip().replace("-", "_")
            if not part:
                continue
            if part == "all":
                mask |= (1 << len(METRICS)) - 1
            elif part == "latency":
                mask |= 1 << METRICS.index("p99_latency")
            elif part in METRICS:
                mask |= 1 << METRICS.index(part)
            else:
                raise InputError(f"unknown metric {part!r} (one of {', '.join(METRICS)}, all)")
    if not mask:
        raise InputError("no metrics named")
    return mask


def mask_names(mask: int) -> list[str]:
    return [m for i, m in enumerate(METRICS) if mask >> i & 1]


def to_units(name: str, value: float) -> int:
    """A metric in its on-chain unit: fractions in ppm, latency in microseconds."""
    scaled = value * 1_000_000 if UNITS[METRICS.index(name)] == "ppm" else value * 1000.0
    return max(0, min(VALUE_LIMIT - 1, int(round(scaled))))


def from_units(name: str, value: int) -> float:
    return value / 1_000_000 if UNITS[METRICS.index(name)] == "ppm" else value / 1000.0


def commitment(round_id: int, values: list[int], verdict: int, report_digest: bytes,
               probe_digest: bytes, salt: bytes, oracle: str) -> bytes:
    """keccak256(abi_encode(round, values[5], verdict, report_digest, probe_digest, salt,
    oracle))."""
    return keccak(encode(["uint256", "uint256[5]", "uint256", "bytes32", "bytes32", "bytes32",
                          "address"],
                         [round_id, values, verdict, report_digest, probe_digest, salt,
                          to_checksum_address(oracle)]))


class NetworkConfig(BaseModel):
    """Where a consortium's oracle network lives (``<home>/oracle-network.json``)."""

    model_config = ConfigDict(extra="forbid")

    chain_id: int
    token: str
    market: str
    deploy_block: int = 0


def network_path(home: Home) -> Path:
    return home.root / NETWORK_FILE


def load_network(home: Home) -> NetworkConfig:
    path = network_path(home)
    if not path.is_file():
        raise NotFoundError(f"no oracle network in {home.root}",
                            hint="run 'mltrail oracle deploy' (admin) or 'mltrail oracle join'")
    try:
        return NetworkConfig.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise InputError(f"malformed {path}") from exc


def save_network(home: Home, cfg: NetworkConfig) -> None:
    atomic_write(network_path(home), (json.dumps(cfg.model_dump(), indent=2) + "\n").encode())


@dataclass(frozen=True)
class RoundInfo:
    round: int
    service: str
    client: str
    fee: int
    metrics: list[str]
    commit_end: int
    reveal_end: int
    committee: int
    committed: int
    revealed: int
    status: str
    verdict: str | None
    quorum: int = 0
    escalation: int = 0

    def reveal_open(self, block: int) -> bool:
        """Whether a reveal mined in ``block`` would be inside the reveal phase."""
        return block > self.commit_end or self.committed == self.committee

    def commit_open(self, block: int) -> bool:
        return self.status == "open" and not self.reveal_open(block)

    def can_finalize(self, block: int) -> bool:
        return self.status == "open" and (
            block > self.reveal_end or (self.reveal_open(block) and
                                        self.revealed == self.committed))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    round: int
    service: str
    metrics: int
    block: int
    seed: int
    tx_hash: str = ""
    fee: int = 0


@dataclass
class RoundResult:
    round: RoundInfo
    escalated_to: int | None = None
    medians: dict[str, float] = field(default_factory=dict)
    reveals: list[dict[str, Any]] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    paid: dict[str, int] = field(default_factory=dict)
    slashed: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunded: int = 0
    moved: bool | None = None
    evidence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["round"] = self.round.as_dict()
        return d


class Market:
    """The oracle network of one home, acting as one identity."""

    def __init__(self, home: Home, backend: Backend, network: NetworkConfig, identity: str,
                 password: str | Callable[[], str] | None = None) -> None:
        self.home, self.backend, self.network = home, backend, network
        self.identity = identity
        self._password = password
        self._account: LocalAccount | None = None
        self.token = to_checksum_address(network.token)
        self.address_ = to_checksum_address(network.market)
        self.tabi = ContractABI(contracts.load("AuditToken").abi)
        self.mabi = ContractABI(contracts.load("AuditMarket").abi)

    @classmethod
    def open(cls, home: Home | None = None, identity: str | None = None,
             password: str | Callable[[], str] | None = None) -> Market:
        home = home or find_home()
        settings = home.settings()
        network = load_network(home)
        backend = open_backend(home, settings)
        if backend.chain_id != network.chain_id:
            backend.close()
            raise InputError(f"{network_path(home)} is for chain {network.chain_id}, "
                             f"the home's ledger is chain {backend.chain_id}")
        return cls(home, backend, network, identity or settings.identity, password)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Market:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -------------------------------------------------------------------------

    @property
    def account(self) -> LocalAccount:
        if self._account is None:
            self._account = unlock_from(self.home, self.identity, self._password)
        return self._account

    @property
    def me(self) -> str:
        return self._account.address if self._account else address_of(self.home, self.identity)

    def resolve_account(self, who: str) -> str:
        """An address from an address or a local identity name."""
        return to_checksum_address(who) if is_address(who) else address_of(self.home, who)

    # -- low level --------------------------------------------------------------------------

    def _send(self, to: str, abi: ContractABI, fn: str, gas: int, *args: Any) -> Receipt:
        return self.backend.transact(self.account, to, abi.encode(fn, *args), gas)

    def _m(self, fn: str, gas: int, *args: Any) -> TxResult:
        return TxResult.of(self._send(self.address_, self.mabi, fn, gas, *args))

    def view(self, fn: str, *args: Any) -> Any:
        out = self.mabi.decode_output(fn, self.backend.call(self.address_,
                                                            self.mabi.encode(fn, *args)))
        return out[0] if len(out) == 1 else out

    def tview(self, fn: str, *args: Any) -> Any:
        out = self.tabi.decode_output(fn, self.backend.call(self.token,
                                                            self.tabi.encode(fn, *args)))
        return out[0] if len(out) == 1 else out

    def tick(self) -> TxResult:
        """An empty transaction to oneself: a block, so block-counted windows advance on a
        chain that mines only on demand (the embedded ledger, anvil without --block-time)."""
        return TxResult.of(self.backend.transact(self.account, self.me, b"", 21_000))

    # -- token ------------------------------------------------------------------------------

    def balance(self, who: str | None = None) -> int:
        return int(self.tview("balanceOf", self.resolve_account(who) if who else self.me))

    def mint(self, to: str, amount: int) -> TxResult:
        return TxResult.of(self._send(self.token, self.tabi, "mint", GAS_TOKEN,
                                      self.resolve_account(to), amount))

    def transfer(self, to: str, amount: int) -> TxResult:
        return TxResult.of(self._send(self.token, self.tabi, "transfer", GAS_TOKEN,
                                      self.resolve_account(to), amount))

    def _approve(self, amount: int) -> None:
        if int(self.tview("allowance", self.me, self.address_)) < amount:
            self._send(self.token, self.tabi, "approve", GAS_TOKEN, self.address_, amount)

    # -- admin ------------------------------------------------------------------------------

    def admit(self, oracle: str) -> TxResult:
        return self._m("admit", GAS_ADMIN, self.resolve_account(oracle))

    def remove(self, oracle: str) -> TxResult:
        return self._m("remove", GAS_ADMIN, self.resolve_account(oracle))

    def set_params(self, **changes: int) -> TxResult:
        """Change some of commit_window, reveal_window, min_stake, slash_amount, quorum,
        min_fee; the others keep their on-chain values."""
        names = ("commit_window", "reveal_window", "min_stake", "slash_amount", "quorum",
                 "min_fee")
        unknown = set(changes) - set(names)
        if unknown:
            raise InputError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        vals = [int(changes[n]) if changes.get(n) is not None else int(self.view(n))
                for n in names]
        if any(v < 0 for v in vals):
            raise InputError("parameters are non-negative integers")
        return self._m("set_params", GAS_ADMIN, *vals)

    def set_tolerances(self, tol_abs: list[int], tol_rel_bps: list[int]) -> TxResult:
        if len(tol_abs) != len(METRICS) or len(tol_rel_bps) != len(METRICS):
            raise InputError(f"give {len(METRICS)} absolute and {len(METRICS)} relative "
                             "tolerances")
        return self._m("set_tolerances", GAS_ADMIN, tol_abs, tol_rel_bps)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {n: int(self.view(n)) for n in (
            "commit_window", "reveal_window", "min_stake", "slash_amount", "quorum",
            "min_fee", "oracle_count", "round_count", "audit_kind", "audited_state",
            "suspended_state")}
        out["tolerances"] = {m: {"abs": int(self.view("tol_abs", i)),
                                 "rel_bps": int(self.view("tol_rel_bps", i)), "unit": UNITS[i]}
                             for i, m in enumerate(METRICS)}
        return out

    # -- oracles ----------------------------------------------------------------------------

    def stake(self, amount: int) -> TxResult:
        if amount <= 0:
            raise InputError("stake a positive amount")
        self._approve(amount)
        return self._m("deposit_stake", GAS_TOKEN * 2, amount)

    def unstake(self, amount: int) -> TxResult:
        return self._m("withdraw_stake", GAS_TOKEN * 2, amount)

    def oracle_status(self, who: str | None = None) -> dict[str, Any]:
        addr = self.resolve_account(who) if who else self.me
        return {"address": addr, "admitted": bool(self.view("is_oracle", addr)),
                "stake": int(self.view("stake", addr)), "open_rounds": int(self.view("pending",
                                                                                      addr)),
                "earned": int(self.view("earned", addr)), "slashed": int(self.view("slashed",
                                                                                    addr)),
                "balance": self.balance(addr)}

    # -- rounds -----------------------------------------------------------------------------

    def request(self, service: str, metrics: int, fee: int) -> tuple[int, TxResult]:
        """Open a round (pays ``fee``); returns (round id, transaction). The oracles audit
        the endpoint of the service's claims on the ledger: the request names none."""
        if fee <= 0:
            raise InputError("the fee must be a positive number of tokens")
        self._approve(fee)
        rc = self._send(self.address_, self.mabi, "request", GAS_REQUEST, to_bytes32(service),
                        metrics, fee)
        for lg in rc.logs:
            if lg.address == self.address_:
                name, args = self.mabi.decode_log(lg)
                if name == "Requested":
                    return int(args["round"]), TxResult.of(rc)
        raise RefusedError("the market emitted no Requested event")  # pragma: no cover

    def commit(self, round_id: int, digest: bytes) -> TxResult:
        return self._m("commit", GAS_COMMIT, round_id, digest)

    def reveal(self, round_id: int, values: list[int], verdict: int, report_digest: bytes,
               probe_digest: bytes, salt: bytes) -> TxResult:
        return self._m("reveal", GAS_REVEAL, round_id, values, verdict, report_digest,
                       probe_digest, salt)

    def finalize(self, round_id: int) -> TxResult:
        info = self.round(round_id)
        # every member is checked for a commitment; an escalation opens a new round
        n = max(1, info.committed, int(self.view("oracle_count")))
        return self._m("finalize", GAS_FINALIZE_BASE * 2 + GAS_FINALIZE_PER * n, round_id)

    def round(self, round_id: int) -> RoundInfo:
        r = self.view("rounds", round_id)
        (service, client, fee, metrics, commit_end, reveal_end, committee, committed,
         revealed, status, verdict, quorum, escalation) = r
        if int(status) == 0:
            raise NotFoundError(f"no round {round_id}")
        return RoundInfo(round_id, "0x" + bytes(service).hex(), to_checksum_address(client),
                         int(fee), mask_names(int(metrics)), int(commit_end), int(reveal_end),
                         int(committee), int(committed), int(revealed), STATUS[int(status)],
                         {1: "pass", 2: "fail"}.get(int(verdict)), int(quorum),
                         int(escalation))

    def my_commitment(self, round_id: int) -> bytes:
        return bytes(self.view("commitments", round_id, self.me))

    def my_reveal(self, round_id: int) -> int:
        return int(self.view("reveals", round_id, self.me))

    def events(self, from_block: int, to_block: int) -> list[tuple[str, dict[str, Any], int,
                                                                   str]]:
        """(name, args, block, tx hash) of the market's events in a block range."""
        out = []
        for lg in self.backend.logs(self.address_, from_block, to_block):
            name, args = self.mabi.decode_log(lg)
            out.append((name, args, lg.block, lg.tx_hash))
        return out

    def requests(self, from_block: int, to_block: int) -> list[Request]:
        """Requests opened in a block range, each with its probe seed: the hash of the block
        that mined it, unknown to anyone before the request was on chain."""
        reqs = []
        for name, args, block, tx in self.events(from_block, to_block):
            if name == "Requested":
                (bi,) = list(self.backend.blocks(block, block))
                seed = int.from_bytes(keccak(bi.hash + int(args["round"]).to_bytes(32, "big"))[:4],
                                      "big")
                reqs.append(Request(int(args["round"]), "0x" + bytes(args["service"]).hex(),
                                    int(args["metrics"]), block, seed, tx, int(args["fee"])))
        return reqs

    def result(self, round_id: int) -> RoundResult:
        """A round as the chain tells it: state, each oracle's revealed values, payouts."""
        info = self.round(round_id)
        res = RoundResult(info)
        head = self.backend.head()
        for name, a, _block, tx in self.events(self.network.deploy_block, head):
            if a.get("round") != round_id:
                continue
            if name == "Escalated":
                res.escalated_to = int(a["next_round"])
            elif name == "Committed":
                res.commits.append(to_checksum_address(a["oracle"]))
            elif name == "Revealed":
                res.reveals.append({
                    "oracle": to_checksum_address(a["oracle"]),
                    "verdict": {1: "pass", 2: "fail"}.get(int(a["verdict"])),
                    "values": {m: from_units(m, int(v)) for m, v in zip(METRICS, a["values"],
                                                                       strict=True)
                               if m in info.metrics},
                    "report_digest": "sha256:" + bytes(a["report_digest"]).hex(),
                    "probe_digest": "0x" + bytes(a["probe_digest"]).hex(),
                    "salt": "0x" + bytes(a["salt"]).hex(), "tx_hash": tx})
            elif name == "Paid":
                res.paid[to_checksum_address(a["oracle"])] = int(a["amount"])
            elif name == "Slashed":
                res.slashed[to_checksum_address(a["oracle"])] = {
                    "amount": int(a["amount"]), "reason": SLASH_REASONS.get(int(a["reason"]))}
            elif name == "Refunded":
                res.refunded += int(a["amount"])
            elif name == "Finalized":
                res.moved = bool(a["moved"])
                res.evidence = "0x" + bytes(a["evidence"]).hex()
                if a["consensus"]:
                    res.medians = {m: from_units(m, int(v)) for m, v in zip(
                        METRICS, a["medians"], strict=True) if m in info.metrics}
        return res


def parse_amount(text: str | int) -> int:
    """A whole number of tokens (the token has no decimals)."""
    try:
        d = Decimal(str(text))
    except ArithmeticError as exc:
        raise InputError(f"not an amount: {text!r}") from exc
    if not d.is_finite() or d != d.to_integral_value() or d < 0 or d >= 2**128:
        raise InputError(f"amounts are whole numbers of tokens, got {text!r}")
    return int(d)


def open_round(market: Market, service_id: str, metrics: list[str] | None,
               fee: str | int) -> tuple[RoundInfo, TxResult]:
    """Open an audit round for ``service_id`` on ``metrics`` (default: agreement, accuracy
    and availability), paying ``fee`` whole tokens; returns the new round as the chain has
    it, and the request's transaction. The oracles audit the endpoint of the service's
    signed claims on the ledger."""
    mask = metrics_mask(metrics or ["agreement", "accuracy", "availability"])
    rid, tx = market.request(service_id, mask, parse_amount(fee))
    return market.round(rid), tx
