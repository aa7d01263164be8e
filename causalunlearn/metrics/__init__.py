"""Metrics: accuracies (percent) and membership-inference attacks, as pure functions.

This layer knows nothing of graphs. Every metric's docstring gives its formula and source.
"""

from causalunlearn.metrics.accuracy import (
    ACCURACY_REPORT_KEYS,
    accuracy,
    accuracy_report,
    class_restricted_accuracy,
    predict,
)
from causalunlearn.metrics.mia import (
    MIA_ATTACKERS,
    MIAResult,
    MIASplit,
    mia_sample_sizes,
    mia_sorted_softmax,
    mia_sorted_softmax_from_logits,
    mia_sorted_softmax_from_model,
    mia_split_rows,
    sorted_softmax_features,
)

__all__ = [
    "ACCURACY_REPORT_KEYS",
    "MIA_ATTACKERS",
    "MIAResult",
    "MIASplit",
    "accuracy",
    "accuracy_report",
    "class_restricted_accuracy",
    "mia_sample_sizes",
    "mia_sorted_softmax",
    "mia_sorted_softmax_from_logits",
    "mia_sorted_softmax_from_model",
    "mia_split_rows",
    "predict",
    "sorted_softmax_features",
]
