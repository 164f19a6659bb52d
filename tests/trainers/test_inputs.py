"""Input preparation per kind: fitted on training rows only, carried into the model or not.

Small data made here: a dozen sentences, a few (N, T, F) windows. The cross-validation test
trains two tiny GRUs for one epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.errors import DataError, SpecError
from trainers.datasets import Dataset, SeriesSettings
from trainers.folds import make_folds
from trainers.inputs import default_kind, exported_inputs, fit_inputs, model_arguments, prepare
from trainers.loop import cross_validate, predict, train_model
from trainers.preprocessing import Forecaster, Normalized
from trainers.text import TextSettings, Vocabulary


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class _Zero(nn.Module):
    """Answers 0 for every row, shape (N, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1)


def text_dataset() -> Dataset:
    # Every row holds its own word "wordN", so each fold's vocabulary differs.
    words = ["good", "bad"]
    x = np.array([f"a {words[i % 2]} film word{i}" for i in range(12)], dtype=object)
    y = (np.arange(12) % 2).astype(np.int64)
    return Dataset(
        name="tiny-text",
        task="classification",
        x_train=x,
        y_train=y,
        x_test=x[:2],
        y_test=y[:2],
        class_names=("bad", "good"),
        kind="text",
        text=TextSettings(max_length=6, min_frequency=1),
    )


def test_tabular_preparation_standardises_inside_the_model_and_keeps_rows() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    prepared = fit_inputs(x, np.array([0, 1]), kind="tabular", task="classification")

    assert not prepared.encodes
    assert prepared.encode(x) is x
    assert prepared.model_arguments() == {"input_shape": (2,)}
    wrapped = prepared.wrap(nn.Identity())
    torch.testing.assert_close(wrapped(torch.tensor([[2.0, 20.0]])), torch.zeros(1, 2))
    assert prepared.describe() == {"kind": "tabular", "shape": [2], "dtype": "float32"}


def test_image_preparation_is_the_identity() -> None:
    x = np.full((3, 1, 2, 2), 5.0, dtype=np.float32)
    prepared = fit_inputs(x, np.array([0, 1, 0]), kind="image", task="classification")
    images = torch.from_numpy(x)
    assert torch.equal(prepared.wrap(nn.Identity())(images), images)


def test_text_preparation_encodes_with_a_vocabulary_of_its_rows() -> None:
    x = np.array(["good film", "bad film", "film"], dtype=object)
    prepared = fit_inputs(
        x, np.array([1, 0, 0]), kind="text", task="classification", text=TextSettings(4, 1)
    )

    assert prepared.encodes
    assert prepared.vocabulary is not None
    assert prepared.vocabulary.tokens == ("<pad>", "<unk>", "film", "bad", "good")
    np.testing.assert_array_equal(
        prepared.encode(np.array(["good bad film", "awful"], dtype=object)),
        [[4, 3, 2, 0], [1, 0, 0, 0]],
    )
    assert prepared.model_arguments() == {"input_shape": (4,), "vocab_size": 5}

    # Token ids pass through the wrapper untouched (no standardisation of ids).
    ids = torch.tensor([[4, 3, 2, 0]])
    assert torch.equal(prepared.wrap(nn.Identity())(ids), ids)
    description = prepared.describe()
    assert description["dtype"] == "int64" and description["vocabulary"][2] == "film"


def test_series_preparation_forecasts_the_change_from_the_last_value() -> None:
    # Two windows of 3 steps, 2 features (feature 0 is the target).
    x = np.array(
        [[[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], [[5.0, 1.0], [4.0, 1.0], [3.0, 0.0]]],
        dtype=np.float32,
    )
    y = np.array([4.0, 1.0], dtype=np.float32)  # changes +1 and -2: spread 1.5
    prepared = fit_inputs(x, y, kind="series", task="regression")

    assert prepared.input_shape == (3, 2)
    assert prepared.model_arguments() == {"input_shape": (3, 4)}  # levels and changes
    wrapped = prepared.wrap(_Zero())
    assert isinstance(wrapped, Forecaster)

    # An inner model answering 0 is the persistence forecast: the last observed value.
    windows = torch.from_numpy(x)
    torch.testing.assert_close(wrapped(windows), torch.tensor([[3.0], [3.0]]))
    torch.testing.assert_close(float(wrapped.y_std), 1.5)
    # In standardised units the loss target is the change over its spread.
    targets = wrapped.standardize_targets(torch.from_numpy(y))
    torch.testing.assert_close(
        targets - wrapped.standardized(windows)[:, 0], torch.tensor([2 / 3, -4 / 3])
    )


def test_forecaster_feeds_levels_then_changes_and_scripts() -> None:
    x = np.random.default_rng(0).normal(10.0, 2.0, size=(8, 5, 3)).astype(np.float32)
    y = x[:, -1, 0] + 0.5
    prepared = fit_inputs(x, y, kind="series", task="regression")
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            seen.append(inputs)
            return inputs[:, -1, :1]

    prepared.wrap(Spy())(torch.from_numpy(x))
    levels, changes = seen[0][..., :3], seen[0][..., 3:]
    # Levels standardised over the training windows; changes are 0 at the last step.
    torch.testing.assert_close(levels.reshape(-1, 3).mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(levels.reshape(-1, 3).std(0, unbiased=False), torch.ones(3))
    torch.testing.assert_close(changes[:, -1], torch.zeros(8, 3))
    expected = (x[:, 0] - x[:, -1]) / (x - x[:, -1:]).reshape(-1, 3).std(0)
    torch.testing.assert_close(changes[:, 0], torch.from_numpy(expected))

    linear = prepared.wrap(nn.Sequential(nn.Flatten(), nn.Linear(5 * 6, 1))).eval()
    windows = torch.from_numpy(x)
    torch.testing.assert_close(torch.jit.script(linear)(windows), linear(windows))


def test_cross_validation_builds_each_vocabulary_on_its_training_rows_only(monkeypatch) -> None:
    dataset = text_dataset()
    folds = make_folds(dataset.y_train, n_folds=2, task="classification", stratified=True, seed=0)
    fitted: list[list[str]] = []
    original = Vocabulary.fit.__func__

    def spy(cls, texts, *, settings):
        fitted.append(list(texts))
        return original(cls, texts, settings=settings)

    monkeypatch.setattr(Vocabulary, "fit", classmethod(spy))
    config = {
        "model": {"family": "rnn", "depth": 1, "width": 3, "cell": "gru", "embedding_dim": 2},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 4},
    }
    cross_validate(
        config,
        dataset,
        folds=folds,
        epochs=1,
        patience=None,
        objective="accuracy",
        mode="max",
        seed=0,
    )

    assert fitted == [list(dataset.x_train[train]) for train, _ in folds]
    for texts, (_, valid) in zip(fitted, folds, strict=True):
        # No validation row's own word reaches the vocabulary its model reads with.
        words = {f"word{i}" for i in valid}
        assert not words & {w for text in texts for w in text.split()}


def test_refit_reads_token_ids_through_its_own_vocabulary() -> None:
    dataset = text_dataset()
    inputs = prepare(dataset)
    config = {
        "model": {"family": "rnn", "depth": 1, "width": 3, "cell": "lstm", "embedding_dim": 2},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 4},
    }
    model = train_model(
        config,
        dataset.x_train,
        dataset.y_train,
        task="classification",
        n_outputs=2,
        epochs=1,
        seed=0,
        inputs=inputs,
    )

    assert model.model.embedding.num_embeddings == len(inputs.vocabulary) == 18
    ids = inputs.encode(dataset.x_test)
    logits = predict(model, ids, task="classification")
    assert logits.shape == (2, 2)
    scripted = torch.jit.script(model)
    np.testing.assert_allclose(scripted(torch.from_numpy(ids)).detach().numpy(), logits, atol=1e-6)


