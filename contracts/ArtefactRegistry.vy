# pragma version ~=0.4.3
"""
@title ArtefactRegistry (version 3)
@notice Every dataset, model and service is a state machine held here. The admin publishes
        a lifecycle once (kinds, transitions, who may take each, parent kinds, anchor roles);
        members register artefacts (and own them) and move them between states. One packed
        storage slot per artefact; digests, parents, names, evidence and actors live in
        events, so history comes from logs.
@dev    Packed artefact slot: owner << 96 | registered_block << 24 | 1 << 16 | kind << 8 | state.
        Rule key: kind << 16 | from_state << 8 | to_state -> rule value:
          bits 0..119 roles that may take it alone, bits 120..239 roles that may take it
          on an artefact they own, bit 255 the owner may take it without a role.
        Kind config: register_role_mask << 8 | initial_state (0 = unknown kind).
        kind_parents[kind]: bit k set when an artefact of kind k may be a parent.
        kind_anchors[kind]: roles that may anchor on an artefact of the kind (its owner may).
        State 255 is terminal (revoked): nothing leaves it.
        admin_roles: the role bits that come with the admin position and move with it.
        admin_role: the lifecycle's `admin` role bit(s). Others may hold it (co-admins,
          counted in co_admins), but the admin position is handed over only once no
          co-admin is left besides the candidate: a handover never leaves one behind.
        Names: at most 64 bytes, no ASCII control character (C0 or DEL).
        Anchors: not on revoked artefacts; a count of at most MAX_ANCHOR_RECORDS records.
"""

VERSION: public(constant(uint256)) = 3
MAX_PARENTS: constant(uint256) = 32
MAX_RULES: constant(uint256) = 256
MAX_KINDS: constant(uint256) = 32
MAX_DOC: constant(uint256) = 16384
REVOKED: constant(uint256) = 255
EXISTS: constant(uint256) = 65536
ROLE_BITS: constant(uint256) = 1329227995784915872903807060280344575  # 2**120 - 1
MAX_ANCHOR_RECORDS: public(constant(uint256)) = 1099511627776  # 2**40
ONES: constant(uint256) = 454086624460063511464984254936031011189294057512315937409637584344757371137  # 0x0101..01
HIGHS: constant(uint256) = ONES * 128  # 0x8080..80

event Registered:
    id: indexed(bytes32)
    actor: indexed(address)
    kind: uint256
    state: uint256
    content_digest: bytes32
    metadata_digest: bytes32
    parents: DynArray[bytes32, MAX_PARENTS]
    name: String[64]

event Transitioned:
    id: indexed(bytes32)
    actor: indexed(address)
    from_state: uint256
    to_state: uint256
    evidence_digest: bytes32

event Anchored:
    id: indexed(bytes32)
    actor: indexed(address)
    root: bytes32
    count: uint256
    metadata_digest: bytes32

event RolesChanged:
    account: indexed(address)
    actor: indexed(address)
    roles: uint256

event AdminChanged:
    previous: indexed(address)
    admin: indexed(address)

event AdminOffered:
    admin: indexed(address)
    candidate: indexed(address)

event AdminOfferCancelled:
    admin: indexed(address)
    candidate: indexed(address)

event LifecyclePublished:
    digest: indexed(bytes32)
    actor: indexed(address)
    tables_digest: bytes32
    document: Bytes[MAX_DOC]

event ProfileSet:
    account: indexed(address)
    uri: String[256]

admin: public(address)
pending_admin: public(address)
admin_roles: public(uint256)
admin_role: public(uint256)
co_admins: public(uint256)
roles: public(HashMap[address, uint256])
rules: public(HashMap[uint256, uint256])
kinds: public(HashMap[uint256, uint256])
kind_parents: public(HashMap[uint256, uint256])
kind_anchors: public(HashMap[uint256, uint256])
lifecycle_digest: public(bytes32)
tables_digest: public(bytes32)
profile: public(HashMap[address, String[256]])
_artefacts: HashMap[bytes32, uint256]


@deploy
def __init__(admin_roles: uint256, admin_role: uint256):
    assert admin_role & admin_roles == admin_role, "admin role outside the admin's roles"
    self.admin = msg.sender
    self.admin_roles = admin_roles
    self.admin_role = admin_role
    self.roles[msg.sender] = admin_roles
    log AdminChanged(previous=empty(address), admin=msg.sender)
    log RolesChanged(account=msg.sender, actor=msg.sender, roles=admin_roles)


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "admin only"


@external
def publish_lifecycle(document: Bytes[MAX_DOC], rule_keys: DynArray[uint256, MAX_RULES], rule_values: DynArray[uint256, MAX_RULES], kind_ids: DynArray[uint256, MAX_KINDS], kind_configs: DynArray[uint256, MAX_KINDS], kind_parents: DynArray[uint256, MAX_KINDS], kind_anchors: DynArray[uint256, MAX_KINDS]):
    """@notice Load the lifecycle once: its document and the tables derived from it.
    @dev The document's sha256 and the keccak of the ABI-encoded tables are stored, so every
         member can derive the tables from the document and compare. A new lifecycle
         means a new registry: publishing twice could leave stale rules behind."""
    self._only_admin()
    assert self.lifecycle_digest == empty(bytes32), "lifecycle already published"
    assert len(rule_keys) == len(rule_values), "rules length mismatch"
    n: uint256 = len(kind_ids)
    assert n == len(kind_configs) and n == len(kind_parents) and n == len(kind_anchors), "kinds length mismatch"
    for i: uint256 in range(len(rule_keys), bound=MAX_RULES):
        assert self.rules[rule_keys[i]] == 0, "duplicate rule"
        self.rules[rule_keys[i]] = rule_values[i]
    for i: uint256 in range(n, bound=MAX_KINDS):
        k: uint256 = kind_ids[i]
        assert k > 0 and k <= MAX_KINDS, "bad kind id"
        assert self.kinds[k] == 0, "duplicate kind"
        self.kinds[k] = kind_configs[i]
        self.kind_parents[k] = kind_parents[i]
        self.kind_anchors[k] = kind_anchors[i]
    digest: bytes32 = sha256(document)
    tables: bytes32 = keccak256(abi_encode(rule_keys, rule_values, kind_ids, kind_configs, kind_parents, kind_anchors))
    self.lifecycle_digest = digest
    self.tables_digest = tables
    log LifecyclePublished(digest=digest, actor=msg.sender, tables_digest=tables, document=document)


@internal
def _set(account: address, new_roles: uint256):
    """Store `account`'s roles, counting co-admins (holders of the admin role but the admin)."""
    if account != self.admin:
        had: bool = self.roles[account] & self.admin_role != 0
        has: bool = new_roles & self.admin_role != 0
        if has and not had:
            self.co_admins += 1
        elif had and not has:
            self.co_admins -= 1
    self.roles[account] = new_roles
    log RolesChanged(account=account, actor=msg.sender, roles=new_roles)


@internal
@view
def _no_co_admin_but(candidate: address):
    others: uint256 = self.co_admins
    if self.roles[candidate] & self.admin_role != 0:
        others -= 1
    assert others == 0, "co-admins hold the admin role: revoke it first"


@external
def set_roles(account: address, new_roles: uint256):
    """@notice Replace the role mask of `account`."""
    self._only_admin()
    assert account != empty(address), "zero address"
    self._set(account, new_roles)


@external
def grant_role(account: address, role: uint256):
    """@notice Add the roles in mask `role` to `account`."""
    self._only_admin()
    assert account != empty(address), "zero address"
    self._set(account, self.roles[account] | role)


@external
def revoke_role(account: address, role: uint256):
    """@notice Remove the roles in mask `role` from `account`."""
    self._only_admin()
    self._set(account, self.roles[account] & ~role)


@external
def transfer_admin(new_admin: address):
    """@notice First step of an admin handover; `new_admin` must accept."""
    self._only_admin()
    assert new_admin != empty(address), "zero address"
    assert new_admin != msg.sender, "already the admin"
    self._no_co_admin_but(new_admin)
    self.pending_admin = new_admin
    log AdminOffered(admin=msg.sender, candidate=new_admin)


@external
def cancel_admin_transfer():
    """@notice Withdraw a pending admin handover."""
    self._only_admin()
    candidate: address = self.pending_admin
    assert candidate != empty(address), "no pending admin"
    self.pending_admin = empty(address)
    log AdminOfferCancelled(admin=msg.sender, candidate=candidate)


@external
def accept_admin():
    """@notice Second step of an admin handover: the admin position and its role bits move.
    @dev Refused while a co-admin other than the candidate holds the admin role."""
    assert msg.sender == self.pending_admin and msg.sender != empty(address), "not the pending admin"
    self._no_co_admin_but(msg.sender)
    if self.roles[msg.sender] & self.admin_role != 0:
        self.co_admins -= 1  # the co-admin becomes the admin
    previous: address = self.admin
    bits: uint256 = self.admin_roles
    old_roles: uint256 = self.roles[previous] & ~bits
    new_roles: uint256 = self.roles[msg.sender] | bits
    self.roles[previous] = old_roles
    self.roles[msg.sender] = new_roles
    self.admin = msg.sender
    self.pending_admin = empty(address)
    log AdminChanged(previous=previous, admin=msg.sender)
    log RolesChanged(account=previous, actor=msg.sender, roles=old_roles)
    log RolesChanged(account=msg.sender, actor=msg.sender, roles=new_roles)


@external
def set_profile(uri: String[256]):
    """@notice Publish where this member's node can be reached (members only)."""
    assert self.roles[msg.sender] != 0, "missing role"
    self.profile[msg.sender] = uri
    log ProfileSet(account=msg.sender, uri=uri)


