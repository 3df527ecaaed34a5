"""The user's model, loss and transform as data: ``torch.export`` programs in a loop proof.

Owns both sides of the programs a loop proof carries instead of the prover's Python:

* the recorder's side, :func:`export_programs`: the model (``torch.export.export`` on a
  sample batch, batch dimension dynamic), a custom loss (exported on the model's output
  and the targets) unless it is one of the closed vocabulary :data:`LOSSES`, and the
  dataset's transform (exported on one item); each saved as the JSON graph of torch's
  export schema, plus any lifted tensor constants as safetensors — never a pickle;
* the verifier's side, :func:`load_program`: the JSON is checked *before* torch's
  deserializer sees it (:func:`check_program_json`: every call target an ``aten``
  operator or one of a few ``operator`` functions on sizes, every symbolic expression
  made of a closed set of tokens, every name an identifier, guards code (Python)
  discarded, no custom objects, no sub-graphs, node metadata dropped), the weights and
  constants are handed
  in as tensors (the deserializer never unpickles), and the loaded graph is checked
  again node by node;
* :func:`reinit` — the named initialisation scheme ``mltrail-fanin/1`` that re-draws every
  parameter from a seed and the parameter's name and shape alone, so a verifier checks
  checkpoint 0 without any of the prover's code.

``torch.export.load`` is never called: it unpickles (``torch.load(weights_only=False)``,
``pickle.loads``). This module never imports the prover's code and never judges a proof.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from mltrail.errors import InputError, VerificationError

MAX_PROGRAM_BYTES = 32 << 20
MAX_CONSTANT_VALUES = 1 << 16  # lifted constants: small tables, never a second model
INIT_SCHEME = "mltrail-fanin/1"

# ---------------------------------------------------------------- the loss vocabulary

F = nn.functional
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], dict[str, type | tuple[type, ...]]]] = {
    "cross_entropy": (F.cross_entropy, {"reduction": str, "ignore_index": int,
                                        "label_smoothing": (int, float)}),
    "nll_loss": (F.nll_loss, {"reduction": str, "ignore_index": int}),
    "mse_loss": (F.mse_loss, {"reduction": str}),
    "l1_loss": (F.l1_loss, {"reduction": str}),
    "smooth_l1_loss": (F.smooth_l1_loss, {"reduction": str, "beta": (int, float)}),
    "huber_loss": (F.huber_loss, {"reduction": str, "delta": (int, float)}),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits,
                                         {"reduction": str}),
    "binary_cross_entropy": (F.binary_cross_entropy, {"reduction": str}),
    "kl_div": (F.kl_div, {"reduction": str, "log_target": bool}),
}
_MODULE_LOSSES = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss",
                  "MSELoss": "mse_loss", "L1Loss": "l1_loss", "SmoothL1Loss": "smooth_l1_loss",
                  "HuberLoss": "huber_loss", "BCEWithLogitsLoss":
                  "binary_cross_entropy_with_logits", "BCELoss": "binary_cross_entropy",
                  "KLDivLoss": "kl_div"}


def vocabulary_loss(name: str, kwargs: Mapping[str, Any]) -> Callable[..., torch.Tensor]:
    """The torch loss ``name`` of :data:`LOSSES` with its checked keyword arguments
    (:class:`InputError` for anything outside the vocabulary)."""
    if name not in LOSSES:
        raise InputError(f"loss {name!r} is not in the vocabulary ({', '.join(LOSSES)}); "
                         "a loss of your own is exported with the model")
    fn, allowed = LOSSES[name]
    for key, val in kwargs.items():
        want = allowed.get(key)
        if want is None or isinstance(val, bool) and want is not bool or \
                not isinstance(val, want):
            raise InputError(f"{name}({key}={val!r}) is not an argument the vocabulary "
                             f"allows ({', '.join(allowed) or 'none'})")
        if key == "reduction" and val not in ("mean", "sum"):
            raise InputError(f"{name}: reduction is 'mean' or 'sum'")
        if isinstance(val, float) and not math.isfinite(val):
            raise InputError(f"{name}({key}=…) must be finite")
    args = dict(kwargs)
    return lambda out, target: fn(out, target, **args)


def loss_name_of(loss: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, kwargs)`` when ``loss`` is a vocabulary loss: its name (optionally
    ``(name, kwargs)``), the ``torch.nn.functional`` function or a ``torch.nn`` loss
    module with default class weights; else None (a loss of the user's own)."""
    if isinstance(loss, str) and loss in LOSSES:
        return loss, {}
    if isinstance(loss, tuple) and len(loss) == 2 and isinstance(loss[0], str):
        vocabulary_loss(loss[0], loss[1])
        return loss[0], dict(loss[1])
    for name, (fn, _) in LOSSES.items():
        if loss is fn:
            return name, {}
    if isinstance(loss, nn.Module) and type(loss).__name__ in _MODULE_LOSSES and \
            type(loss).__module__.startswith("torch.nn"):
        name = _MODULE_LOSSES[type(loss).__name__]
        if getattr(loss, "weight", None) is not None or \
                getattr(loss, "pos_weight", None) is not None:
            return None  # class weights are tensors: exported with the loss instead
        _, allowed = LOSSES[name]
        kwargs = {k: getattr(loss, k) for k in allowed if hasattr(loss, k)}
        return name, kwargs
    return None


