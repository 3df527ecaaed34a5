# pragma version ~=0.4.3
"""
@title AuditMarket
@notice A permissioned network of auditing oracles. The admin admits oracles; each stakes
        AuditToken. A client pays a fee to open an audit round for a service artefact of
        the registry. Oracles commit keccak256(abi_encode(round, values, verdict,
        report_digest, salt, oracle)) within the commit window, then reveal within the
        reveal window. Finalising takes the median of each wanted metric and the majority
        verdict, pays the fee to oracles within tolerance of the medians that voted with the
        majority, slashes those that deviated, did not reveal, or (admitted before the
        round opened) did not commit, and moves the service in the registry (this contract
        holds the registry's auditor role) with the result's digest as evidence; a pass
        never moves a service out of the suspended state (reinstating is the lifecycle's
        own path, not a round's). A tied vote escalates: the fee moves to a new round that
        needs one reveal more (at most MAX_ESCALATIONS times). Too few reveals, or no
        reveal within tolerance of the medians: no consensus, fee refunded. Non-committers
        and non-revealers are slashed whatever the outcome.
        The request names only the service: the oracles audit the endpoint of the
        service's signed claims on the ledger, never one the requester names.
@dev    Metrics (index: unit): 0 agreement with the reference, 1 accuracy, 2 robustness,
        4 availability (parts per million); 3 p99 latency (microseconds). A reveal is packed
        in one slot: value i << 48*i, verdict << 240, 1 << 255 (revealed).
        The commitment also binds probe_digest, the digest of the oracle's private probe
        set (drawn from its salt and the round's seed, so anyone can redraw and check it
        once the salt is revealed).
        Windows count blocks. The commit phase also ends once the whole committee (the
        oracles admitted when the round opened) has committed, and a round may be finalised
        as soon as every committed oracle has revealed.
"""

from ethereum.ercs import IERC20

N: constant(uint256) = 5
MAX_COMMITTEE: constant(uint256) = 32
ALL_METRICS: constant(uint256) = 31
VALUE_LIMIT: constant(uint256) = 281474976710656  # 2**48
MAX_ESCALATIONS: constant(uint256) = 2
OPEN: constant(uint256) = 1
CONSENSUS: constant(uint256) = 2
NO_CONSENSUS: constant(uint256) = 3
ESCALATED: constant(uint256) = 4
V_PASS: constant(uint256) = 1
V_FAIL: constant(uint256) = 2
REVEALED: constant(uint256) = 1 << 255
NOT_REVEALED: constant(uint256) = 1
DEVIATED: constant(uint256) = 2
NOT_COMMITTED: constant(uint256) = 3

struct Round:
    service: bytes32
    client: address
    fee: uint256
    metrics: uint256
    commit_end: uint256
    reveal_end: uint256
    committee: uint256
    committed: uint256
    revealed: uint256
    status: uint256
    verdict: uint256
    quorum: uint256
    escalation: uint256

event Requested:
    round: indexed(uint256)
    service: indexed(bytes32)
    client: indexed(address)
    fee: uint256
    metrics: uint256
    commit_end: uint256
    reveal_end: uint256
    quorum: uint256
    escalation: uint256

event Committed:
    round: indexed(uint256)
    oracle: indexed(address)
    commitment: bytes32

event Revealed:
    round: indexed(uint256)
    oracle: indexed(address)
    values: uint256[N]
    verdict: uint256
    report_digest: bytes32
    probe_digest: bytes32
    salt: bytes32

event Finalized:
    round: indexed(uint256)
    service: indexed(bytes32)
    consensus: bool
    verdict: uint256
    medians: uint256[N]
    revealed: uint256
    paid_each: uint256
    moved: bool
    evidence: bytes32

event Escalated:
    round: indexed(uint256)
    next_round: indexed(uint256)
    revealed: uint256

event Paid:
    round: indexed(uint256)
    oracle: indexed(address)
    amount: uint256

event Slashed:
    round: indexed(uint256)
    oracle: indexed(address)
    amount: uint256
    reason: uint256

event Refunded:
    round: indexed(uint256)
    client: indexed(address)
    amount: uint256