@internal
@pure
def _check_name(name: String[64]):
    """No byte of the name below 0x20 or equal to 0x7f (the bytes past its end count as
    spaces). Each 32-byte word is tested at once: a byte below n exists iff
    (w - ONES * n) & ~w & HIGHS != 0 (exact for n <= 128)."""
    raw: Bytes[96] = concat(convert(name, Bytes[64]), empty(bytes32))
    n: uint256 = len(name)
    for i: uint256 in range(2):
        if i * 32 >= n:
            break
        w: uint256 = convert(extract32(raw, i * 32), uint256)
        if n < (i + 1) * 32:
            w = w | ((ONES * 32) >> ((n - i * 32) * 8))  # padding: spaces
        low: uint256 = unsafe_sub(w, ONES * 32) & ~w & HIGHS
        dels: uint256 = w ^ (ONES * 127)
        assert low == 0 and unsafe_sub(dels, ONES) & ~dels & HIGHS == 0, "bad name"


@external
def register(id: bytes32, kind: uint256, content_digest: bytes32, parents: DynArray[bytes32, MAX_PARENTS], metadata_digest: bytes32, name: String[64]):
    """@notice Register artefact `id` of `kind` in the kind's initial state; the sender owns it.
    @dev `id` must be keccak256(abi_encode(sender, kind, content_digest, metadata_digest)),
         so nobody can take the id another member's registration will use. Parents must be
         strictly increasing (no duplicates), known, not revoked, of a kind the lifecycle
         allows as a parent of `kind`."""
    assert id == keccak256(abi_encode(msg.sender, kind, content_digest, metadata_digest)), "artefact id mismatch"
    assert self._artefacts[id] == 0, "artefact exists"
    config: uint256 = self.kinds[kind]
    assert config != 0, "unknown kind"
    assert self.roles[msg.sender] & (config >> 8) != 0, "missing role"
    if len(parents) > 0:
        allowed: uint256 = self.kind_parents[kind]
        prev: uint256 = 0
        for p: bytes32 in parents:
            pv: uint256 = convert(p, uint256)
            assert pv > prev, "duplicate or unsorted parents"
            prev = pv
            packed: uint256 = self._artefacts[p]
            assert packed != 0, "parent unknown"
            assert packed & 255 != REVOKED, "parent revoked"
            assert allowed & (1 << ((packed >> 8) & 255)) != 0, "parent kind not allowed"
    self._check_name(name)
    state: uint256 = config & 255
    self._artefacts[id] = (convert(msg.sender, uint256) << 96) | (block.number << 24) | EXISTS | (kind << 8) | state
    log Registered(id=id, actor=msg.sender, kind=kind, state=state, content_digest=content_digest, metadata_digest=metadata_digest, parents=parents, name=name)


@external
def transition(id: bytes32, to_state: uint256, evidence_digest: bytes32):
    """@notice Move artefact `id` to `to_state` if the rule of the cell allows the sender."""
    assert to_state > 0 and to_state < 256, "bad state"
    packed: uint256 = self._artefacts[id]
    assert packed != 0, "unknown artefact"
    state: uint256 = packed & 255
    assert state != REVOKED, "artefact revoked"
    kind: uint256 = (packed >> 8) & 255
    allowed: uint256 = self.rules[(kind << 16) | (state << 8) | to_state]
    assert allowed != 0, "transition not allowed"
    r: uint256 = self.roles[msg.sender]
    if r & allowed & ROLE_BITS == 0:
        assert (allowed >> 255) == 1 or r & (allowed >> 120) & ROLE_BITS != 0, "missing role"
        assert msg.sender == convert(packed >> 96, address), "not the owner"
    self._artefacts[id] = (packed & ~convert(255, uint256)) | to_state
    log Transitioned(id=id, actor=msg.sender, from_state=state, to_state=to_state, evidence_digest=evidence_digest)


@external
def anchor(id: bytes32, root: bytes32, count: uint256, metadata_digest: bytes32):
    """@notice Put the Merkle root of `count` records about artefact `id` on chain.
    @dev Only the owner and the roles the lifecycle names for the kind may anchor, never on
         a revoked artefact, at most MAX_ANCHOR_RECORDS records; the event records the
         sender, and readers look anchors up per sender."""
    assert count <= MAX_ANCHOR_RECORDS, "too many records"
    packed: uint256 = self._artefacts[id]
    assert packed != 0, "unknown artefact"
    assert packed & 255 != REVOKED, "artefact revoked"
    if msg.sender != convert(packed >> 96, address):
        assert self.roles[msg.sender] & self.kind_anchors[(packed >> 8) & 255] != 0, "missing role"
    log Anchored(id=id, actor=msg.sender, root=root, count=count, metadata_digest=metadata_digest)


@external
@view
def artefact(id: bytes32) -> (address, uint256, uint256, uint256):
    """@notice (owner, kind, state, registered block); reverts for an unknown id."""
    packed: uint256 = self._artefacts[id]
    assert packed != 0, "unknown artefact"
    return convert(packed >> 96, address), (packed >> 8) & 255, packed & 255, (packed >> 24) & 18446744073709551615