# ---------------------------------------------------------------- recording


class LossModule(nn.Module):
    """A loss function ``fn(output, target)`` as a module, so that torch.export traces it."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target)


class TransformModule(nn.Module):
    """A per-item transform ``fn(inputs)`` as a module."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(inputs)


def export(module: nn.Module, args: tuple[torch.Tensor, ...], dynamic_batch: bool
           ) -> torch.export.ExportedProgram:
    """``torch.export.export`` (training IR) with the first dimension of every argument
    dynamic when ``dynamic_batch``; an :class:`InputError` naming the cause if it fails."""
    import warnings

    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    shapes = tuple({0: batch} for _ in args) if dynamic_batch else None
    try:
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            return torch.export.export(module, args, dynamic_shapes=shapes)
    except Exception as exc:  # torch raises many kinds; the user needs the first line
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise InputError(f"torch.export cannot capture {type(module).__name__}: {why}. "
                         "Make the forward traceable, or record in trusted-code mode "
                         "(trusted_code=True, docs/pol-your-loop.md)") from exc


def serialize(ep: torch.export.ExportedProgram) -> tuple[bytes, dict[str, torch.Tensor]]:
    """The program's JSON graph (checked as a verifier will check it) and its lifted
    tensor constants; weights are not included (they are the checkpoints)."""
    from torch._export.serde.serialize import serialize as torch_serialize

    constants: dict[str, torch.Tensor] = {}
    for name, value in ep.constants.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"the exported program holds a {type(value).__name__} constant "
                             f"({name}); only tensors can cross as data")
        constants[name] = value.detach().cpu().contiguous()
    if sum(t.numel() for t in constants.values()) > MAX_CONSTANT_VALUES:
        raise InputError("the exported program holds more than "
                         f"{MAX_CONSTANT_VALUES:,} constant values; register large tables "
                         "as buffers (they are checkpointed)")
    raw = torch_serialize(ep).exported_program
    assert isinstance(raw, bytes)
    check_program_json(raw)  # the recorder refuses what a verifier would refuse
    return raw, constants


# ---------------------------------------------------------------- loading, untrusted

_TARGET = re.compile(r"^torch\.ops\.aten\.[a-z_][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_OPERATORS = {"getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow",
              "eq", "ne", "lt", "le", "gt", "ge"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FQN = re.compile(r"^[A-Za-z_0-9][A-Za-z0-9_]*(\.[A-Za-z_0-9][A-Za-z0-9_]*)*$")
_EXPR_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<id>[A-Za-z_]\w*)|(?P<str>'[su]\d+')|"
                         r"(?P<op>[(),=+\-*/]))")
_EXPR_NAMES = {"Symbol", "Integer", "Add", "Mul", "Pow", "Min", "Max", "Mod", "FloorDiv",
               "CeilDiv", "CleanDiv", "PythonMod", "ModularIndexing", "Eq", "Ne", "Lt",
               "Le", "Gt", "Ge", "positive", "integer", "nonnegative", "True", "False",
               "IntTrueDiv", "PowByNatural"}
_NAME_KEYS = {"name", "as_name", "parameter_name", "buffer_name", "tensor_constant_name",
              "fqn"}
_REFUSED_KEYS = {"as_custom_obj", "as_custom_objs", "custom_obj", "as_graph", "as_operator",
                 "as_optional_tensors", "token", "as_sym_float", "as_sym_floats",
                 "user_input_mutation", "gradient_to_parameter", "gradient_to_user_input",
                 "loss_output"}
