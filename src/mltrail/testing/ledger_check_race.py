"""``ledger check`` racing real writers, some killed mid-write: an adversary of the check.

A user runs ``mltrail ledger check`` while other processes write to the same home, and
a writer may die at any moment (``kill -9`` while it holds the lock, between the mined
block and the index update, inside a SQLite transaction). A check must never call such
a home damaged: every alarm here is a false alarm. :func:`race` starts writer processes
(``python -m mltrail.testing.ledger_check_race HOME IDENTITY TAG COUNT PASSWORD``), runs
``checks`` checks in this process the way the CLI does (``Ledger.open`` then
:func:`~mltrail.ledger.check.check`), and, when ``kill`` is set, SIGKILLs a writer at a
seeded moment during a seeded share of the checks and starts another in its place. After
the race, one more check and one write must pass.

Only for tests and benchmarks: it writes to the home it is given.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltrail.config import Home


@dataclass
class RaceResult:
    checks: int = 0
    false_alarms: int = 0
    moved: int = 0  # checks whose head differs from the previous check's (writes overlapped)
    kills: int = 0
    messages: list[str] = field(default_factory=list)
    final_ok: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "false_alarms": self.false_alarms, "moved": self.moved,
                "kills": self.kills, "messages": self.messages[:5], "final_ok": self.final_ok,
                "seconds": round(self.seconds, 2)}


def _writer(home: Path, identity: str, tag: str, password: str,
            pause: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mltrail.testing.ledger_check_race", str(home),
                             identity, tag, str(pause), password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def race(home: Home, password: str, checks: int = 50, seed: int = 0, writers: int = 2,
         kill: float = 0.0, pause: float = 0.6,
         gap: float = 0.1) -> RaceResult:
    """Run ``checks`` checks while ``writers`` processes register datasets (each pausing
    ``pause`` s between writes, so the chain, which every check re-executes, grows by a few
    blocks per check); with ``kill`` > 0, that share of the checks has a writer SIGKILLed
    at a random moment while it runs. ``gap`` s pass between checks."""
    from mltrail.errors import MltrailError
    from mltrail.ledger.check import check
    from mltrail.ledger.client import Ledger

    rng = random.Random(seed)
    result = RaceResult()
    identities = ["steward", "dev"]
    made = 0

    def spawn() -> subprocess.Popen[bytes]:
        nonlocal made
        made += 1
        return _writer(home.root, identities[made % len(identities)], f"{seed:x}f{made:x}",
                       password, pause)

    procs = [spawn() for _ in range(writers)]
    start = time.perf_counter()
    last_head = -1
    try:
        with Ledger.open(home, identity="admin", password=password) as led:
            while led.backend.head() <= last_head + 2 and time.perf_counter() - start < 60:
                time.sleep(0.05)  # the writers are writing before the first check
        for _ in range(checks):
            timer = None
            if kill and rng.random() < kill:
                victim = rng.randrange(len(procs))

                def shoot(p: subprocess.Popen[bytes] = procs[victim]) -> None:
                    if p.poll() is None:
                        os.kill(p.pid, signal.SIGKILL)

                timer = threading.Timer(rng.uniform(0.0, 0.3), shoot)
                timer.start()
            try:
                with Ledger.open(home, identity="admin", password=password) as led:
                    report = check(led)
                if report.head != last_head:
                    result.moved += 1
                last_head = report.head
            except MltrailError as exc:
                result.false_alarms += 1
                result.messages.append(exc.message)
            result.checks += 1
            time.sleep(gap)  # lock polls are unfair: back-to-back checks starve the writers
            if timer is not None:
                timer.join()
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    result.kills += p.returncode == -signal.SIGKILL
                    procs[i] = spawn()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    result.seconds = time.perf_counter() - start
    try:
        with Ledger.open(home, identity="admin", password=password) as led:
            check(led)
        with Ledger.open(home, identity="steward", password=password) as led:
            led.register("dataset", "sha256:" + rng.randbytes(32).hex())
        result.final_ok = True
    except MltrailError as exc:
        result.messages.append("after the race: " + exc.message)
    return result


def _write_loop(home: Path, identity: str, tag: str, pause: float, password: str) -> None:
    """Register datasets until killed (at most 100,000), ``pause`` s apart."""
    from mltrail.ledger.client import Ledger

    with Ledger.open(Home(home), identity=identity, password=password) as led:
        for i in range(100_000):
            led.register("dataset", "sha256:" + f"{tag}{i:060x}"[-64:].rjust(64, "0"))
            time.sleep(pause)


if __name__ == "__main__":
    _write_loop(Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
