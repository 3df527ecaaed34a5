"""Calibration of the replay threshold from measured honest replay noise.

Owns :data:`DEFAULT_THRESHOLD` and :func:`calibrate`, which records honest proofs and
replays every segment under several thread counts (and a device, if given) to measure
the relative error ‖W′−W_next‖ / ‖W_next−W‖ an honest proof shows. See
``docs/pol-calibration.md`` for the method and the numbers behind the default. It never
touches the ledger.
"""

from __future__ import annotations

DEFAULT_THRESHOLD = 0.01
