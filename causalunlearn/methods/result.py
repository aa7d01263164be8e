"""The result of running a method entry: an :class:`~causalunlearn.engine.verbs.Unlearned` plus
what the method reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from causalunlearn.engine.verbs import Unlearned


@dataclass
class MethodResult(Unlearned):
    """:class:`~causalunlearn.engine.verbs.Unlearned` with the method's own report.

    Attributes:
        info: What the method reports (plain JSON-able values), e.g. SSD's number of dampened
            weights and the rows its importances were measured on.
    """

    info: dict[str, Any] = field(default_factory=dict)
