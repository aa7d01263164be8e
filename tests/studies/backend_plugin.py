"""A user's module for the backend tests (loaded with ``import_plugin``, so Ray's workers load it
again): the method ``nap``, which leaves the model as it is after doing what it is told.

``seconds`` of sleep; a ``barrier`` folder where each run leaves a file and waits until
``count`` runs have (so a test sees that many cells run at once, or times out); a ``log`` file
that gets one line per attempt (the test counts retries); ``fail``: an error code to stop with.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from causalunlearn.errors import RunError
from causalunlearn.methods import Param
from causalunlearn.methods.registry import register_method

#: How long a run waits at the barrier before giving up (the test then fails on the count).
BARRIER_TIMEOUT_S = 60.0


@register_method(
    "nap",
    params={
        "seconds": Param(float, 0.0, "sleep this long"),
        "barrier": Param(str, "", "folder where runs wait for each other"),
        "count": Param(int, 0, "runs to wait for at the barrier"),
        "log": Param(str, "", "file that gets a line per attempt"),
        "fail": Param(str, "", "error code to stop with"),
    },
)
def nap(model, data, split, params, *, seed, device, progress):
    if params["log"]:
        with open(params["log"], "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
    if params["fail"]:
        raise RunError(params["fail"], f"nap told to stop with {params['fail']}", "")
    if params["barrier"]:
        folder = Path(params["barrier"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{os.getpid()}-{time.time_ns()}").touch()
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while len(list(folder.iterdir())) < params["count"] and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}


def entry(label: str = "nap", **params):
    """A sweep entry of ``nap`` with these parameters, labelled ``label``."""
    from causalunlearn.methods import MethodEntry
    from causalunlearn.studies.entries import Entry

    return Entry(label, MethodEntry(name=label, method="nap", params=params), None)
