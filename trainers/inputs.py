"""Input preparation per training part: the one seam between a dataset's rows and a model.

Every fold-model, and the refit, fits its input preparation on its own training rows only, by
the dataset's kind:

- tabular: features standardised with the training rows' statistics, inside the model;
- image: pixels as they are;
- text: a vocabulary built on the training rows; every row is encoded to token ids, and the
  model takes ids;
- series: each feature standardised over the training windows, and the model forecasts the
  change from the window's last observed target value (see `trainers.preprocessing`).

What a preparation carries into the model (statistics) goes in with :meth:`Prepared.wrap`;
what stays outside (the vocabulary) is described by :meth:`Prepared.describe` for `model.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from search_spaces.errors import DataError, SpecError
from trainers.preprocessing import (
    Normalized,
    Statistics,
    fit_series_statistics,
    fit_statistics,
    fit_token_statistics,
)
from trainers.text import TextSettings, Vocabulary

if TYPE_CHECKING:
    from torch import nn

    from trainers.datasets import Dataset

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("tabular", "image", "text", "series")


@dataclass(frozen=True, eq=False)
class Prepared:
    """An input preparation fitted on one training part.

    Attributes:
        kind: One of `KINDS`.
        statistics: The standardisation the model carries inside it.
        input_shape: One input of the wrapped model, without the batch axis: one encoded row.
        inner_shape: One input of the model inside the wrapper; a forecaster's inner model
            sees each window feature twice (level and change), `(T, 2F)`.
        vocabulary: For text, the token ids the model reads; None otherwise.
    """

    kind: str
    statistics: Statistics
    input_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]
    vocabulary: Vocabulary | None = None

    @property
    def encodes(self) -> bool:
        """Whether :meth:`encode` turns rows into something else (text into token ids)."""
        return self.vocabulary is not None

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The model's inputs for raw rows: token ids `(N, L)` int64 for text, else `x`."""
        if self.vocabulary is None:
            return x
        return self.vocabulary.encode(x)

    def model_arguments(self) -> dict[str, Any]:
        """The `input_shape` (and for text the `vocab_size`) that `build_model` needs."""
        arguments: dict[str, Any] = {"input_shape": self.inner_shape}
        if self.vocabulary is not None:
            arguments["vocab_size"] = len(self.vocabulary)
        return arguments

    def wrap(self, model: nn.Module) -> Normalized:
        """`model` with this preparation's statistics inside (on the CPU)."""
        return self.statistics.wrap(model)

    def describe(self) -> dict[str, Any]:
        """What a user of the exported model needs to feed it, as JSON-able values."""
        description: dict[str, Any] = {"kind": self.kind, "shape": list(self.input_shape)}
        if self.vocabulary is not None:
            description |= {"dtype": "int64", **self.vocabulary.describe()}
        else:
            description["dtype"] = "float32"
        if self.statistics.forecast:
            description["forecast"] = "change from the last step's feature 0, added back"
        return description


def fit_inputs(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    kind: str,
    task: str,
    text: TextSettings | None = None,
) -> Prepared:
    """Fit the input preparation of `kind` on training rows.

    Args:
        x_train: The training rows: features `(N, F)`, images `(N, C, H, W)`, texts `(N,)`
            (an object array of str), or windows `(N, T, F)`.
        y_train: Their targets `(N,)`.
        kind: One of `KINDS`.
        task: "classification" or "regression".
        text: Tokenizer settings for text; None means `TextSettings()`.

    Raises:
        SpecError: `kind` or `task` is unknown.
        DataError: The rows do not fit the kind, or hold NaN or infinity.
    """
    if kind not in KINDS:
        raise SpecError(f"kind: {kind!r} is not a kind of data; use one of {', '.join(KINDS)}")

    if kind == "text":
        vocabulary = Vocabulary.fit(x_train, settings=text or TextSettings())
        shape = (vocabulary.settings.max_length,)
        statistics = fit_token_statistics(y_train, task=task)
        return Prepared(kind, statistics, shape, shape, vocabulary)

    shape = tuple(x_train.shape[1:])
    if kind != "series":
        return Prepared(kind, fit_statistics(x_train, y_train, task=task), shape, shape)

    statistics = fit_series_statistics(x_train, y_train, task=task)
    if statistics.forecast:
        # (T, F) windows reach the inner model as (T, 2F): levels, then changes.
        return Prepared(kind, statistics, shape, (shape[0], 2 * shape[1]))
    return Prepared(kind, statistics, shape, shape)


def prepare(dataset: Dataset, rows: np.ndarray | None = None) -> Prepared:
    """Fit `dataset`'s preparation on its training rows `rows` (all of them when None)."""
    x, y = dataset.x_train, dataset.y_train
    if rows is not None:
        x, y = x[rows], y[rows]
    return fit_inputs(x, y, kind=dataset.kind, task=dataset.task, text=dataset.text)


def default_kind(x: np.ndarray) -> str:
    """The kind bare arrays stand for: text for strings, tabular for `(N, F)`, else image.

    Series windows `(N, T, F)` cannot be told from images by shape; name them explicitly.
    """
    if x.dtype == object or np.issubdtype(x.dtype, np.str_):
        return "text"
    if x.ndim == 2:
        return "tabular"
    if x.ndim < 2:
        raise DataError(f"x: got shape {x.shape}; rows of features need shape (N, ...)")
    return "image"


def exported_inputs(description: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Raw rows as the exported model whose `model.json` is `description` takes them.

    Text becomes token ids with the vocabulary stored under `inputs`; other rows (and models
    exported before `inputs` was recorded) are returned as they are.
    """
    inputs = description.get("inputs") or {}
    if inputs.get("kind") != "text":
        return x
    return Vocabulary.from_description(inputs).encode(x)


def model_arguments(dataset: Dataset) -> dict[str, Any]:
    """`build_model`'s input arguments for a model of all of `dataset`'s training rows.

    Fold-models fit their own preparation; for text their vocabularies (and so their embedding
    sizes) differ a little from this one, which is fitted on every training row.
    """
    return prepare(dataset).model_arguments()
