"""Every metric of one model on a split: the official CaMU metrics and the other attacks.

:func:`evaluate` predicts once over the training and test sets; :func:`scores_from_logits`
computes every number from those outputs (sweeps reuse outputs they already have).
"""

from __future__ import annotations

import torch
from torch import nn

from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.device import pick_device
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.accuracy import accuracy_report, predict
from causalunlearn.metrics.mia import mia_sorted_softmax_from_logits
from causalunlearn.metrics.mia_more import mia_efficacy_svc, mia_entropy_lr, mia_loss_lr_cv

#: Rows per side of the SVC attacker's training set in :func:`evaluate` (an SVC's fit time
#: grows quadratically with rows; SalUn's code uses all of the test set, 10,000 rows on MNIST).
SVC_MAX_PER_CLASS = 2000


def evaluate(
    model: nn.Module,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    attacker: str = "gbdt",
    device: torch.device | str | None = None,
    extended: bool = False,
) -> dict[str, float]:
    """The official CaMU metrics of one model, in percent (plus the other attacks if ``extended``).

    One prediction pass over the training set and one over the test set feed every metric:
    retain / forget / test / retained-class test / forgotten-class test accuracy (the last two
    NaN for random removal) and the sorted-softmax membership-inference attack (``mia_acc``:
    attacker accuracy on forget vs held-out test rows; ``mia_forget_member_rate``: share of
    forget rows called members), with the attacker trained on the model's outputs on the retain
    sample (members) and test rows (non-members). With ``extended``, the same outputs also feed
    :func:`~causalunlearn.metrics.mia_efficacy_svc` (``mia_efficacy_svc``, at most
    :data:`SVC_MAX_PER_CLASS` rows per side), :func:`~causalunlearn.metrics.mia_entropy_lr`
    (``mia_entropy_member_rate``) and :func:`~causalunlearn.metrics.mia_loss_lr_cv`
    (``mia_loss_cv_acc``); see :func:`scores_from_logits`.
    """
    device = pick_device(device)
    logits_train = predict(model, data.train_x, device=device).cpu()
    logits_test = predict(model, data.test_x, device=device).cpu()
    return scores_from_logits(
        logits_train, logits_test, data, split, seed=seed, attacker=attacker, extended=extended
    )


def scores_from_logits(
    logits_train: torch.Tensor,
    logits_test: torch.Tensor,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    attacker: str = "gbdt",
    extended: bool = False,
) -> dict[str, float]:
    """:func:`evaluate` on a model's outputs (CPU logits on every training and test row)."""
    report = accuracy_report(
        logits_train,
        data.train_y,
        split.forget,
        split.retain,
        logits_test,
        data.test_y,
        split.forgotten_classes,
    )
    forget = torch.as_tensor(split.forget.copy())
    sample = torch.as_tensor(split.retain_sample.copy())
    attacks = {
        "mia_acc": lambda: mia_sorted_softmax_from_logits(
            logits_train[sample], logits_test, logits_train[forget], seed=seed, attacker=attacker
        ),
    }
    if extended:
        y_train, y_test = data.train_y.cpu(), data.test_y.cpu()
        attacks["mia_efficacy_svc"] = lambda: mia_efficacy_svc(
            logits_train[sample],
            y_train[sample],
            logits_test,
            y_test,
            logits_train[forget],
            y_train[forget],
            seed=seed,
            max_per_class=SVC_MAX_PER_CLASS,
        )
        attacks["mia_entropy_member_rate"] = lambda: mia_entropy_lr(
            logits_train[sample], logits_test, logits_train[forget], seed=seed
        )
        attacks["mia_loss_cv_acc"] = lambda: mia_loss_lr_cv(
            logits_train[forget], y_train[forget], logits_test, y_test, seed=seed
        )
    for key, attack in attacks.items():
        try:
            result = attack()
        except CausalUnlearnError as err:
            if err.code != "too-little-data-for-attack":
                raise
            report[key] = float("nan")
            if key == "mia_acc":
                report["mia_forget_member_rate"] = float("nan")
            continue
        if key == "mia_acc":
            report["mia_acc"] = result.accuracy
            report["mia_forget_member_rate"] = 100.0 * result.forget_member_rate
        else:
            report[key] = result.value
    return report