event OracleChanged:
    oracle: indexed(address)
    admitted: bool

event StakeChanged:
    oracle: indexed(address)
    stake: uint256

event ParamsChanged:
    actor: indexed(address)

admin: public(address)
token: public(IERC20)
registry: public(address)
audit_kind: public(uint256)
audited_state: public(uint256)
suspended_state: public(uint256)

commit_window: public(uint256)
reveal_window: public(uint256)
min_stake: public(uint256)
slash_amount: public(uint256)
quorum: public(uint256)
min_fee: public(uint256)
tol_abs: public(uint256[N])
tol_rel_bps: public(uint256[N])

is_oracle: public(HashMap[address, bool])
oracle_count: public(uint256)
members: public(HashMap[uint256, address])
member_slot: HashMap[address, uint256]
admitted_before: public(HashMap[address, uint256])
stake: public(HashMap[address, uint256])
pending: public(HashMap[address, uint256])
earned: public(HashMap[address, uint256])
slashed: public(HashMap[address, uint256])

round_count: public(uint256)
rounds: public(HashMap[uint256, Round])
commitments: public(HashMap[uint256, HashMap[address, bytes32]])
reveals: public(HashMap[uint256, HashMap[address, uint256]])
committers: public(HashMap[uint256, HashMap[uint256, address]])


@deploy
def __init__(token: address, registry: address, audit_kind: uint256, audited_state: uint256,
             suspended_state: uint256):
    self.admin = msg.sender
    self.token = IERC20(token)
    self.registry = registry
    self.audit_kind = audit_kind
    self.audited_state = audited_state
    self.suspended_state = suspended_state
    self.commit_window = 20
    self.reveal_window = 20
    self.min_stake = 100
    self.slash_amount = 50
    self.quorum = 3
    self.min_fee = 1
    # agreement and accuracy: less than one shared probe of 64 (honest oracles measure the
    # same shared probes, so their values are equal; a stale guess must hit the count)
    self.tol_abs = [10000, 10000, 50000, 50000, 50000]
    self.tol_rel_bps = [0, 0, 0, 5000, 0]


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "admin only"


@external
def set_params(commit_window: uint256, reveal_window: uint256, min_stake: uint256,
               slash_amount: uint256, quorum: uint256, min_fee: uint256):
    """@notice Windows (blocks), stake and slash (tokens), quorum (reveals), minimum fee."""
    self._only_admin()
    assert commit_window > 0 and reveal_window > 0, "windows must be at least one block"
    assert quorum > 0 and quorum <= MAX_COMMITTEE, "bad quorum"
    self.commit_window = commit_window
    self.reveal_window = reveal_window
    self.min_stake = min_stake
    self.slash_amount = slash_amount
    self.quorum = quorum
    self.min_fee = min_fee
    log ParamsChanged(actor=msg.sender)


@external
def set_tolerances(tol_abs: uint256[N], tol_rel_bps: uint256[N]):
    """@notice A value is within tolerance if |v - median| <= abs + median * rel_bps / 1e4."""
    self._only_admin()
    self.tol_abs = tol_abs
    self.tol_rel_bps = tol_rel_bps
    log ParamsChanged(actor=msg.sender)


@external
def set_states(audit_kind: uint256, audited_state: uint256, suspended_state: uint256):
    """@notice Registry codes of the audited kind and its states (from lifecycle bindings)."""
    self._only_admin()
    self.audit_kind = audit_kind
    self.audited_state = audited_state
    self.suspended_state = suspended_state
    log ParamsChanged(actor=msg.sender)


@external
def admit(oracle: address):
    """@notice Admit `oracle` to the network (permissioned). Admin only."""
    self._only_admin()
    assert oracle != empty(address), "zero address"
    assert not self.is_oracle[oracle], "already an oracle"
    assert self.oracle_count < MAX_COMMITTEE, "network full"
    self.is_oracle[oracle] = True
    self.members[self.oracle_count] = oracle
    self.member_slot[oracle] = self.oracle_count
    self.oracle_count += 1
    # on the committee of every round opened after this one
    self.admitted_before[oracle] = self.round_count + 1
    log OracleChanged(oracle=oracle, admitted=True)


