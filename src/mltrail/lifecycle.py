"""Lifecycles as data: kinds, states, transitions and roles from a YAML file.

The file is validated here (a malformed one is refused with its line and the reason)
and compiled into the numeric tables the ArtefactRegistry contract enforces. Python
never re-implements the rules: it uses this model only to encode names as codes and to
explain a refusal the contract already made.

Codes: roles are bits (``1 << i`` in file order); kinds are 1..n in file order; a
kind's states are 1..m in file order, except the terminal state, which is 255.
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


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Kind:
    name: str
    code: int
    initial: str
    register_roles: tuple[str, ...]
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]

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

    def contract_tables(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """(rule keys, rule masks, kind ids, kind configs) for ``publish_lifecycle``."""
        keys: list[int] = []
        masks: list[int] = []
        for k in self.kinds.values():
            for source in k.states:
                if source == self.terminal:
                    continue
                for target in k.states:
                    roles = k.allowed(source, target)
                    if roles:
                        keys.append(k.code << 16 | k.state_code(source) << 8 | k.state_code(target))
                        masks.append(self.role_mask(roles))
        ids = [k.code for k in self.kinds.values()]
        configs = [self.role_mask(k.register_roles) << 8 | k.state_code(k.initial)
                   for k in self.kinds.values()]
        return keys, masks, ids, configs


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records each mapping's line as ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
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
    if len(roles) > 200:
        raise _fail(source, top, "at most 200 roles")
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
        extra = set(spec) - {"initial", "register", "states", "transitions", "__line__"}
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
            if not isinstance(t, dict) or set(t) - {"from", "to", "roles", "__line__"}:
                raise _fail(source, tline, "a transition is {from, to, roles}")
            src, dst = t.get("from"), t.get("to")
            if src != WILDCARD and src not in states:
                raise _fail(source, tline, f"unknown state {src!r} in {name}")
            if dst not in states:
                raise _fail(source, tline, f"unknown state {dst!r} in {name}")
            if src == terminal:
                raise _fail(source, tline, f"{terminal!r} is terminal: no transition may leave it")
            troles = _names(t.get("roles"), "transition roles", source, tline)
            for r in troles:
                if r not in roles:
                    raise _fail(source, tline, f"unknown role {r!r}")
            transitions.append(Transition(src, dst, troles))
        code = len(kinds) + 1
        if code > 32:
            raise _fail(source, line, "at most 32 kinds")
        kinds[str(name)] = Kind(str(name), code, initial, register, states, tuple(transitions),
                                _terminal=terminal)
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
