"""Test helper process: register artefacts in a loop, printing each acknowledged id."""

import sys
from pathlib import Path

from mltrail.config import Home
from mltrail.ledger.client import Ledger

home, identity, tag, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
with Ledger.open(Home(home), identity=identity, password="test-password") as led:
    for i in range(count):
        digest = "sha256:" + f"{tag}{i:060x}"[-64:].rjust(64, "0")
        r = led.register("dataset", digest)
        print(r.artefact_id, flush=True)
