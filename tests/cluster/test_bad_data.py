"""Bad data through `archsearch run`: refused before Ray starts, in one line, with nothing written.

Each case runs the real command in this process, with Ray's start-up replaced by a tripwire, so
a case passes only if the data is refused before any trial could start. Broken datasets are the
real digits or diabetes with one defect put in by wrapping their loader.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import trainers.datasets
from cluster.cli import main
from search_spaces.errors import DataError
from trainers.datasets import Dataset, check_dataset


def _spec(dataset: str = "digits", **sections: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "bad-data",
        "data": {"dataset": dataset},
        "model": {"family": "mlp", "depth": 1, "width": 8},
        "training": {"epochs": 1},
        "evaluation": {"folds": 3},
        "search": {"strategy": "random", "trials": 2},
    }
    for name, values in sections.items():
        spec[name] = {**spec.get(name, {}), **values}
    return spec


def _broken(dataset: str, change: Callable[[Dataset], dict[str, Any]]):
    """A patch for trainers.datasets._SOURCES: `dataset` loads with `change` applied."""
    source = trainers.datasets._SOURCES[dataset]

    def load(*args: Any, **kwargs: Any) -> Dataset:
        loaded = source.load(*args, **kwargs)
        return dataclasses.replace(loaded, **change(loaded))

    return dataset, dataclasses.replace(source, load=load)


def _with(array: np.ndarray, row: int, value: Any) -> np.ndarray:
    array = array.copy()
    array.reshape(len(array), -1)[row, 0] = value
    return array


CASES = [
    pytest.param(
        _spec(data={"subset": 10}, evaluation={"folds": 5}),
        None,
        r"^evaluation\.folds: class \d has only 1 samples but folds is 5; lower "
        r"evaluation\.folds or set evaluation\.stratified: false$",
        id="stratified-class-smaller-than-folds",
    ),
    pytest.param(
        _spec(data={"subset": 10}, evaluation={"folds": 20, "stratified": False}),
        None,
        r"^evaluation\.folds: the training set has only 10 samples but folds is 20; lower "
        r"evaluation\.folds or use more data$",
        id="fewer-samples-than-folds",
    ),
    pytest.param(
        _spec(),
        _broken("digits", lambda d: {"x_train": _with(d.x_train, 5, np.nan)}),
        r"^data: x_train has 1 NaN values \(first at row 5\); clean or impute them",
        id="nan-feature",
    ),
    pytest.param(
        _spec(),
        _broken("digits", lambda d: {"x_test": _with(d.x_test, 2, -np.inf)}),
        r"^data: x_test has 1 infinite values \(first at row 2\); clean or impute them",
        id="infinite-feature",
    ),
    pytest.param(
        _spec("diabetes", evaluation={"metric": "mse"}),
        _broken("diabetes", lambda d: {"y_train": _with(d.y_train, 3, np.inf)}),
        r"^data: y_train has 1 infinite values \(first at row 3\)",
        id="infinite-target",
    ),
    pytest.param(
        _spec("diabetes", evaluation={"metric": "mse"}),
        _broken("diabetes", lambda d: {"y_train": _with(d.y_train, 0, np.nan)}),
        r"^data: y_train has 1 NaN values \(first at row 0\)",
        id="nan-target",
    ),
    pytest.param(
        _spec(),
        _broken("digits", lambda d: {"y_train": d.y_train + 1, "y_test": d.y_test + 1}),
        r"^data: y_train has \d+ labels outside 0\.\.9 \(first at row \d+: 10\); labels must "
        r"index the 10 class_names$",
        id="labels-from-one",
    ),
    pytest.param(
        _spec(),
        _broken(
            "digits",
            lambda d: {
                "y_train": d.y_train + 1,
                "y_test": d.y_test + 1,
                "class_names": ("none", *d.class_names),
            },
        ),
        r"^data: y_train has no sample of class 0 \('none'\) of 0\.\.10; labels must number "
        r"the classes from 0 with every class present",
        id="labels-from-one-with-a-name-for-zero",
    ),
    pytest.param(
        _spec(),
        _broken("digits", lambda d: {"y_train": d.y_train.astype(np.float32)}),
        r"^data: y_train has dtype float32; classification labels must be integer class ids "
        r"0\.\.9",
        id="float-labels",
    ),
]


@pytest.mark.parametrize(("spec", "patch", "message"), CASES)
def test_run_refuses_bad_data_before_ray_starts(
    spec: dict, patch: tuple | None, message: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    if patch is not None:
        monkeypatch.setitem(trainers.datasets._SOURCES, *patch)

    def tripwire(**kwargs: Any) -> None:
        raise AssertionError("Ray was started for bad data")

    monkeypatch.setattr("cluster.driver.ray_session", tripwire)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)

    code = main(["run", str(path), "--output", str(tmp_path / "run")])

    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("archsearch: "), err
    assert re.search(message, err.removeprefix("archsearch: ").rstrip("\n")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_check_dataset_names_a_class_without_training_samples() -> None:
    rng = np.random.default_rng(0)
    dataset = Dataset(
        name="tiny",
        task="classification",
        x_train=rng.normal(size=(6, 2)).astype(np.float32),
        y_train=np.array([0, 2, 0, 2, 0, 2]),
        x_test=rng.normal(size=(3, 2)).astype(np.float32),
        y_test=np.array([0, 1, 2]),
        class_names=("a", "b", "c"),
    )
    with pytest.raises(DataError, match=r"^data: y_train has no sample of class 1 \('b'\) of"):
        check_dataset(dataset)
