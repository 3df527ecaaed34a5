"""The auditor's clients for the protocols it speaks besides mltrail's own.

Owns :class:`OIPClient` (the Open Inference Protocol, KServe / Triton v2 REST: model
metadata, stock metadata that declares no tensors included, ``POST .../infer`` with the
nonce as the request ``id``, outputs found by name and asked for by name once a server
shows it needs that, receipts read from the response ``parameters``),
:class:`AdapterClient` (any JSON API described by an adapter file, :mod:`.adapter`) and
:func:`open_target`, which picks the protocol. The protocol is chosen from the endpoint,
never by probing it: a URL whose path is ``/v2/models/NAME`` (optionally
``/versions/V``) speaks v2, an adapter file means the adapter, anything else is
mltrail's own API. Probing would send requests no
ordinary client sends, which a provider could key on. It never judges answers.
"""

from __future__ import annotations

import random
import re
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from mltrail.audit import oip
from mltrail.audit.adapter import NONCE, AdapterSpec, fill, read_outputs
from mltrail.audit.client import Response, ServiceClient, ServiceFailure, Target, _first_error
from mltrail.audit.wire import ServiceInfo
from mltrail.errors import InputError

OIP_PATH = re.compile(r"^(?P<base>.*?)(?P<model>/v2/models/[^/]+(?:/versions/[^/]+)?)/?$")
ProtocolName = Literal["auto", "mltrail", "oip", "adapter"]
FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")
PROB_NAMES = ("probs", "probabilities", "predict_proba", "scores", "softmax", "output_probs",
              "output_probability")
LABEL_NAMES = ("label", "labels", "class", "classes", "predicted_label")
PLAIN_EVERY = 2                 # after the switch, 1 request in 2 is also sent plain
STOCK_PROBS = "predict_proba"   # MLServer's and KServe's sklearn/XGBoost/LightGBM runtimes