@external
def remove(oracle: address):
    """@notice Remove `oracle`; its stake stays withdrawable. Admin only."""
    self._only_admin()
    assert self.is_oracle[oracle], "not an oracle"
    self.is_oracle[oracle] = False
    last: uint256 = self.oracle_count - 1
    slot: uint256 = self.member_slot[oracle]
    moved: address = self.members[last]
    self.members[slot] = moved
    self.member_slot[moved] = slot
    self.members[last] = empty(address)
    self.oracle_count = last
    log OracleChanged(oracle=oracle, admitted=False)


@external
def deposit_stake(amount: uint256):
    """@notice Stake `amount` tokens (approve this contract first)."""
    assert self.is_oracle[msg.sender], "not an oracle"
    assert amount > 0, "zero amount"
    assert extcall self.token.transferFrom(msg.sender, self, amount), "token transfer failed"
    self.stake[msg.sender] += amount
    log StakeChanged(oracle=msg.sender, stake=self.stake[msg.sender])


@external
def withdraw_stake(amount: uint256):
    """@notice Take back `amount` of stake; refused while a committed round is open."""
    assert self.pending[msg.sender] == 0, "oracle has open rounds"
    assert self.stake[msg.sender] >= amount, "stake too small"
    self.stake[msg.sender] -= amount
    assert extcall self.token.transfer(msg.sender, amount), "token transfer failed"
    log StakeChanged(oracle=msg.sender, stake=self.stake[msg.sender])


@external
def request(service: bytes32, metrics: uint256, fee: uint256) -> uint256:
    """@notice Open a round auditing `service` (a registry artefact of the audited kind) for
    the metrics in mask `metrics`, paying `fee` (approve this contract first). The oracles
    audit the endpoint of the service's claims on the ledger."""
    assert metrics != 0 and metrics & ALL_METRICS == metrics, "bad metrics mask"
    assert fee >= self.min_fee, "fee below the minimum"
    assert self.oracle_count >= self.quorum, "fewer oracles than the quorum"
    ok: bool = False
    out: Bytes[128] = b""
    ok, out = raw_call(self.registry, abi_encode(service, method_id=method_id("artefact(bytes32)")),
                       max_outsize=128, is_static_call=True, revert_on_failure=False)
    assert ok and len(out) >= 64, "unknown service artefact"
    assert extract32(out, 32, output_type=uint256) == self.audit_kind, "not an artefact of the audited kind"
    assert extcall self.token.transferFrom(msg.sender, self, fee), "token transfer failed"
    return self._open(service, msg.sender, fee, metrics, self.quorum, 0)


@internal
def _open(service: bytes32, client: address, fee: uint256, metrics: uint256, quorum: uint256,
          escalation: uint256) -> uint256:
    rid: uint256 = self.round_count + 1
    self.round_count = rid
    commit_end: uint256 = block.number + self.commit_window
    reveal_end: uint256 = commit_end + self.reveal_window
    self.rounds[rid] = Round(service=service, client=client, fee=fee, metrics=metrics,
                             commit_end=commit_end, reveal_end=reveal_end,
                             committee=self.oracle_count, committed=0, revealed=0,
                             status=OPEN, verdict=0, quorum=quorum, escalation=escalation)
    log Requested(round=rid, service=service, client=client, fee=fee, metrics=metrics,
                  commit_end=commit_end, reveal_end=reveal_end, quorum=quorum,
                  escalation=escalation)
    return rid


@internal
@view
def _state_of(service: bytes32) -> uint256:
    """The service's lifecycle state code in the registry (0 if unreadable)."""
    ok: bool = False
    out: Bytes[128] = b""
    ok, out = raw_call(self.registry, abi_encode(service, method_id=method_id("artefact(bytes32)")),
                       max_outsize=128, is_static_call=True, revert_on_failure=False)
    if not ok or len(out) < 96:
        return 0
    return extract32(out, 64, output_type=uint256)


@internal
@view
def _reveal_open(r: Round) -> bool:
    return block.number > r.commit_end or r.committed == r.committee


