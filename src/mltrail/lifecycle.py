"""Lifecycles as data: kinds, states, transitions and roles from a YAML file.

The file is validated here (a malformed one is refused with its line and the reason)
and compiled into the numeric tables the ArtefactRegistry contract enforces. Python
never re-implements the rules: it uses this model only to encode names as codes and to
explain a refusal the contract already made.

Codes: roles are bits (``1 << i`` in file order); kinds are 1..n in file order; a
kind's states are 1..m in file order, except the terminal state, which is 255.

Who may take a transition (``by``): ``role`` (any holder of a listed role, the default),
``owner_and_role`` (a holder of a listed role on an artefact it registered) or ``owner``
(the registrant, whatever its roles). Per kind, ``parents`` names the kinds an artefact
may derive from and ``anchor`` the roles that may anchor on it besides its owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_bytes

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "lifecycles" / "default.yaml"
TERMINAL_CODE = 255
WILDCARD = "*"


BY = ("role", "owner_and_role", "owner")
OWNER_FLAG = 1 << 255  # rule value: the owner may take it without a role
OWNER_ROLES_SHIFT = 120  # rule value: bits 120..239 are roles that must also own the artefact
MAX_ROLES = 120


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    roles: tuple[str, ...]
    by: str = "role"


@dataclass(frozen=True)
class Rule:
    """Who may take one (from, to) cell: roles alone, roles on their own artefacts, owner."""

    roles: tuple[str, ...] = ()
    owner_roles: tuple[str, ...] = ()
    owner: bool = False

    def __bool__(self) -> bool:
        return bool(self.roles or self.owner_roles or self.owner)

    def describe(self) -> str:
        parts = [", ".join(self.roles)] if self.roles else []
        if self.owner_roles:
            parts.append(f"the owner holding {', '.join(self.owner_roles)}")
        if self.owner:
            parts.append("the owner")
        return " or ".join(parts) or "nobody"


@dataclass(frozen=True)
class Kind:
    name: str
    code: int
    initial: str
    register_roles: tuple[str, ...]
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    parents: tuple[str, ...] = ()
    anchor: tuple[str, ...] = ()

    def state_code(self, state: str) -> int:
        if state not in self.states:
            raise InputError(f"{self.name} has no state {state!r} "
                             f"(states: {', '.join(self.states)})")
        return TERMINAL_CODE if state == self._terminal else self.states.index(state) + 1

    def state_name(self, code: int) -> str:
        if code == TERMINAL_CODE:
            return self._terminal
        return self.states[code - 1] if 0 < code <= len(self.states) else f"#{code}"

    _terminal: str = field(default="revoked", compare=False)

    def allowed(self, source: str, target: str) -> tuple[str, ...]:
        """Roles the lifecycle lists for ``source -> target`` (empty if none)."""
        roles: list[str] = []
        for t in self.transitions:
            if t.target == target and t.source in (source, WILDCARD) and source != self._terminal:
                roles += [r for r in t.roles if r not in roles]
        return tuple(roles)

    def rule(self, source: str, target: str) -> Rule:
        """Who may take ``source -> target``, merged over every transition covering it."""
        roles: list[str] = []
        owner_roles: list[str] = []
        owner = False
        for t in self.transitions:
            if t.target == target and t.source in (source, WILDCARD) and source != self._terminal:
                if t.by == "owner":
                    owner = True
                dest = owner_roles if t.by == "owner_and_role" else roles
                dest += [r for r in t.roles if r not in dest]
        return Rule(tuple(roles), tuple(r for r in owner_roles if r not in roles), owner)


@dataclass(frozen=True)
class Lifecycle:
    roles: tuple[str, ...]
    kinds: dict[str, Kind]
    terminal: str
    document: bytes
    bindings: dict[str, dict[str, str]] = field(default_factory=dict)

    def bound_kind(self, section: str, key: str = "kind") -> str:
        """The kind a feature (``pol``, ``audit``) uses, by binding (``kind``, ``data_kind``)."""
        name = self.bindings.get(section, {}).get(key)
        if name is None:
            raise InputError(f"the lifecycle has no binding {section}.{key}",
                             hint=f"add 'bindings: {{{section}: {{{key}: ...}}}}' to the lifecycle")
        return name

    def bound_state(self, section: str, key: str) -> str:
        """The state a feature moves artefacts to, by its binding (e.g. ``pol``/``verified``)."""
        self.bound_kind(section)
        name = self.bindings[section].get(key)
        if name is None:
            raise InputError(f"the lifecycle has no binding {section}.{key}",
                             hint=f"name the state for {key!r} under bindings.{section}")
        return name

    @property
    def digest(self) -> str:
        return digest_bytes(self.document)

    def role_bit(self, role: str) -> int:
        if role not in self.roles:
            raise InputError(f"unknown role {role!r} (roles: {', '.join(self.roles)})")
        return 1 << self.roles.index(role)

    def role_mask(self, roles: tuple[str, ...] | list[str]) -> int:
        mask = 0
        for r in roles:
            mask |= self.role_bit(r)
        return mask

    def role_names(self, mask: int) -> list[str]:
        return [r for i, r in enumerate(self.roles) if mask >> i & 1]

    def kind(self, name: str) -> Kind:
        if name not in self.kinds:
            raise InputError(f"unknown kind {name!r} (kinds: {', '.join(self.kinds)})")
        return self.kinds[name]

    def kind_by_code(self, code: int) -> Kind:
        for k in self.kinds.values():
            if k.code == code:
                return k
        raise InputError(f"unknown kind code {code}")

    def rule_value(self, rule: Rule) -> int:
        """A cell's value in the contract's rule table (see the contract's @dev)."""
        return (self.role_mask(rule.roles)
                | self.role_mask(rule.owner_roles) << OWNER_ROLES_SHIFT
                | (OWNER_FLAG if rule.owner else 0))

    def contract_tables(self) -> tuple[list[int], ...]:
        """(rule keys, rule values, kind ids, kind configs, kind parents, kind anchors):
        the arguments of ``publish_lifecycle`` after the document, in this order."""
        keys: list[int] = []
        values: list[int] = []
        for k in self.kinds.values():
            for source in k.states:
                if source == self.terminal:
                    continue
                for target in k.states:
                    rule = k.rule(source, target)
                    if rule:
                        keys.append(k.code << 16 | k.state_code(source) << 8 | k.state_code(target))
                        values.append(self.rule_value(rule))
        kinds = list(self.kinds.values())
        ids = [k.code for k in kinds]
        configs = [self.role_mask(k.register_roles) << 8 | k.state_code(k.initial) for k in kinds]
        parents = [sum(1 << self.kinds[p].code for p in k.parents) for k in kinds]
        anchors = [self.role_mask(k.anchor) for k in kinds]
        return keys, values, ids, configs, parents, anchors

    @property
    def tables_digest(self) -> bytes:
        """keccak256 of the ABI-encoded tables: what the contract stores at publication."""
        from eth_abi import encode
        from eth_utils import keccak

        return keccak(encode(["uint256[]"] * 6, list(self.contract_tables())))


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that records each mapping's line as ``__line__`` (libyaml's C parser when
    PyYAML has it: 7x faster, and every command parses the home's lifecycle)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    """A mapping with its line; a key given twice is refused at its second line (YAML
    would keep the last silently: ``roles: [admin]`` then ``roles: [operator]``)."""
    loader.flatten_mapping(node)
    seen: set[str] = set()
    for key_node, _ in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        if key in seen or key == "__line__":
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}" if key in seen else "reserved key "
                "'__line__'", key_node.start_mark)
        seen.add(key)
    mapping: dict[str, Any] = {str(k): v for k, v in
                               loader.construct_mapping(node, deep=True).items()}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _fail(source: str, line: int | None, reason: str) -> InputError:
    where = f"{source}:{line}" if line else source
    return InputError(f"malformed lifecycle {where}: {reason}")


def _names(value: Any, what: str, source: str, line: int | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(source, line, f"{what} must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise _fail(source, line, f"{what} has duplicates")
    return tuple(value)


def _optional_names(value: Any, what: str, source: str, line: int | None) -> tuple[str, ...]:
    if value is None or value == []:
        return ()
    return _names(value, what, source, line)


MAX_DOCUMENT = 16384  # the contract's Bytes[MAX_DOC]


def parse(document: bytes, source: str = "<lifecycle>") -> Lifecycle:
    """Validate and compile a lifecycle document."""
    if len(document) > MAX_DOCUMENT:
        raise _fail(source, None, f"{len(document)} bytes; at most {MAX_DOCUMENT} go on chain")
    try:
        data = yaml.load(document.decode(), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise _fail(source, None, "not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(source, mark.line + 1 if mark else None, problem) from exc
    if not isinstance(data, dict):
        raise _fail(source, 1, "top level must be a mapping with roles, terminal and kinds")
    top = data.get("__line__", 1)
    unknown = set(data) - {"version", "roles", "terminal", "kinds", "bindings", "__line__"}
    if unknown:
        raise _fail(source, top, f"unknown keys: {', '.join(sorted(unknown))}")
    roles = _names(data.get("roles"), "roles", source, top)
    if len(roles) > MAX_ROLES:
        raise _fail(source, top, f"at most {MAX_ROLES} roles")
    terminal = data.get("terminal", "revoked")
    if not isinstance(terminal, str):
        raise _fail(source, top, "terminal must be a state name")
    kinds_raw = data.get("kinds")
    if not isinstance(kinds_raw, dict) or len(kinds_raw) <= 1:
        raise _fail(source, top, "kinds must be a non-empty mapping")
    kinds: dict[str, Kind] = {}
    for name, spec in kinds_raw.items():
        if name == "__line__":
            continue
        line = spec.get("__line__") if isinstance(spec, dict) else kinds_raw["__line__"]
        if not isinstance(spec, dict):
            raise _fail(source, line, f"kind {name!r} must be a mapping")
        extra = set(spec) - {"initial", "register", "states", "transitions", "parents", "anchor",
                             "__line__"}
        if extra:
            raise _fail(source, line, f"kind {name!r} has unknown keys: {', '.join(sorted(extra))}")
        states = _names(spec.get("states"), f"states of {name}", source, line)
        if len(states) > 250:
            raise _fail(source, line, f"kind {name!r} has more than 250 states")
        initial = spec.get("initial")
        if initial not in states:
            raise _fail(source, line, f"initial state {initial!r} of {name} is not in its states")
        if initial == terminal:
            raise _fail(source, line, f"initial state of {name} cannot be the terminal state")
        register = _names(spec.get("register"), f"register roles of {name}", source, line)
        for r in register:
            if r not in roles:
                raise _fail(source, line, f"unknown role {r!r} in register of {name}")
        transitions = []
        for t in spec.get("transitions") or []:
            tline = t.get("__line__", line) if isinstance(t, dict) else line
            if not isinstance(t, dict) or set(t) - {"from", "to", "roles", "by", "__line__"}:
                raise _fail(source, tline, "a transition is {from, to, roles, by}")
            by = t.get("by", "role")
            if by not in BY:
                raise _fail(source, tline, f"by must be one of {', '.join(BY)}, not {by!r}")
            src, dst = t.get("from"), t.get("to")
            if src != WILDCARD and src not in states:
                raise _fail(source, tline, f"unknown state {src!r} in {name}")
            if dst not in states:
                raise _fail(source, tline, f"unknown state {dst!r} in {name}")
            if src == terminal:
                raise _fail(source, tline, f"{terminal!r} is terminal: no transition may leave it")
            troles = (() if by == "owner" and t.get("roles") is None
                      else _names(t.get("roles"), "transition roles", source, tline))
            for r in troles:
                if r not in roles:
                    raise _fail(source, tline, f"unknown role {r!r}")
            transitions.append(Transition(src, dst, troles, by))
        anchor = _optional_names(spec.get("anchor"), f"anchor roles of {name}", source, line)
        for r in anchor:
            if r not in roles:
                raise _fail(source, line, f"unknown role {r!r} in anchor of {name}")
        parents = _optional_names(spec.get("parents"), f"parents of {name}", source, line)
        code = len(kinds) + 1
        if code > 32:
            raise _fail(source, line, "at most 32 kinds")
        kinds[str(name)] = Kind(str(name), code, initial, register, states, tuple(transitions),
                                parents, anchor, _terminal=terminal)
    for k in kinds.values():
        for p in k.parents:
            if p not in kinds:
                raise _fail(source, kinds_raw[k.name].get("__line__"),
                            f"unknown kind {p!r} in parents of {k.name}")
    bindings = _bindings(data.get("bindings"), kinds, source, top)
    lc = Lifecycle(roles, kinds, terminal, document, bindings)
    if len(lc.contract_tables()[0]) > 256:
        raise _fail(source, top, "more than 256 allowed (kind, from, to) cells")
    return lc


def _bindings(raw: Any, kinds: dict[str, Kind], source: str,
              top: int) -> dict[str, dict[str, str]]:
    """``bindings: {feature: {kind: K, <name>_kind: K2, <name>: state of K}}``, all checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(source, top, "bindings must be a mapping of feature -> {kind, states}")
    out: dict[str, dict[str, str]] = {}
    for section, spec in raw.items():
        if section == "__line__":
            continue
        line = spec.get("__line__", top) if isinstance(spec, dict) else top
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise _fail(source, line, f"binding {section!r} must be a mapping with a kind")
        kind = spec["kind"]
        if kind not in kinds:
            raise _fail(source, line, f"binding {section!r} names unknown kind {kind!r}")
        entry: dict[str, str] = {}
        for key, value in spec.items():
            if key == "__line__":
                continue
            if not isinstance(value, str):
                raise _fail(source, line, f"binding {section}.{key} must be a name")
            if key == "kind" or key.endswith("_kind"):
                if value not in kinds:
                    raise _fail(source, line,
                                f"binding {section}.{key} names unknown kind {value!r}")
            elif value not in kinds[kind].states:
                raise _fail(source, line, f"binding {section}.{key}: {kind} has no state {value!r}")
            entry[str(key)] = value
        out[str(section)] = entry
    return out


def load(path: str | Path | None = None) -> Lifecycle:
    """Read and validate a lifecycle file (the default one if ``path`` is None)."""
    p = Path(path) if path else DEFAULT_PATH
    if not p.is_file():
        raise InputError(f"lifecycle file not found: {p}")
    return parse(p.read_bytes(), str(p))