class OIPClient(Target):
    """A client of one model behind the Open Inference Protocol (v2 REST)."""

    protocol = "oip"

    def __init__(self, url: str, timeout: float = 30.0, seed: int | None = None) -> None:
        m = OIP_PATH.match(url.rstrip("/"))
        if not m:
            raise InputError(f"{url} is not an Open Inference Protocol model URL "
                             "(.../v2/models/NAME)")
        super().__init__(m["base"] or url, timeout)
        self.endpoint = url.rstrip("/")
        self.model_path = m["model"]
        self.input_name, self.input_type = oip.INPUT, "FP32"
        self.input_shape: list[int] | None = None
        self.probs_name: str | None = None
        self.label_name: str | None = None
        self.declared = False           # the metadata declares the probability output
        self.classes: int | None = None
        self.ask = False                # name the outputs in each request (see classify)
        self._plain_output: str | None = None   # the integer output of a plain answer
        self._last: dict[Any, Any] = {}         # the last answer's tensors, by name
        # which requests are cross-checked plain: drawn from the audit's own seed (a
        # private 128-bit draw unless the auditor fixes it), so a run can be repeated
        self._draw = random.Random(seed) if seed is not None else random.SystemRandom()

    def info(self) -> ServiceInfo:
        """The model's v2 metadata, as far as the auditor can read it. A stock server may
        declare no tensors at all (MLServer without ``inputs``/``outputs`` in its model
        settings): then the input shape comes from the claims (:meth:`adopt`) and the
        probabilities are the answer's one ``[batch, classes]`` float output, or asked
        for as ``predict_proba`` (the name MLServer's scikit-learn, XGBoost and LightGBM
        runtimes use; see :meth:`classify`)."""
        data = self._get(self.model_path)
        try:
            meta = oip.ModelMetadata.model_validate(data)
        except ValidationError as exc:
            raise InputError(f"{self.endpoint} metadata is malformed: "
                             f"{_first_error(exc)}") from exc
        if len(meta.inputs) > 1:
            raise InputError(f"{self.endpoint} takes {len(meta.inputs)} inputs; mltrail "
                             "audits single-input classifiers")
        if meta.inputs:
            t = meta.inputs[0]
            self.input_name, self.input_type = t.name, t.datatype
            dims = t.shape[1:]
            self.input_shape = dims if dims and all(d > 0 for d in dims) else None
        classes = None
        if meta.outputs:
            probs = [o for o in meta.outputs if o.datatype in FLOAT_TYPES and len(o.shape) == 2]
            if not probs:
                raise InputError(
                    f"{self.endpoint} declares outputs {[o.name for o in meta.outputs]} "
                    "but none is a [batch, classes] float tensor: declare the class "
                    "probabilities in the model's metadata (MLServer: in "
                    "model-settings.json, \"outputs\": [{\"name\": \"predict_proba\", "
                    "\"datatype\": \"FP64\", \"shape\": [-1, CLASSES]}])")
            named = [o for o in probs if o.name.lower() in PROB_NAMES]
            pick = (named or probs)[0]
            self.probs_name, self.declared = pick.name, True
            labels = [o for o in meta.outputs if o.name.lower() in LABEL_NAMES
                      and o.datatype.startswith(("INT", "UINT")) and len(o.shape) == 1]
            self.label_name = labels[0].name if labels else None
            classes = pick.shape[1] if pick.shape[1] > 0 else None
        else:
            self.probs_name = STOCK_PROBS
        self.classes = classes
        return ServiceInfo(protocol="oip", name=meta.name, classes=classes,
                           input_shape=self.input_shape)

    def adopt(self, input_shape: list[int] | None, classes: int | None) -> None:
        """What the claims say, for what the metadata left out: the input shape sent and
        the width of an undeclared probability output."""
        if self.input_shape is None and input_shape:
            self.input_shape = list(input_shape)
        if self.classes is None and classes:
            self.classes = int(classes)

    def request_for(self, batch: np.ndarray, nonce: str) -> tuple[str, Any]:
        shape = self.input_shape or list(batch.shape[1:])
        arr = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        data = arr.round().astype(np.int64).ravel().tolist() \
            if self.input_type.startswith(("INT", "UINT")) else arr.ravel().tolist()
        body: dict[str, Any] = {"id": nonce, "inputs": [{
            "name": self.input_name, "shape": [len(batch), *shape],
            "datatype": self.input_type, "data": data}]}
        if self.ask:
            names = dict.fromkeys(n for n in (self.probs_name, self.label_name,
                                              self._plain_output) if n)
            body["outputs"] = [{"name": n} for n in names]
        return self.model_path + "/infer", body

    def classify(self, batch: np.ndarray, nonce: str | None = None,
                 classes: int | None = None) -> Response:
        """As :meth:`Target.classify`, asking for the outputs by name once the server has
        shown it needs it. The v2 spec returns every output when a request names none,
        and that is what ordinary clients of such servers send; MLServer's stock runtimes
        answer only ``predict`` (labels) then. So the first answer without the
        probability output switches this client to naming it (``"outputs"``, as every
        client of that server must) and the same batch is sent again with a fresh id;
        the client never asks by name before a server shows it needs it.

        Such a server has two kinds of customers: those who name the probabilities and
        those who take its default labels. A provider could substitute for the second
        kind only. So, after the switch, about one request in :data:`PLAIN_EVERY` is
        sent plain like theirs, and the same batch again naming the probabilities and the
        plain answer's own integer output: the two must carry the same values, or the
        answer is a :class:`ServiceFailure` saying so (a deterministic server always
        repeats itself)."""
        if self.ask and self._plain_output is not None and self._draw.randrange(PLAIN_EVERY):
            return super().classify(batch, nonce, classes)
        if self.ask and self._plain_output is None:
            return super().classify(batch, nonce, classes)
        was, self.ask = self.ask, False
        try:
            return super().classify(batch, nonce, classes)
        except ServiceFailure as exc:
            if not isinstance(exc.__cause__, _NoProbs):
                raise
            plain = exc.__cause__.tensors
        finally:
            self.ask = was or self.ask
        if not self.ask:
            self.ask = True
            ints = [k for k, t in plain.items() if str(t.get("datatype")).startswith(
                ("INT", "UINT"))]
            self._plain_output = str(ints[0]) if ints else None
        r = super().classify(batch, None, classes)
        name = self._plain_output
        if name is not None and name in plain:
            again = self._last.get(name)
            if again is None or _values(again) != _values(plain[name]):
                raise ServiceFailure("malformed", f"{self.url} answers plain requests "
                                     f"differently: its default output {name!r} differs "
                                     "from the same inputs' answer when the probabilities "
                                     "are asked for", r.elapsed_ms)
        return r

    def _probs_tensor(self, by_name: dict[Any, Any], n: int) -> dict[str, Any]:
        t = by_name.get(self.probs_name or oip.PROBS)
        if t is None and not self.declared:  # undeclared: the one [n, classes] float output
            fits = [o for o in by_name.values() if o.get("datatype") in FLOAT_TYPES
                    and isinstance(o.get("shape"), list) and len(o["shape"]) == 2
                    and (self.classes is None or o["shape"][1] == self.classes)]
            t = fits[0] if len(fits) == 1 else None
        if t is None:
            got = ", ".join(f"{k} {o.get('datatype')} {o.get('shape')}"
                            for k, o in by_name.items())
            hint = "" if self.declared else (
                "; the model's metadata declares no outputs: declare its [batch, classes] "
                "probability output (MLServer: \"outputs\" in model-settings.json)")
            raise _NoProbs(f"no output {self.probs_name or oip.PROBS!r} "
                           f"(the answer has {got or 'none'}){hint}", by_name)
        return dict(t)

    def parse(self, data: Any, n: int, nonce: str) -> tuple[Any, Any, str | None]:
        if not isinstance(data, dict) or not isinstance(data.get("outputs"), list):
            raise ValueError("no outputs")
        if data.get("id") != nonce:
            raise ValueError("the response does not echo the request id")
        by_name = {o.get("name"): o for o in data["outputs"] if isinstance(o, dict)}
        self._last = by_name
        t = self._probs_tensor(by_name, n)
        if t.get("datatype") not in FLOAT_TYPES:
            raise ValueError(f"output {t.get('name')!r} is not a float tensor")
        probs = _tensor(t, n)
        if probs.ndim != 2:
            raise ValueError("probabilities are not [batch, classes]")
        lt = by_name.get(self.label_name) if self.label_name else None
        if self.label_name is None and oip.LABEL in by_name:
            lt = by_name[oip.LABEL]
        if lt is not None:
            labels = _tensor(lt, n).reshape(-1)
            if len(labels) != n or not np.all(labels == np.round(labels)):
                raise ValueError("labels are not one integer per input")
            labs = [int(v) for v in labels]
        else:
            labs = [int(v) for v in probs.argmax(1)]
        rows = _python_rows(t, n)
        outputs = [{"label": labs[i], "probs": rows[i]} for i in range(n)]
        params = data.get("parameters")
        digest = params.get(oip.DIGEST_PARAM) if isinstance(params, dict) else None
        return outputs, oip.receipt_of(params), digest if isinstance(digest, str) else None