@external
def commit(round_id: uint256, commitment: bytes32):
    """@notice Commit to hidden findings for an open round."""
    r: Round = self.rounds[round_id]
    assert r.status == OPEN, "no open round with this id"
    assert self.is_oracle[msg.sender], "not an oracle"
    assert self.commitments[round_id][msg.sender] == empty(bytes32), "already committed"
    assert not self._reveal_open(r), "commit window closed"
    assert self.stake[msg.sender] >= self.min_stake, "stake below the minimum"
    assert commitment != empty(bytes32), "empty commitment"
    self.commitments[round_id][msg.sender] = commitment
    self.committers[round_id][r.committed] = msg.sender
    self.rounds[round_id].committed = r.committed + 1
    self.pending[msg.sender] += 1
    log Committed(round=round_id, oracle=msg.sender, commitment=commitment)


@external
def reveal(round_id: uint256, values: uint256[N], verdict: uint256, report_digest: bytes32,
           probe_digest: bytes32, salt: bytes32):
    """@notice Reveal the findings committed to; they must hash to the commitment."""
    r: Round = self.rounds[round_id]
    assert r.status == OPEN, "no open round with this id"
    c: bytes32 = self.commitments[round_id][msg.sender]
    assert c != empty(bytes32), "no commitment from this oracle"
    assert self.reveals[round_id][msg.sender] == 0, "already revealed"
    assert self._reveal_open(r), "reveal window not open yet"
    assert block.number <= r.reveal_end, "reveal window closed"
    assert verdict == V_PASS or verdict == V_FAIL, "verdict must be 1 (pass) or 2 (fail)"
    packed: uint256 = REVEALED | (verdict << 240)
    for i: uint256 in range(N):
        assert values[i] < VALUE_LIMIT, "metric value out of range"
        packed |= values[i] << (48 * i)
    assert keccak256(abi_encode(round_id, values, verdict, report_digest, probe_digest, salt, msg.sender)) == c, "reveal does not match commitment"
    self.reveals[round_id][msg.sender] = packed
    self.rounds[round_id].revealed = r.revealed + 1
    log Revealed(round=round_id, oracle=msg.sender, values=values, verdict=verdict,
                 report_digest=report_digest, probe_digest=probe_digest, salt=salt)


