"""The run's device: one setting, CUDA when present (nothing else in the package picks a device)."""

from __future__ import annotations

import torch

from causalunlearn.errors import RunError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The run's device: ``device`` if given, else CUDA when present, else CPU.

    Raises:
        RunError: ``bad-device`` for a name torch does not know (``tpu``); ``no-cuda`` when
            CUDA (or a CUDA index past the last GPU) is asked for but not available.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RunError(
            "bad-device",
            f"unknown device {str(device)[:40]!r}",
            "use cpu, cuda, cuda:N or mps (or leave it out: CUDA when present, else CPU)",
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(
            "no-cuda",
            "CUDA was requested but torch sees no GPU",
            "use --device cpu (the default here)",
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RunError(
            "no-cuda",
            f"{device} was requested but torch sees {torch.cuda.device_count()} GPU(s)",
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1}",
        )
    return device