def test_refit_of_a_series_is_a_forecaster_in_the_target_units() -> None:
    rng = np.random.default_rng(0)
    x = (100 + rng.normal(size=(40, 6, 2))).astype(np.float32)
    y = (x[:, -1, 0] + 1.0).astype(np.float32)
    inputs = fit_inputs(x, y, kind="series", task="regression")
    config = {
        "model": {"family": "rnn", "depth": 1, "width": 3, "cell": "gru"},
        "optimizer": {"name": "adam", "lr": 0.01, "batch_size": 8},
    }
    model = train_model(
        config, x, y, task="regression", n_outputs=1, epochs=1, seed=0, inputs=inputs
    )

    assert isinstance(model, Forecaster)
    assert model.model.recurrent.input_size == 4  # 2 features: levels and changes
    predictions = predict(model, x, task="regression")
    assert predictions.shape == (40,)
    # Near the last observed value (the change is learnt in units of its own spread).
    assert np.abs(predictions - x[:, -1, 0]).max() < 5.0


def test_exported_inputs_encode_text_with_the_stored_vocabulary() -> None:
    dataset = text_dataset()
    prepared = prepare(dataset)
    description = {"inputs": prepared.describe()}

    np.testing.assert_array_equal(
        exported_inputs(description, dataset.x_test), prepared.encode(dataset.x_test)
    )
    windows = np.zeros((2, 3, 1), np.float32)
    assert exported_inputs({"inputs": {"kind": "series"}}, windows) is windows
    assert exported_inputs({}, windows) is windows


def test_prepare_on_rows_and_model_arguments_of_a_dataset() -> None:
    dataset = text_dataset()
    prepared = prepare(dataset, np.array([0, 1]))
    assert prepared.vocabulary is not None
    assert set(prepared.vocabulary.tokens[2:]) == {"a", "good", "bad", "film", "word0", "word1"}
    # Fitted on all 12 rows: 4 shared words + 12 own words + pad and unknown.
    assert model_arguments(dataset) == {"input_shape": (6,), "vocab_size": 18}


def test_series_dataset_preparation() -> None:
    x = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    dataset = Dataset(
        name="tiny-series",
        task="regression",
        x_train=x,
        y_train=x[:, -1, 0] + 2,
        x_test=x[:1],
        y_test=x[:1, -1, 0] + 2,
        class_names=None,
        kind="series",
        series=SeriesSettings(window=3, horizon=1, features=("a", "b"), step="day"),
    )
    wrapped = prepare(dataset).wrap(_Zero())
    assert isinstance(wrapped, Normalized) and isinstance(wrapped, Forecaster)


@pytest.mark.parametrize(
    ("x", "kind"),
    [
        (np.zeros((3, 4), np.float32), "tabular"),
        (np.zeros((3, 1, 2, 2), np.float32), "image"),
        (np.array(["a", "b"], dtype=object), "text"),
    ],
)
def test_default_kind(x: np.ndarray, kind: str) -> None:
    assert default_kind(x) == kind


def test_unknown_kind_and_bad_windows_are_refused() -> None:
    with pytest.raises(SpecError, match=r"^kind: 'audio' is not a kind of data"):
        fit_inputs(np.zeros((2, 2)), np.zeros(2), kind="audio", task="regression")
    with pytest.raises(DataError, match=r"^x_train: got shape \(2, 2\), but series windows"):
        fit_inputs(np.zeros((2, 2)), np.zeros(2), kind="series", task="regression")
