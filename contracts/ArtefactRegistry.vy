# pragma version ~=0.4.3
"""
@title ArtefactRegistry
@notice Every dataset, model and service is a state machine held here. The admin loads a
        lifecycle (kinds, transitions, role masks); members with the right roles register
        artefacts and move them between states. One packed storage slot per artefact;
        digests, parents, evidence and actors live in events, so history comes from logs.
@dev    Packed artefact slot: owner << 96 | registered_block << 24 | 1 << 16 | kind << 8 | state.
        Rule key: kind << 16 | from_state << 8 | to_state -> mask of roles allowed.
        Kind config: register_role_mask << 8 | initial_state (0 = unknown kind).
        State 255 is terminal (revoked): nothing leaves it.
"""

MAX_PARENTS: constant(uint256) = 32
MAX_RULES: constant(uint256) = 256
MAX_DOC: constant(uint256) = 16384
REVOKED: constant(uint256) = 255
EXISTS: constant(uint256) = 65536

event Registered:
    id: indexed(bytes32)
    actor: indexed(address)
    kind: uint256
    state: uint256
    content_digest: bytes32
    metadata_digest: bytes32
    parents: DynArray[bytes32, MAX_PARENTS]

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

event LifecyclePublished:
    digest: indexed(bytes32)
    actor: indexed(address)
    document: Bytes[MAX_DOC]

admin: public(address)
pending_admin: public(address)
roles: public(HashMap[address, uint256])
rules: public(HashMap[uint256, uint256])
kinds: public(HashMap[uint256, uint256])
lifecycle_digest: public(bytes32)
_artefacts: HashMap[bytes32, uint256]


@deploy
def __init__(admin_roles: uint256):
    self.admin = msg.sender
    self.roles[msg.sender] = admin_roles
    log AdminChanged(previous=empty(address), admin=msg.sender)
    log RolesChanged(account=msg.sender, actor=msg.sender, roles=admin_roles)


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "admin only"


@external
def publish_lifecycle(digest: bytes32, document: Bytes[MAX_DOC], rule_keys: DynArray[uint256, MAX_RULES], rule_masks: DynArray[uint256, MAX_RULES], kind_ids: DynArray[uint256, 32], kind_configs: DynArray[uint256, 32]):
    """@notice Load the lifecycle: its document, transition rules and kinds.
    @dev Republishing overwrites the given keys only: to drop a rule, pass its key with mask 0."""
    self._only_admin()
    assert len(rule_keys) == len(rule_masks), "rules length mismatch"
    assert len(kind_ids) == len(kind_configs), "kinds length mismatch"
    for i: uint256 in range(len(rule_keys), bound=MAX_RULES):
        self.rules[rule_keys[i]] = rule_masks[i]
    for i: uint256 in range(len(kind_ids), bound=32):
        assert kind_ids[i] > 0 and kind_ids[i] < 256, "bad kind id"
        self.kinds[kind_ids[i]] = kind_configs[i]
    self.lifecycle_digest = digest
    log LifecyclePublished(digest=digest, actor=msg.sender, document=document)


@external
def set_roles(account: address, new_roles: uint256):
    """@notice Replace the role mask of `account`."""
    self._only_admin()
    assert account != empty(address), "zero address"
    self.roles[account] = new_roles
    log RolesChanged(account=account, actor=msg.sender, roles=new_roles)


@external
def grant_role(account: address, role: uint256):
    """@notice Add the roles in mask `role` to `account`."""
    self._only_admin()
    assert account != empty(address), "zero address"
    r: uint256 = self.roles[account] | role
    self.roles[account] = r
    log RolesChanged(account=account, actor=msg.sender, roles=r)


@external
def revoke_role(account: address, role: uint256):
    """@notice Remove the roles in mask `role` from `account`."""
    self._only_admin()
    r: uint256 = self.roles[account] & ~role
    self.roles[account] = r
    log RolesChanged(account=account, actor=msg.sender, roles=r)


@external
def transfer_admin(new_admin: address):
    """@notice First step of an admin handover; `new_admin` must accept."""
    self._only_admin()
    self.pending_admin = new_admin


@external
def accept_admin():
    """@notice Second step of an admin handover."""
    assert msg.sender == self.pending_admin, "not the pending admin"
    log AdminChanged(previous=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


@external
def register(id: bytes32, kind: uint256, content_digest: bytes32, parents: DynArray[bytes32, MAX_PARENTS], metadata_digest: bytes32):
    """@notice Register artefact `id` of `kind` in the kind's initial state.
    @dev `id` must be keccak256(abi_encode(sender, kind, content_digest, metadata_digest)),
         so nobody can take the id another member's registration will use."""
    assert id == keccak256(abi_encode(msg.sender, kind, content_digest, metadata_digest)), "artefact id mismatch"
    assert self._artefacts[id] == 0, "artefact exists"
    config: uint256 = self.kinds[kind]
    assert config != 0, "unknown kind"
    assert self.roles[msg.sender] & (config >> 8) != 0, "missing role"
    for p: bytes32 in parents:
        assert self._artefacts[p] != 0, "parent unknown"
    state: uint256 = config & 255
    self._artefacts[id] = (convert(msg.sender, uint256) << 96) | (block.number << 24) | EXISTS | (kind << 8) | state
    log Registered(id=id, actor=msg.sender, kind=kind, state=state, content_digest=content_digest, metadata_digest=metadata_digest, parents=parents)


@external
def transition(id: bytes32, to_state: uint256, evidence_digest: bytes32):
    """@notice Move artefact `id` to `to_state` if a role of the sender allows it."""
    assert to_state > 0 and to_state < 256, "bad state"
    packed: uint256 = self._artefacts[id]
    assert packed != 0, "unknown artefact"
    state: uint256 = packed & 255
    assert state != REVOKED, "artefact revoked"
    kind: uint256 = (packed >> 8) & 255
    allowed: uint256 = self.rules[(kind << 16) | (state << 8) | to_state]
    assert allowed != 0, "transition not allowed"
    assert self.roles[msg.sender] & allowed != 0, "missing role"
    self._artefacts[id] = (packed & ~convert(255, uint256)) | to_state
    log Transitioned(id=id, actor=msg.sender, from_state=state, to_state=to_state, evidence_digest=evidence_digest)


@external
def anchor(id: bytes32, root: bytes32, count: uint256, metadata_digest: bytes32):
    """@notice Put the Merkle root of `count` records about artefact `id` on chain."""
    assert self._artefacts[id] != 0, "unknown artefact"
    assert self.roles[msg.sender] != 0, "missing role"
    log Anchored(id=id, actor=msg.sender, root=root, count=count, metadata_digest=metadata_digest)


@external
@view
def artefact(id: bytes32) -> (address, uint256, uint256, uint256):
    """@notice (owner, kind, state, registered block); reverts for an unknown id."""
    packed: uint256 = self._artefacts[id]
    assert packed != 0, "unknown artefact"
    return convert(packed >> 96, address), (packed >> 8) & 255, packed & 255, (packed >> 24) & 18446744073709551615
