"""causalunlearn: causal machine unlearning of deep classifiers."""

__version__ = "0.1.0"
