"""Import provenance teams already keep: DVC pipelines (``dvc.lock``) and MLflow runs.

Each DVC stage and each MLflow run becomes a captured step (see
:mod:`mltrail.provenance.capture`): the files are re-hashed with SHA-256 here, never
trusted from the tool's own records; a DVC file whose MD5 no longer matches ``dvc.lock``
is refused. Reads the tools' files and stores; never writes them.

A DVC output's kind, first rule that applies: ``out_kinds[path]`` (``--out-kind``),
``stage_kinds[stage]`` (``--stage-kind``), ``kind`` when given (``--kind``), else
``model`` for a file with a model suffix (:data:`MODEL_SUFFIXES`) or a folder holding
one, and ``dataset`` for anything else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mltrail.errors import InputError, RefusedError
from mltrail.provenance.capture import Activity, StepResult

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

CODE_SUFFIXES = frozenset({".py", ".sh", ".ipynb", ".r", ".jl", ".sql"})
MODEL_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".pkl",
                            ".pickle", ".joblib", ".h5", ".hdf5", ".keras", ".pb", ".tflite",
                            ".gguf", ".mlmodel", ".pmml", ".cbm", ".xgb"})
MAX_LOCK = 16 << 20


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class DvcEntry(BaseModel):
    """One dep or out of a stage in ``dvc.lock`` (DVC's other fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    path: str
    md5: str | None = None


class DvcStage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cmd: str | list[str] | None = None
    deps: list[DvcEntry] = Field(default_factory=list)
    outs: list[DvcEntry] = Field(default_factory=list)
    params: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


class DvcLock(BaseModel):
    """The parts of ``dvc.lock`` (schema 2.0) the import reads."""

    model_config = ConfigDict(extra="ignore")
    stages: dict[str, DvcStage] = Field(min_length=1)


def _load_lock(lock: Path) -> DvcLock:
    if not lock.is_file():
        raise InputError(f"no dvc.lock at {lock}")
    if lock.stat().st_size > MAX_LOCK:
        raise InputError(f"{lock} is larger than {MAX_LOCK} bytes")
    try:
        doc = yaml.safe_load(lock.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{lock} is not YAML: {str(exc).splitlines()[0]}") from exc
    try:
        return DvcLock.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "top level"
        raise InputError(f"{lock} is not a dvc.lock: {where}: {err['msg']}") from None


def _check_md5(root: Path, stage: str, entry: DvcEntry) -> Path:
    p = (root / entry.path).resolve()
    if not p.is_relative_to(root):
        raise InputError(f"dvc.lock stage {stage!r}: path {entry.path!r} leaves the repo")
    if not p.exists():
        raise InputError(f"dvc.lock stage {stage!r}: {entry.path} not found")
    if p.is_file() and entry.md5 is not None and _md5(p) != entry.md5:
        raise RefusedError(f"{entry.path} changed since dvc.lock recorded stage "
                           f"{stage!r} (md5 differs); run 'dvc repro' first")
    return p


def _order(stages: dict[str, DvcStage], root: Path) -> list[str]:
    """Stages so that each comes after the stages producing its deps."""
    producer = {str((root / o.path).resolve()): name for name, st in stages.items()
                for o in st.outs}
    done: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in stack:
            raise InputError(f"dvc.lock stages form a cycle through {name!r}")
        for d in stages[name].deps:
            up = producer.get(str((root / d.path).resolve()))
            if up and up != name:
                visit(up, (*stack, name))
        done.append(name)

    for name in stages:
        visit(name, ())
    return done


def looks_like_model(path: Path) -> bool:
    """A file with a model suffix, or a folder holding one (at most 10,000 entries looked
    at)."""
    if path.is_file():
        return path.suffix.lower() in MODEL_SUFFIXES
    for i, p in enumerate(path.rglob("*") if path.is_dir() else []):
        if i >= 10_000:
            break
        if p.suffix.lower() in MODEL_SUFFIXES and p.is_file():
            return True
    return False


def dvc_out_kind(stage: str, entry: str, path: Path, kind: str | None,
                 stage_kinds: dict[str, str], out_kinds: dict[str, str]) -> str:
    """The kind a DVC output is registered as (the rule in the module docstring)."""
    for given in (out_kinds.get(entry), stage_kinds.get(stage), kind):
        if given:
            return given
    return "model" if looks_like_model(path) else "dataset"


def import_dvc(led: Ledger, lock: str | Path, kind: str | None = None,
               stage_kinds: dict[str, str] | None = None,
               out_kinds: dict[str, str] | None = None,
               capture_env: bool = False) -> list[StepResult]:
    """Record every stage of ``dvc.lock`` as an activity (producers first)."""
    lock = Path(lock)
    known = {o.path for st in _load_lock(lock).stages.values() for o in st.outs}
    unknown = sorted(set(out_kinds or {}) - known)
    if unknown:
        raise InputError(f"--out-kind names no output of dvc.lock: {', '.join(unknown)}")
    stages = _load_lock(lock).stages
    root = lock.resolve().parent
    results = []
    for name in _order(stages, root):
        st = stages[name]
        deps = [_check_md5(root, name, d) for d in st.deps]
        outs = [_check_md5(root, name, o) for o in st.outs]
        if not outs:
            continue
        code = [d for d in deps if d.is_file() and d.suffix.lower() in CODE_SUFFIXES]
        data = [d for d in deps if d not in code]
        params: dict[str, Any] = {}
        for values in st.params.values():
            params.update(values or {})
        kinds = [dvc_out_kind(name, o.path, p, kind, stage_kinds or {}, out_kinds or {})
                 for o, p in zip(st.outs, outs, strict=True)]
        shown = str(lock.resolve()) if capture_env else lock.name
        act = Activity(name, data, outs, params, ledger=led, workdir=root, code=code,
                       output_kinds=kinds, capture_env=capture_env,
                       extra_internal={"dvc": {"stage": name, "cmd": st.cmd, "lock": shown}})
        with act:
            pass
        assert act.result is not None
        results.append(act.result)
    return results


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def _iso(ms: int | None) -> str:
    when = datetime.fromtimestamp((ms or 0) / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def import_mlflow(led: Ledger, run_id: str, tracking_uri: str,
                  kind: str = "model", capture_env: bool = False) -> StepResult:
    """Record a finished local MLflow run: params, local input datasets, artefacts."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise InputError("MLflow is not installed: pip install 'mltrail[import]'") from exc
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as exc:
        raise InputError(f"MLflow run {run_id} not found at {tracking_uri}: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    if run.info.status != "FINISHED":
        raise RefusedError(f"MLflow run {run_id} is {run.info.status}, not FINISHED; "
                           "nothing registered")
    art_dir = _local_path(run.info.artifact_uri or "")
    if art_dir is None or not art_dir.is_dir():
        raise InputError(f"MLflow run {run_id}: artefacts are not in a local folder "
                         f"({run.info.artifact_uri})")
    outputs = sorted(p for p in art_dir.iterdir() if not p.name.startswith("."))
    if not outputs:
        raise InputError(f"MLflow run {run_id} logged no artefacts")
    inputs, datasets = [], []
    for di in run.inputs.dataset_inputs if run.inputs else []:
        ds = di.dataset
        try:
            source = json.loads(ds.source)
        except ValueError:
            source = {}
        uri = source.get("uri") if isinstance(source, dict) else None
        local = _local_path(uri) if isinstance(uri, str) else None
        if local is not None and local.exists():
            inputs.append(local)
        datasets.append({"name": ds.name, "digest": ds.digest, "source_type": ds.source_type,
                         "source": ds.source, "tags": {t.key: t.value for t in di.tags}})
    mlf: dict[str, Any] = {"run_id": run_id, "run_name": run.info.run_name,
                           "experiment_id": run.info.experiment_id,
                           "metrics": dict(run.data.metrics), "datasets": datasets}
    if capture_env:  # a local store's path and the local user name are local details
        mlf.update(tracking_uri=tracking_uri, user=run.info.user_id)
    elif tracking_uri.startswith(("http://", "https://")):
        mlf["tracking_uri"] = tracking_uri
    act = Activity(run.info.run_name or f"mlflow-{run_id[:8]}", inputs, outputs,
                   dict(run.data.params), ledger=led, kind=kind,
                   extra_internal={"mlflow": mlf}, capture_env=capture_env,
                   times=(_iso(run.info.start_time), _iso(run.info.end_time)))
    with act:
        pass
    assert act.result is not None
    return act.result