_VERIFIERS = {"", "ATEN", "TRAINING"}


def _check_expr(expr: str) -> None:
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise VerificationError(f"program: symbolic expression {expr[:60]!r} holds "
                                    "something other than sizes")
        if m.group("id") and m.group("id") not in _EXPR_NAMES:
            raise VerificationError(f"program: symbolic expression names {m.group('id')!r}")
        pos = m.end()


def _check_treespec(spec: str) -> None:
    try:
        _, tree = json.loads(spec)
    except (ValueError, TypeError) as exc:
        raise VerificationError("program: malformed input/output spec") from exc

    def walk(node: Any) -> None:
        if not isinstance(node, dict) or set(node) != {"type", "context", "children_spec"}:
            raise VerificationError("program: malformed input/output spec")
        if node["type"] not in (None, "builtins.tuple", "builtins.list", "builtins.dict"):
            raise VerificationError(f"program: inputs or outputs of type {node['type']!r}")
        ctx = node["context"]
        if ctx is not None:
            parsed = json.loads(ctx) if isinstance(ctx, str) else None
            if parsed is not None and not (isinstance(parsed, list) and all(
                    isinstance(c, str) and _IDENT.match(c) for c in parsed)):
                raise VerificationError("program: malformed input/output spec")
        for child in node["children_spec"]:
            walk(child)

    walk(tree)


def check_program_json(raw: bytes) -> dict[str, Any]:
    """The program's JSON, refused (:class:`VerificationError`) unless everything in it is
    what a traced model needs; node metadata (stack traces, module types) and guards
    code (Python source) dropped. Returns the cleaned document."""
    if len(raw) > MAX_PROGRAM_BYTES:
        raise VerificationError("program: larger than any model graph")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError("program: not JSON") from exc
    if not isinstance(doc, dict) or "graph_module" not in doc:
        raise VerificationError("program: not an exported program")
    if not isinstance(doc.get("guards_code", []), list):
        raise VerificationError("program: malformed guards")
    doc["guards_code"] = []  # Python source that .module() would exec: discarded, never run
    if not set(doc.get("verifiers") or []) <= _VERIFIERS:
        raise VerificationError(f"program: verifiers {doc.get('verifiers')!r}")
    for sym in doc.get("range_constraints") or {}:
        if not re.match(r"^[su]\d+$", sym):
            raise VerificationError(f"program: range constraint on {sym!r}")

    def walk(obj: Any, key: str | None) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in _REFUSED_KEYS and v not in (None, [], {}):
                    raise VerificationError(f"program: holds {k!r}: refused")
                if k == "metadata" and isinstance(v, dict):
                    obj[k] = {}
                    continue
                if k == "target" and isinstance(v, str):
                    if not (
                            _TARGET.match(v) or (v.startswith("_operator.")
                                                 and v.split(".", 1)[1] in _OPERATORS)):
                        raise VerificationError(f"program: calls {str(v)[:80]!r}, not an aten "
                                                "operator")
                elif k == "expr_str":
                    _check_expr(str(v))
                elif k in ("in_spec", "out_spec"):
                    _check_treespec(str(v))
                elif k == "treespec_namedtuple_fields" and v:
                    raise VerificationError("program: named tuples: refused")
                elif k in _NAME_KEYS and isinstance(v, str) and not _FQN.match(v) and not (
                        k == "fqn" and v == ""):
                    raise VerificationError(f"program: name {v[:60]!r} is not an identifier")
                elif k == "forward_arg_names" and v is not None and not all(
                        isinstance(a, str) and _IDENT.match(a) for a in v):
                    raise VerificationError("program: argument names are not identifiers")
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif isinstance(obj, str) and key == "as_string" and len(obj) > 64:
            raise VerificationError("program: long string argument")

    walk(doc, None)
    return doc