class _NoProbs(ValueError):
    """The answer lacks the probability output (the request may have to name it)."""

    def __init__(self, message: str, tensors: dict[Any, Any]) -> None:
        super().__init__(message)
        self.tensors = tensors


def _values(t: Any) -> tuple[Any, Any]:
    """A tensor's shape and flat values, for comparing two answers."""
    flat: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for x in v:
                walk(x)
        else:
            flat.append(v)

    walk(t.get("data") if isinstance(t, dict) else None)
    return (t.get("shape") if isinstance(t, dict) else None), flat


def _tensor(t: dict[str, Any], n: int) -> np.ndarray:
    shape, values = t.get("shape"), t.get("data")
    if not isinstance(shape, list) or not shape or shape[0] != n or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"output {t.get('name')!r} has shape {shape!r} for {n} inputs")
    if not isinstance(values, list):
        raise ValueError(f"output {t.get('name')!r} has no data")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"output {t.get('name')!r} holds {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def _python_rows(t: dict[str, Any], n: int) -> list[list[float]]:
    """The probability rows as the JSON numbers received (receipts hash exactly those)."""
    flat: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for x in v:
                walk(x)
        else:
            flat.append(v)

    walk(t["data"])
    width = len(flat) // n
    return [[float(v) for v in flat[i * width:(i + 1) * width]] for i in range(n)]


class AdapterClient(Target):
    """A client of a JSON API described by an adapter file."""

    protocol = "adapter"

    def __init__(self, url: str, spec: AdapterSpec, timeout: float = 30.0) -> None:
        super().__init__(url, timeout)
        self.spec = spec
        self.method = spec.request.method

    def info(self) -> ServiceInfo:
        """What the adapter file says (the API itself is not asked, except its health
        path when the file names one)."""
        if self.spec.health:
            self._get(self.spec.health)
        return ServiceInfo(protocol="adapter", name=self.spec.name, classes=self.spec.classes,
                           input_shape=list(self.spec.input_shape),
                           max_batch=self.spec.max_batch)

    def request_for(self, batch: np.ndarray, nonce: str) -> tuple[str, Any]:
        return self.spec.request.path, fill(self.spec, batch, nonce)[1]

    def headers_for(self, nonce: str) -> dict[str, str]:
        return {k: (nonce if v == NONCE else v) for k, v in self.spec.request.headers.items()}

    def parse(self, data: Any, n: int, nonce: str) -> tuple[Any, Any, str | None]:
        return read_outputs(self.spec, data, n)


def open_target(url: str, *, protocol: ProtocolName = "auto",
                adapter: AdapterSpec | None = None, timeout: float = 30.0,
                seed: int | None = None) -> Target:
    """The client for ``url``: v2 for ``.../v2/models/NAME``, the adapter when one is
    given, mltrail's own API otherwise (``protocol`` overrides the choice). ``seed``
    draws the v2 client's plain cross-checks (:meth:`OIPClient.classify`)."""
    if protocol == "auto":
        protocol = "adapter" if adapter is not None else \
            "oip" if OIP_PATH.match(url.rstrip("/")) else "mltrail"
    if protocol == "adapter":
        if adapter is None:
            raise InputError("the adapter protocol needs an adapter file (--adapter)")
        return AdapterClient(url, adapter, timeout)
    if protocol == "oip":
        return OIPClient(url, timeout, seed)
    return ServiceClient(url, timeout)
