"""Home discovery and settings.

A home is a ``.mltrail/`` folder, found like git's: ``--home`` or ``MLTRAIL_HOME`` if
given, else the nearest ``.mltrail/`` walking up from the current folder. It holds
``config.json`` (backend, chain id, registry address, default identity), ``keys/``,
``objects/`` (content store), the embedded chain and the event index, and ``pins.json``:
what the home remembers of its chain (genesis hash, registry code hash, the highest head
it saw), kept outside the chain database so a replaced or reset chain is noticed. This
module reads and writes settings only; it never talks to a ledger.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail._fs import atomic_write
from mltrail.errors import InputError, NotFoundError

if TYPE_CHECKING:  # pydantic and the store load on first use: read commands need neither
    from mltrail.config_models import Pins, Settings
    from mltrail.provenance.store import ContentStore

HOME_DIR = ".mltrail"
ENV_HOME = "MLTRAIL_HOME"
ENV_PASSWORD = "MLTRAIL_PASSWORD"


def __getattr__(name: str) -> Any:
    """``Settings`` and ``Pins`` (pydantic models in :mod:`mltrail.config_models`), loaded
    on first use so that importing this module does not import pydantic."""
    if name in ("Settings", "Pins"):
        from mltrail import config_models

        return getattr(config_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Home:
    """Paths inside one ``.mltrail`` home."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def chain_db(self) -> Path:
        return self.root / "chain.sqlite"

    @property
    def index_db(self) -> Path:
        return self.root / "index.sqlite"

    @property
    def lifecycle_path(self) -> Path:
        return self.root / "lifecycle.yaml"

    @property
    def pins_path(self) -> Path:
        return self.root / "pins.json"

    def pins(self) -> Pins | None:
        """The pins, or None for a home made before pins existed."""
        from pydantic import ValidationError

        from mltrail.config_models import Pins

        if not self.pins_path.exists():
            return None
        try:
            return Pins.model_validate_json(self.pins_path.read_bytes())
        except (ValidationError, ValueError, OSError) as exc:
            raise InputError(f"malformed {self.pins_path}: {exc}".splitlines()[0]) from exc

    def save_pins(self, pins: Pins) -> None:
        data = json.dumps(pins.model_dump(), indent=2, sort_keys=True) + "\n"
        atomic_write(self.pins_path, data.encode(), durable=False)

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    @cached_property
    def store(self) -> ContentStore:
        """The home's one content store (one instance, so discard_on_failure sees every put)."""
        from mltrail.provenance.store import ContentStore

        return ContentStore(self.root / "objects")

    def exists(self) -> bool:
        return self.config_path.exists()

    def settings(self) -> Settings:
        from pydantic import ValidationError

        from mltrail.config_models import Settings

        if not self.config_path.exists():
            raise NotFoundError(f"no mltrail home at {self.root}", hint="run 'mltrail init'")
        try:
            return Settings.model_validate_json(self.config_path.read_text())
        except (ValidationError, ValueError) as exc:
            raise InputError(f"malformed {self.config_path}: {exc.errors()[0]['msg']}"
                             if isinstance(exc, ValidationError) else str(exc)) from exc

    def save_settings(self, settings: Settings) -> None:
        data = json.dumps(settings.model_dump(), indent=2, sort_keys=True) + "\n"
        atomic_write(self.config_path, data.encode())


def find_home(explicit: str | os.PathLike[str] | None = None,
              start: str | os.PathLike[str] | None = None) -> Home:
    """The home to use: explicit path, then ``$MLTRAIL_HOME``, then walk up from ``start``."""
    if explicit is not None:
        return Home(explicit)
    env = os.environ.get(ENV_HOME)
    if env:
        return Home(env)
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / HOME_DIR
        if (candidate / "config.json").exists():
            return Home(candidate)
    raise NotFoundError("not inside an mltrail home (no .mltrail/ found here or above)",
                        hint="run 'mltrail init' or pass --home / set MLTRAIL_HOME")


def new_home_path(explicit: str | os.PathLike[str] | None = None) -> Home:
    """Where ``init`` creates a home: explicit, ``$MLTRAIL_HOME`` or ``./.mltrail``.

    Refused (:class:`InputError`) when the nearest existing folder on the way there is a
    file or a dangling link, so nothing is created under it."""
    env = os.environ.get(ENV_HOME)
    target = Home(explicit if explicit is not None else env or Path.cwd() / HOME_DIR)
    for folder in (target.root, *target.root.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = "a dangling link" if not folder.exists() else "not a folder"
                raise InputError(f"cannot create a home at {target.root}: {folder} is {what}")
            break
    return target
