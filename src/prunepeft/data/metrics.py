"""The task's metric as ``compute_metrics`` for transformers' Trainer, and the check for classes a model never
predicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from prunepeft.data.glue import GLUE_TASKS
from prunepeft.data.task import TaskData

if TYPE_CHECKING:
    import transformers

LOWER_IS_BETTER = {"loss", "mse"}  # metrics where a smaller value is the better model


def _predictions(p: transformers.EvalPrediction) -> np.ndarray:
    preds = p.predictions
    if isinstance(preds, tuple | list):  # models may return extra outputs after the logits
        preds = preds[0]
    return np.asarray(preds)


def _correlation(fn: Callable[..., Any], x: np.ndarray, y: np.ndarray) -> float:
    # constant inputs make correlations undefined; report 0 (no correlation) so model selection still works
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(fn(x, y).statistic)


def metric_fn(task: TaskData) -> Callable[[transformers.EvalPrediction], dict[str, float]]:
    """compute_metrics for transformers.Trainer; keys without the "eval_" prefix."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

    if task.is_regression:

        def regression(p: transformers.EvalPrediction) -> dict[str, float]:
            preds = _predictions(p).reshape(-1).astype(np.float64)
            labels = np.asarray(p.label_ids).reshape(-1).astype(np.float64)
            return {
                "pearson": _correlation(pearsonr, preds, labels),
                "spearmanr": _correlation(spearmanr, preds, labels),
                "mse": float(mean_squared_error(labels, preds)),
            }

        return regression

    with_f1 = task.name in ("mrpc", "qqp")
    with_mcc = task.name == "cola"
    with_macro_f1 = task.num_labels > 2 and task.name not in GLUE_TASKS

    def classification(p: transformers.EvalPrediction) -> dict[str, float]:
        logits = _predictions(p)
        preds = logits if logits.ndim == 1 else logits.argmax(axis=-1)
        labels = np.asarray(p.label_ids).reshape(-1)
        out = {"accuracy": float(accuracy_score(labels, preds))}
        if with_f1:
            out["f1"] = float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0))
        if with_mcc:
            out["matthews_correlation"] = float(matthews_corrcoef(labels, preds))
        if with_macro_f1:
            out["macro_f1"] = float(
                f1_score(labels, preds, labels=list(range(task.num_labels)), average="macro", zero_division=0)
            )
        return out

    return classification


def never_predicted(preds, labels, names: list[str], split: str) -> str | None:
    """One warning line when the model never predicts a class that the split holds (training collapsed onto
    fewer classes), else None. ``preds`` and ``labels`` are class ids; ``names`` the class names by id."""
    preds = np.asarray(preds).reshape(-1)
    held, predicted = set(np.asarray(labels).reshape(-1).tolist()), sorted(set(preds.tolist()))
    missing = [i for i in range(len(names)) if i in held and i not in predicted]
    if not missing:
        return None
    classes = ("class " if len(missing) == 1 else "classes ") + ", ".join(repr(names[i]) for i in missing)
    if len(predicted) == 1:
        what = f"all {len(preds)} rows are predicted {names[predicted[0]]!r}"
    else:
        what = f"it predicts only {', '.join(repr(names[i]) for i in predicted)} on its {len(preds)} rows"
    return (
        f"prunepeft: warning: the model never predicts {classes} on the {split} split ({what}): training may have "
        "collapsed; try more --epochs, another --learning-rate, or more data"
    )