@internal
@pure
def _median(xs: DynArray[uint256, MAX_COMMITTEE]) -> uint256:
    a: DynArray[uint256, MAX_COMMITTEE] = xs
    n: uint256 = len(a)
    for i: uint256 in range(1, MAX_COMMITTEE):
        if i >= n:
            break
        key: uint256 = a[i]
        j: uint256 = i
        for _k: uint256 in range(MAX_COMMITTEE):
            if j == 0 or a[j - 1] <= key:
                break
            a[j] = a[j - 1]
            j -= 1
        a[j] = key
    return a[(n - 1) // 2]


@internal
def _slash(round_id: uint256, oracle: address, reason: uint256):
    amount: uint256 = min(self.slash_amount, self.stake[oracle])
    self.stake[oracle] -= amount
    self.slashed[oracle] += amount
    if amount > 0:
        assert extcall self.token.transfer(self.admin, amount), "token transfer failed"
    log Slashed(round=round_id, oracle=oracle, amount=amount, reason=reason)


@internal
@view
def _within(v: uint256, med: uint256, i: uint256) -> bool:
    diff: uint256 = v - med if v > med else med - v
    return diff <= self.tol_abs[i] + med * self.tol_rel_bps[i] // 10000


@internal
def _slash_absent(round_id: uint256):
    """Slash every oracle admitted before the round opened that did not commit."""
    for i: uint256 in range(MAX_COMMITTEE):
        if i >= self.oracle_count:
            break
        o: address = self.members[i]
        if self.admitted_before[o] <= round_id and self.commitments[round_id][o] == empty(bytes32):
            self._slash(round_id, o, NOT_COMMITTED)


@external
def finalize(round_id: uint256):
    """@notice Close a round whose reveals are all in or whose reveal window has passed."""
    r: Round = self.rounds[round_id]
    assert r.status == OPEN, "no open round with this id"
    assert block.number > r.reveal_end or (self._reveal_open(r) and r.revealed == r.committed), "reveal window still open"
    self._slash_absent(round_id)
    revealers: DynArray[address, MAX_COMMITTEE] = []
    packs: DynArray[uint256, MAX_COMMITTEE] = []
    passes: uint256 = 0
    for i: uint256 in range(MAX_COMMITTEE):
        if i >= r.committed:
            break
        o: address = self.committers[round_id][i]
        self.pending[o] -= 1
        p: uint256 = self.reveals[round_id][o]
        if p == 0:
            self._slash(round_id, o, NOT_REVEALED)
        else:
            revealers.append(o)
            packs.append(p)
            if (p >> 240) & 255 == V_PASS:
                passes += 1
    n: uint256 = len(revealers)
    verdict: uint256 = 0
    if n >= r.quorum and n > 0:
        if passes * 2 > n:
            verdict = V_PASS
        elif (n - passes) * 2 > n:
            verdict = V_FAIL
        elif r.escalation < MAX_ESCALATIONS and self.oracle_count > n:
            # a tie: the fee moves to a larger round (one reveal more), nobody is refunded
            self.rounds[round_id].status = ESCALATED
            nxt: uint256 = self._open(r.service, r.client, r.fee, r.metrics,
                                      max(n + 1, self.quorum), r.escalation + 1)
            log Escalated(round=round_id, next_round=nxt, revealed=n)
            return
    medians: uint256[N] = empty(uint256[N])
    good: DynArray[address, MAX_COMMITTEE] = []
    bad: DynArray[address, MAX_COMMITTEE] = []
    if verdict != 0:
        for m: uint256 in range(N):
            if (r.metrics >> m) & 1 == 1:
                col: DynArray[uint256, MAX_COMMITTEE] = []
                for p: uint256 in packs:
                    col.append((p >> (48 * m)) & (VALUE_LIMIT - 1))
                medians[m] = self._median(col)
        for i: uint256 in range(MAX_COMMITTEE):
            if i >= n:
                break
            p: uint256 = packs[i]
            ok: bool = (p >> 240) & 255 == verdict
            for m: uint256 in range(N):
                if ok and (r.metrics >> m) & 1 == 1:
                    ok = self._within((p >> (48 * m)) & (VALUE_LIMIT - 1), medians[m], m)
            if ok:
                good.append(revealers[i])
            else:
                bad.append(revealers[i])
    if len(good) == 0:
        # too few reveals, a tie past the last escalation, or nobody near the medians
        self.rounds[round_id].status = NO_CONSENSUS
        assert extcall self.token.transfer(r.client, r.fee), "token transfer failed"
        log Refunded(round=round_id, client=r.client, amount=r.fee)
        log Finalized(round=round_id, service=r.service, consensus=False, verdict=0,
                      medians=empty(uint256[N]), revealed=n, paid_each=0, moved=False,
                      evidence=empty(bytes32))
        return
    for o: address in bad:
        self._slash(round_id, o, DEVIATED)
    each: uint256 = r.fee // len(good)
    for o: address in good:
        self.earned[o] += each
        assert extcall self.token.transfer(o, each), "token transfer failed"
        log Paid(round=round_id, oracle=o, amount=each)
    rest: uint256 = r.fee - each * len(good)
    if rest > 0:
        assert extcall self.token.transfer(r.client, rest), "token transfer failed"
        log Refunded(round=round_id, client=r.client, amount=rest)
    self.rounds[round_id].status = CONSENSUS
    self.rounds[round_id].verdict = verdict
    evidence: bytes32 = keccak256(abi_encode(self, round_id, verdict, medians))
    to_state: uint256 = self.audited_state if verdict == V_PASS else self.suspended_state
    moved: bool = False
    if verdict == V_FAIL or self._state_of(r.service) != self.suspended_state:
        # a pass never reinstates a suspended service: that is the lifecycle's own path
        moved = raw_call(self.registry,
                         abi_encode(r.service, to_state, evidence,
                                    method_id=method_id("transition(bytes32,uint256,bytes32)")),
                         revert_on_failure=False)
    log Finalized(round=round_id, service=r.service, consensus=True, verdict=verdict,
                  medians=medians, revealed=n, paid_each=each, moved=moved, evidence=evidence)
