"""Metrics: accuracies (percent), membership-inference attacks, oracle gaps and relearning.

This layer knows nothing of graphs. Every metric's docstring gives its formula and source.
"""

from causalunlearn.metrics.accuracy import (
    ACCURACY_REPORT_KEYS,
    accuracy,
    accuracy_report,
    class_restricted_accuracy,
    predict,
)
from causalunlearn.metrics.gaps import (
    DEFAULT_GAP_KEYS,
    TOW_KEYS,
    activation_distance,
    average_gap,
    gap_to_oracle,
    mean_std,
    tow,
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
    register_attacker,
    sorted_softmax_features,
)
from causalunlearn.metrics.mia_more import (
    MIAScore,
    mia_efficacy_svc,
    mia_entropy_lr,
    mia_loss_lr_cv,
)
from causalunlearn.metrics.relearn import relearn_time, relearning_curve
from causalunlearn.metrics.row_scores import (
    cross_entropy_per_row,
    prediction_entropy,
    softmax_probabilities,
    true_label_confidence,
)

__all__ = [
    "ACCURACY_REPORT_KEYS",
    "DEFAULT_GAP_KEYS",
    "MIA_ATTACKERS",
    "MIAResult",
    "MIAScore",
    "MIASplit",
    "TOW_KEYS",
    "accuracy",
    "accuracy_report",
    "activation_distance",
    "average_gap",
    "class_restricted_accuracy",
    "cross_entropy_per_row",
    "gap_to_oracle",
    "mean_std",
    "mia_efficacy_svc",
    "mia_entropy_lr",
    "mia_loss_lr_cv",
    "mia_sample_sizes",
    "mia_sorted_softmax",
    "mia_sorted_softmax_from_logits",
    "mia_sorted_softmax_from_model",
    "mia_split_rows",
    "predict",
    "prediction_entropy",
    "register_attacker",
    "relearn_time",
    "relearning_curve",
    "softmax_probabilities",
    "sorted_softmax_features",
    "tow",
    "true_label_confidence",
]
