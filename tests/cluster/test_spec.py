"""Tests for cluster.spec: the examples validate, defaults are filled, overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cluster.cli import main
from cluster.spec import Spec, apply_overrides, load_spec, parse_spec, read_spec_file
from search_spaces.domains import Choice, Fixed, FloatRange, IntRange, LogRange
from search_spaces.errors import ArchsearchError, SpecError

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def _minimal(**changes) -> dict:
    raw = {"name": "t", "data": {"dataset": "digits"}, "model": {"family": "mlp"}}
    raw.update(changes)
    return raw


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_there_are_examples_to_check():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))

    spec = load_spec(path)

    assert isinstance(spec, Spec)
    assert spec.name == raw["name"]
    assert spec.data.dataset == raw["data"]["dataset"]
    assert spec.mode in ("max", "min")
    assert spec.objective == f"{spec.evaluation.metric}_mean"
    assert any(p.searched for p in spec.parameters())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_validate_command_accepts_every_example(path, capsys):
    assert main(["validate", str(path)]) == 0

    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: valid; ")
    assert out.count("\n") == 1
    assert err == ""


def test_validate_command_names_the_searched_parameters(tmp_path, capsys):
    raw = _minimal(
        model={"family": "mlp", "depth": {"int": [1, 3]}},
        optimizer={"lr": {"log": [1.0e-3, 1.0e-1]}},
        evaluation={"metric": "f1"},
        search={"strategy": "random"},
    )
    path = _write(tmp_path, raw)

    assert main(["validate", str(path)]) == 0

    out, _ = capsys.readouterr()
    assert out == (
        f"{path}: valid; random search over 2 parameters (model.depth, optimizer.lr), "
        "objective f1_mean (max)\n"
    )


def test_digits_example_in_detail():
    spec = load_spec(Path(__file__).parents[2] / "examples" / "digits_mlp.yaml")

    assert spec.task == "classification"
    assert spec.evaluation.stratified is True
    assert spec.mode == "max"
    assert spec.objective == "accuracy_mean"
    assert spec.model.depth == IntRange(1, 3)
    assert spec.model.width == Choice((32, 64, 128))
    assert spec.regularization.l2 == LogRange(1.0e-6, 1.0e-3)
    assert spec.optimizer.momentum == FloatRange(0.5, 0.95)
    by_name = {p.name: p for p in spec.parameters()}
    assert by_name["optimizer.momentum"].condition is not None
    assert by_name["model.family"].domain == Fixed("mlp")
    # cnn-only fields are not parameters of an mlp search.
    assert "model.kernel_size" not in by_name


@pytest.mark.parametrize(
    ("dataset", "task", "metric", "mode", "stratified"),
    [
        ("digits", "classification", "loss", "min", True),
        ("breast_cancer", "classification", "loss", "min", True),
        ("fashion_mnist", "classification", "loss", "min", True),
        ("diabetes", "regression", "loss", "min", False),
    ],
)
def test_defaults_come_from_the_dataset(dataset, task, metric, mode, stratified):
    spec = parse_spec(_minimal(data={"dataset": dataset}))

    assert spec.task == task
    assert spec.evaluation.metric == metric
    assert spec.evaluation.mode == mode
    assert spec.evaluation.stratified is stratified


@pytest.mark.parametrize(
    ("dataset", "metric", "mode"),
    [
        ("digits", "accuracy", "max"),
        ("digits", "roc_auc", "max"),
        ("digits", "f1", "max"),
        ("digits", "loss", "min"),
        ("diabetes", "mse", "min"),
        ("diabetes", "mae", "min"),
        ("diabetes", "r2", "max"),
    ],
)
def test_mode_comes_from_the_metric(dataset, metric, mode):
    spec = parse_spec(_minimal(data={"dataset": dataset}, evaluation={"metric": metric}))

    assert spec.mode == mode
    assert spec.objective == f"{metric}_mean"


def test_an_explicit_task_or_mode_that_agrees_is_kept():
    spec = parse_spec(
        _minimal(task="classification", evaluation={"metric": "accuracy", "mode": "max"})
    )

    assert (spec.task, spec.mode) == ("classification", "max")


def test_stratified_false_is_kept_for_classification():
    spec = parse_spec(_minimal(evaluation={"stratified": False}))

    assert spec.evaluation.stratified is False


def test_default_sections_are_not_shared_between_specs():
    regression = parse_spec(_minimal(data={"dataset": "diabetes"}))
    classification = parse_spec(_minimal())

    assert regression.evaluation.stratified is False
    assert classification.evaluation.stratified is True


def test_defaults_of_the_other_sections():
    spec = parse_spec(_minimal())

    assert spec.seed == 0
    assert spec.model.depth == Fixed(2)
    assert spec.optimizer.name == Fixed("adam")
    assert spec.regularization.dropout == Fixed(0.0)
    assert spec.training.epochs == 10
    assert spec.evaluation.folds == 5
    assert (spec.search.strategy, spec.search.scheduler) == ("random", "none")
    assert spec.resources.workers_per_trial == 1
    assert spec.cluster.address is None
    assert not any(p.searched for p in spec.parameters())


def test_load_spec_applies_overrides(tmp_path):
    path = _write(tmp_path, _minimal(seed=1, search={"strategy": "random", "trials": 20}))

    spec = load_spec(path, overrides={"search.trials": 3, "seed": 5})

    assert spec.search.trials == 3
    assert spec.seed == 5
    assert spec.search.strategy == "random"


def test_overrides_create_a_missing_section(tmp_path):
    path = _write(tmp_path, _minimal())

    spec = load_spec(path, overrides={"cluster.address": "auto"})

    assert spec.cluster.address == "auto"


def test_overrides_are_validated_like_the_file(tmp_path):
    path = _write(tmp_path, _minimal())

    with pytest.raises(SpecError, match=r"^search\.trials: 0 must be >= 1$"):
        load_spec(path, overrides={"search.trials": 0})


def test_apply_overrides_refuses_a_section_that_is_not_a_mapping():
    with pytest.raises(SpecError, match=r"^search: expected a mapping of fields, got grid$"):
        apply_overrides(_minimal(search="grid"), {"search.trials": 3})


def test_spec_error_is_both_ours_and_a_value_error():
    with pytest.raises(ArchsearchError):
        parse_spec(_minimal(seed=-1))
    with pytest.raises(ValueError):
        parse_spec(_minimal(seed=-1))


def test_parse_spec_refuses_a_non_mapping():
    with pytest.raises(SpecError, match=r"^spec: the spec must be a YAML mapping of sections"):
        parse_spec(["name", "t"])


def test_read_spec_file_reports_a_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SpecError, match=r"^spec: file not found: .*nope\.yaml; check the path$"):
        read_spec_file(missing)


def test_read_spec_file_reports_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: \xff\xfe\n")

    with pytest.raises(SpecError, match=r"^spec: cannot read .*spec\.yaml: 'utf-8' codec"):
        read_spec_file(path)


def test_read_spec_file_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: a\nseed: 1\nname: b\n", encoding="utf-8")

    with pytest.raises(
        SpecError, match=r"spec\.yaml:3:1: YAML syntax error: duplicate key 'name'"
    ):
        read_spec_file(path)


def test_read_spec_file_allows_overriding_merged_keys(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "base: &b {dataset: digits, subset: 100}\ndata: {<<: *b, subset: 200}\n", encoding="utf-8"
    )

    assert read_spec_file(path)["data"] == {"dataset": "digits", "subset": 200}


def test_validate_command_reports_a_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("archsearch: spec: file not found: ")
    assert err.count("\n") == 1


def test_rnn_spec_on_text_searches_its_fields_and_carries_the_text_options():
    raw = {
        "name": "t",
        "data": {"dataset": "rotten_tomatoes", "max_length": 40, "min_frequency": 3},
        "model": {
            "family": "rnn",
            "cell": {"choice": ["lstm", "gru"]},
            "bidirectional": {"choice": [True, False]},
            "embedding_dim": {"choice": [32, 64]},
            "summary": {"choice": ["last", "max"]},
            "layer_dropout": {"float": [0.0, 0.3]},
            "depth": {"int": [1, 2]},
        },
        "evaluation": {"metric": "accuracy"},
    }
    spec = parse_spec(raw)

    domains = {p.name: p.domain for p in spec.parameters() if p.name.startswith("model.")}
    assert domains == {
        "model.family": Fixed("rnn"),
        "model.depth": IntRange(1, 2),
        "model.width": Fixed(64),
        "model.cell": Choice(("lstm", "gru")),
        "model.bidirectional": Choice((True, False)),
        "model.embedding_dim": Choice((32, 64)),
        "model.summary": Choice(("last", "max")),
        "model.layer_dropout": FloatRange(0.0, 0.3),
    }
    assert spec.data.kind == "text"
    assert spec.data.source_options() == {"max_length": 40, "min_frequency": 3}
    assert spec.evaluation.stratified is True


def test_rnn_spec_on_a_series_has_no_embedding_and_no_stratification():
    raw = {
        "name": "t",
        "data": {"dataset": "co2", "window": 26, "horizon": 4},
        "model": {"family": "rnn", "cell": "gru"},
        "evaluation": {"metric": "mae"},
    }
    spec = parse_spec(raw)

    names = [p.name for p in spec.parameters()]
    assert "model.embedding_dim" not in names
    assert "model.cell" in names and "model.summary" in names
    assert spec.data.source_options() == {"window": 26, "horizon": 4}
    assert spec.task == "regression" and spec.evaluation.stratified is False


def test_an_mlp_may_forecast_a_series_from_its_flattened_windows():
    spec = parse_spec({"name": "t", "data": {"dataset": "elecdemand"}, "model": {"family": "mlp"}})
    assert spec.data.kind == "series"
    assert spec.data.source_options() == {}