def load_program(raw: bytes, state: Mapping[str, torch.Tensor],
                 constants: Mapping[str, torch.Tensor]) -> nn.Module:
    """The trainable module of an exported program from untrusted bytes: JSON checked,
    weights and constants given as tensors (nothing unpickled), every node of the loaded
    graph an aten operator. ``state`` names the parameters and buffers it must take
    (exactly). :class:`VerificationError` when the program is refused or does not fit."""
    import operator

    from torch._export.serde.serialize import SerializedArtifact, deserialize

    doc = check_program_json(raw)
    sig = doc["graph_module"].get("signature", {})
    names, params = [], set()
    for spec in sig.get("input_specs", []):
        kind, body = next(iter(spec.items()))
        if kind == "parameter":
            names.append(body["parameter_name"])
            params.add(body["parameter_name"])
        elif kind == "buffer":
            names.append(body["buffer_name"])
        elif kind not in ("user_input", "tensor_constant", "constant_input"):
            raise VerificationError(f"program: input of kind {kind!r}: refused")
    if sorted(names) != sorted(state):
        missing = sorted(set(state) - set(names))[:3]
        extra = sorted(set(names) - set(state))[:3]
        raise VerificationError(f"program: its parameters and buffers are not the "
                                f"checkpoint's (missing {missing}, unexpected {extra})")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = deserialize(SerializedArtifact(  # tensors given: nothing is unpickled
                json.dumps(doc).encode(),
                {k: nn.Parameter(v.detach().clone()) if k in params else v.detach().clone()
                 for k, v in state.items()},  # type: ignore[arg-type]
                {k: v.clone() for k, v in constants.items()}, b""))  # type: ignore[arg-type]
            module = ep.module()
    except VerificationError:
        raise
    except Exception as exc:  # torch's deserializer on checked input: report, never trust
        raise VerificationError(f"program: cannot be loaded: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}"
                                ) from exc
    allowed_ops = {getattr(operator, o) for o in _OPERATORS}
    for node in module.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        tgt = node.target
        if node.op == "call_module" and isinstance(tgt, str):
            continue  # unflattened submodules are checked below, node by node
        if node.op != "call_function" or not (
                (isinstance(tgt, torch._ops.OpOverload) and tgt.namespace == "aten")
                or tgt in allowed_ops):
            raise VerificationError(f"program: node {node.name} calls {tgt!r}: refused")
    for sub in module.modules():
        if sub is not module and isinstance(sub, torch.fx.GraphModule):
            for node in sub.graph.nodes:
                if node.op == "call_function" and not (
                        isinstance(node.target, torch._ops.OpOverload)
                        and node.target.namespace == "aten" or node.target in allowed_ops):
                    raise VerificationError(f"program: node {node.name} calls "
                                            f"{node.target!r}: refused")
    return module


def same_function(program: nn.Module, model: nn.Module, args: tuple[torch.Tensor, ...]
                  ) -> bool:
    """The program and (a copy of) the eager model give bitwise the same output and the
    same gradients on ``args`` from the same RNG state (the recorder's self-check)."""
    twin = copy.deepcopy(model)
    program.load_state_dict(twin.state_dict())
    outs = []
    for m in (twin, program):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out = m(*args)
            out.float().sum().backward()
        grads = [p.grad for _, p in sorted(m.named_parameters())]
        outs.append((out.detach(), grads))
    (a, ga), (b, gb) = outs
    return a.shape == b.shape and bool(torch.equal(a, b)) and len(ga) == len(gb) and all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(ga, gb, strict=True))


# ---------------------------------------------------------------- the init scheme


def _param_seed(seed: int, name: str) -> int:
    h = hashlib.sha256(f"{INIT_SCHEME}:{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


def reinit(params: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """``mltrail-fanin/1``: every parameter drawn from its name, shape and ``seed`` alone.
    Two or more dimensions: uniform(±1/√fan_in) with fan_in the product of all but the
    first dimension (PyTorch's default for linear and convolution layers); one dimension:
    ones for a ``weight`` (a norm's scale), zeros otherwise (biases); zero dimensions:
    zeros. Returned in float32, cast to each parameter's dtype."""
    out: dict[str, torch.Tensor] = {}
    for name, p in params.items():
        shape = tuple(p.shape)
        if len(shape) >= 2:
            fan_in = max(1, math.prod(shape[1:]))
            g = torch.Generator().manual_seed(_param_seed(seed, name))
            bound = 1.0 / math.sqrt(fan_in)
            t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
        elif len(shape) == 1 and name.rpartition(".")[2] == "weight":
            t = torch.ones(shape, dtype=torch.float64)
        else:
            t = torch.zeros(shape, dtype=torch.float64)
        out[name] = t.to(p.dtype)
    return out
