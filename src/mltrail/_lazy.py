"""Deferred loading of py-evm's dependencies that a Cancun chain never runs.

py-evm imports every precompile of every fork when ``eth`` is imported. Prague's
BLS12-381 precompiles (``eth.precompiles.bls12_381``) make py_ecc build its pairing
tables at import, the bn128 pairing module does the same on a smaller scale, and the
proof-of-work hash (``eth.consensus.ethash``) loads pycryptodome's keccak through cffi,
which parses C declarations with pycparser. Together that is about a third of what a
write command spends importing (``bench/cli.py``), for code the embedded chain (Cancun
rules, no proof of work, keccak from pysha3) does not run in ordinary use.

:func:`install` puts a finder in front of ``sys.meta_path`` that answers only for the
modules in :data:`LAZY`. Such a module is created from its real spec (same file, same
``__path__``) but its code is not run. Its importers take names from it with ``from M
import f``; for the names listed in :data:`LAZY` (all plain functions in the real module,
which ``tests/test_lazy_imports.py`` checks against each installed version) it
holds a stand-in that runs the real module's code on first call and then calls the real
function. Any other attribute access runs the real code first, exactly once (under the
module's own lock, which other threads wait on), into the same module object. So a BLS
precompile, a bn128 pairing or pycryptodome's keccak still work, and only cost their
import when first used. No installed file is changed, a module already imported is left
as it is, and nothing here decides a rule.

Standard library only: :mod:`mltrail` installs this before anything imports py-evm.
"""

from __future__ import annotations

import _thread
import sys

# not ``typing``, ``threading`` or ``importlib.abc`` (which imports typing): every command
# imports this module, reads included
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Protocol

    class _RealLoader(Protocol):
        def create_module(self, spec: ModuleSpec) -> ModuleType | None: ...
        def exec_module(self, module: ModuleType) -> None: ...

# module -> the functions its importers take with ``from module import name``
LAZY: dict[str, tuple[str, ...]] = {
    # Prague's BLS12-381 precompiles (0x0b to 0x11), through eth/precompiles/__init__.py
    "eth.precompiles.bls12_381": (
        "bls12_g1_add", "bls12_g1_msm", "bls12_map_fp_to_g1", "bls12_g2_add",
        "bls12_g2_msm", "bls12_map_fp2_to_g2", "bls12_pairing_check"),
    # the bn128 pairing (precompile 0x08), through py_ecc/optimized_bn128/__init__.py
    "py_ecc.optimized_bn128.optimized_pairing": ("final_exponentiate", "pairing"),
    # pycryptodome's keccak, for proof of work only (eth/consensus/ethash.py takes the module)
    "Crypto.Hash.keccak": (),
}
_LOCK = _thread.RLock()  # for install()


class _Loader:
    """Creates the module as its real loader would and defers running its code."""

    def __init__(self, real: _RealLoader, names: Sequence[str]) -> None:
        self.real = real
        self.names = tuple(names)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        lock = _thread.RLock()
        state = {"loaded": False}

        def load() -> None:
            with lock:  # other threads wait here while the real code runs
                if not state["loaded"]:
                    state["loaded"] = True  # before running: a failure is raised, not retried
                    module.__dict__["__loader__"] = self.real
                    self.real.exec_module(module)
                    if module.__dict__.get("__getattr__") is __getattr__:
                        del module.__dict__["__getattr__"]

        def real(name: str) -> Any:
            load()
            value = module.__dict__.get(name, stand_ins)
            if value is stand_ins or value is stand_ins.get(name):
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
            return value

        def __getattr__(name: str) -> Any:  # PEP 562: only names the module lacks
            if name == "__path__":  # the import system asking whether it is a package
                raise AttributeError(name)  # (a package has it from its spec already)
            return real(name)

        stand_ins = {name: _stand_in(module.__name__, name, real) for name in self.names}
        module.__dict__.update(stand_ins, __getattr__=__getattr__)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the real one
        return getattr(self.real, name)


def _stand_in(module: str, name: str, real: Callable[[str], Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return real(name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = module
    call.__doc__ = f"Runs {module}.{name}, importing {module} on the first call."
    return call


class _Finder:
    """Answers for the modules in :data:`LAZY` with the real spec and a deferring loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        names = LAZY.get(fullname)
        if names is None:
            return None
        spec: ModuleSpec | None = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is not None and not isinstance(finder, _Finder):
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        if spec is None:
            return None
        real = spec.loader
        if real is None or not hasattr(real, "exec_module"):
            return spec
        spec.loader = _Loader(real, names)  # type: ignore[assignment]
        return spec


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once per process)."""
    with _LOCK:
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())  # type: ignore[arg-type]
