"""Where else a search's numbers go: TensorBoard event files and an MLflow tracking store.

Both are Ray Tune's own logger callbacks, so they see exactly what trials report: every epoch's
fold means, stds and per-fold values, and each trial's config. TensorBoard is on by default and
writes one event file per trial under `<run_dir>/tune/<trial>/`, so
`tensorboard --logdir <run_dir>/tune` shows every curve. MLflow is off unless the spec names it
(`tracking: {mlflow: {tracking_uri: ..., experiment: ...}}`); each trial becomes an MLflow run.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

from search_spaces.errors import SpecError

if TYPE_CHECKING:
    from ray.tune import Callback

    from cluster.spec import Spec

logger = logging.getLogger(__name__)


def check_tracking(spec: Spec) -> None:
    """Refuse, before anything runs, a tracking target whose package is not installed."""
    if spec.tracking.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        raise SpecError(
            "tracking.mlflow: needs the mlflow package, which is not installed; install it with "
            "pip install 'archsearch[mlflow]', or remove tracking.mlflow"
        )


def tracking_callbacks(spec: Spec) -> list[Callback]:
    """Tune callbacks for the tracking targets `spec.tracking` turns on."""
    callbacks: list[Callback] = []
    if spec.tracking.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())

    mlflow = spec.tracking.mlflow
    if mlflow is not None:
        check_tracking(spec)
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        experiment = mlflow.experiment or spec.name
        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=mlflow.tracking_uri,
                experiment_name=experiment,
                tags={"archsearch.search": spec.name, "archsearch.strategy": spec.search.strategy},
            )
        )
        logger.info("tracking trials in MLflow experiment %s", experiment)
    return callbacks
