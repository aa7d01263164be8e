"""What studies write: format identifiers of their files and the provenance they record.

Every file a study writes names its format (``causalunlearn.run/v1`` and so on): a later version
that reads an older folder can tell what it holds, and :mod:`causalunlearn.studies.outdir`
recognises the toolkit's own folders by these names.
"""

from __future__ import annotations

import platform

#: ``manifest.json`` of a run folder (``causalunlearn run``).
MANIFEST_FORMAT = "causalunlearn.run/v1"
#: ``sweep.json`` / ``summary.json`` of a sweep folder (``compare``, ``ablate``, ``tune``).
SWEEP_FORMAT = "causalunlearn.sweep/v1"
#: One cell file of a sweep (``runs/<method>/<dataset>/<scenario>/seed<S>.json``).
CELL_FORMAT = "causalunlearn.cell/v1"
#: ``tuning.json`` of a tuning folder.
TUNING_FORMAT = "causalunlearn.tuning/v1"


def versions() -> dict[str, str]:
    """Versions of the software a run used."""
    import numpy
    import sklearn
    import torch

    import causalunlearn

    return {
        "causalunlearn": causalunlearn.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }
