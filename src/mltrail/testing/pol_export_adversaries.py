"""Cheaters who attack the exported loop proof: its programs, its loss, the verifier's paths.

Owns adversaries outside the recipe :mod:`mltrail.pol.loopexport` was built against. Each
takes an honest exported proof and rewrites one thing, re-pinning digests and re-chaining
the manifest so that only the program checks or the replay can notice:

* :func:`tamper_program` — the model's JSON graph made to run code when loaded or run:
  ``expr`` (a symbolic size that is Python for sympy's ``eval``), ``guards`` (guards code,
  which ``ExportedProgram.module()`` would ``exec``), ``call`` (a node calling
  ``torch.save``), ``custom_op`` (an operator of a namespace a patching module would
  register), ``treespec`` (an input spec whose ``defaultdict`` context imports a module),
  ``constant_obj`` (a custom-object input) — each writes ``canary`` if it ever runs; and
  ``swap`` (tanh replaced by relu: a program whose graph differs from what was trained);
* :func:`foreign_loss` — the manifest's vocabulary loss renamed (outside the vocabulary);
* :func:`patching_code_folder` — a ``--code`` folder holding ``sitecustomize.py``, a
  ``.pth`` file, a package named ``torch`` and one named ``mltrail``, each writing
  ``canary`` when imported.

Nothing in the prover or verifier uses this module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mltrail.pol.bundle import read_manifest
from mltrail.pol.loopspec import LoopSpec, LossSpec
from mltrail.provenance.digest import digest_bytes, digest_json
from mltrail.testing.pol_loop_adversaries import _rechain

KINDS = ("expr", "guards", "call", "custom_op", "treespec", "constant_obj", "swap")


def _payload(canary: Path) -> str:
    return f"__import__('pathlib').Path({str(canary)!r}).write_text('ran')"


def _nodes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = doc["graph_module"]["graph"]["nodes"]
    return out


def _edit(doc: dict[str, Any], kind: str, canary: Path) -> None:
    nodes = _nodes(doc)
    if kind == "expr":
        doc["range_constraints"] = {"s0": {"min_val": 1, "max_val": 8}}
        for v in doc["graph_module"]["graph"]["tensor_values"].values():
            v["sizes"][0] = {"as_expr": {"expr_str": _payload(canary), "hint": None}}
            break
    elif kind == "guards":
        doc["guards_code"] = [_payload(canary)]
    elif kind == "call":
        nodes[0]["target"] = "torch.save"
    elif kind == "custom_op":
        nodes[0]["target"] = "torch.ops.mltrail_patch.replay.default"
    elif kind == "treespec":
        ctx = json.dumps({"default_factory_module": "os", "default_factory_name": "getcwd",
                          "dict_context": []})
        spec = [1, {"type": "collections.defaultdict", "context": ctx, "children_spec": []}]
        doc["graph_module"]["module_call_graph"][0]["signature"]["in_spec"] = json.dumps(spec)
    elif kind == "constant_obj":
        doc["graph_module"]["signature"]["input_specs"].append(
            {"custom_obj": {"arg": {"name": "obj"}, "custom_obj_name": "evil"}})
    elif kind == "swap":
        for n in nodes:
            if n["target"] == "torch.ops.aten.tanh.default":
                n["target"] = "torch.ops.aten.relu.default"
    else:
        raise ValueError(kind)


def tamper_program(out: Path, honest: Path, kind: str, canary: Path) -> Path:
    """A copy of ``honest`` whose model program is rewritten (``kind`` of :data:`KINDS`),
    its digest re-pinned in the header and the manifest re-chained."""
    shutil.copytree(honest, out)
    man = read_manifest(out)
    spec = man.header.training
    assert isinstance(spec, LoopSpec) and spec.program is not None
    path = out / spec.program.model.file
    doc = json.loads(path.read_bytes())
    _edit(doc, kind, canary)
    raw = json.dumps(doc).encode()
    path.write_bytes(raw)
    model = spec.program.model.model_copy(update={"digest": digest_bytes(raw)})
    spec = spec.model_copy(update={"program": spec.program.model_copy(update={"model": model})})
    return _repin(out, man, spec)


def foreign_loss(out: Path, honest: Path, name: str = "exec") -> Path:
    """A copy of ``honest`` whose vocabulary loss is renamed to ``name``, re-chained."""
    shutil.copytree(honest, out)
    man = read_manifest(out)
    spec = man.header.training
    assert isinstance(spec, LoopSpec)
    return _repin(out, man, spec.model_copy(update={"loss": LossSpec(name=name)}))


def _repin(out: Path, man: Any, spec: LoopSpec) -> Path:
    header = man.header.model_copy(update={"training": spec})
    fixed = man.model_copy(update={"header": header,
                                   "header_digest": digest_json(header.model_dump())})
    _rechain(out, fixed)
    return out


def patching_code_folder(folder: Path, canary: Path,
                         packages: tuple[str, ...] = ("torch", "mltrail", "safetensors")
                         ) -> Path:
    """A ``--code`` folder that patches any Python process putting it on its path (a
    package named like ``mltrail`` also shadows the pinned modules the verifier looks up,
    so a trusted-code proof that pins one of mltrail's is refused with exit 2)."""
    folder.mkdir(parents=True, exist_ok=True)
    line = _payload(canary) + "\n"
    (folder / "sitecustomize.py").write_text(line)
    (folder / "usercustomize.py").write_text(line)
    (folder / "zz_patch.pth").write_text("import sys; " + line)
    for pkg in packages:
        (folder / pkg).mkdir(exist_ok=True)
        (folder / pkg / "__init__.py").write_text(line)
    return folder
