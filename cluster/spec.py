"""The search spec: one YAML file, validated with pydantic before anything runs or is written.

Every problem becomes a `SpecError` with a one-line message that names the field path, the value
and the rule, e.g. `model.depth: lower bound 0 must be >= 1`. The schema's allowed values come
from the modules that implement them (model families, metrics, optimizers), so a new family or
metric is accepted here without editing this file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, SkipValidation, ValidationError, model_validator

from nas.objectives import BOUNDS, COSTS, Objective
from nas.strategies import (
    DEFAULT_TRIALS,
    SCHEDULERS,
    STRATEGIES,
    EvolutionSettings,
    default_evolution,
)
from nas.variants import grid_points
from search_spaces.builder import (
    ACTIVATIONS,
    CELLS,
    CONNECTIVITIES,
    FAMILIES,
    POOLINGS,
    SUMMARIES,
)
from search_spaces.domains import (
    Domain,
    Fixed,
    check_domain,
    did_you_mean,
    domain_values,
    number_text_hint,
    parse_domain,
    show_value,
)
from search_spaces.errors import SpecError
from search_spaces.parameters import Parameter, check_conditions, flatten
from trainers.datasets import DATASET_KINDS, DATASETS
from trainers.metrics import METRICS, metric_names
from trainers.optim import OPTIMIZERS, SCHEDULES

# Fields each model family reads; a field set for a family that ignores it is refused, since
# the user evidently expects it to change something.
COMMON_MODEL_FIELDS = ("depth", "width", "activation", "connectivity", "batch_norm")
FAMILY_FIELDS = {
    "mlp": COMMON_MODEL_FIELDS,
    "cnn": (*COMMON_MODEL_FIELDS, "channels", "kernel_size", "pooling", "convs_per_stage"),
    "rnn": (
        "depth",
        "width",
        "cell",
        "bidirectional",
        "embedding_dim",
        "summary",
        "layer_dropout",
    ),
}

# Data options that only datasets of one kind read.
KIND_OPTIONS = {
    "max_length": "text",
    "min_frequency": "text",
    "window": "series",
    "horizon": "series",
}


class _Section(BaseModel):
    # Strict: YAML already gives real types, so "3" for an int or true for a count is a mistake.
    # YAML also reads .inf and .nan as floats; no count, fraction or rate may be either.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _SearchableSection(_Section):
    """A section whose fields may be domains; each is parsed and checked against its rule."""

    section_name: ClassVar[str]
    rules: ClassVar[dict[str, dict[str, Any]]]

    @model_validator(mode="before")
    @classmethod
    def _parse_domains(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError(
                f"{cls.section_name}: expected a mapping of fields, got {show_value(raw)}"
            )
        parsed = dict(raw)
        for name, rule in cls.rules.items():
            if name in raw:
                path = f"{cls.section_name}.{name}"
                parsed[name] = check_domain(
                    parse_domain(raw[name], field=path), field=path, **rule
                )
        return parsed

    def domains(self) -> dict[str, Domain]:
        return {name: getattr(self, name) for name in self.rules}


class DataSection(_Section):
    dataset: str
    subset: int | None = Field(default=None, ge=10)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    path: str | None = None
    # text: tokens kept per row, and how often a token must occur to get its own id
    max_length: int | None = Field(default=None, ge=1, le=10_000)
    min_frequency: int | None = Field(default=None, ge=1)
    # series: steps per input window, and how many steps ahead to forecast
    window: int | None = Field(default=None, ge=2, le=10_000)
    horizon: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _known_dataset(self) -> DataSection:
        if self.dataset not in DATASETS:
            raise ValueError(
                f"data.dataset: unknown dataset {self.dataset!r}"
                f"{did_you_mean(self.dataset, list(DATASETS))}; "
                f"available: {', '.join(DATASETS)}"
            )
        kind = DATASET_KINDS[self.dataset]
        for option, owner in KIND_OPTIONS.items():
            if getattr(self, option) is not None and owner != kind:
                raise ValueError(
                    f"data.{option}: applies to {owner} datasets but {self.dataset} is {kind}; "
                    "remove it"
                )
        return self

    @property
    def kind(self) -> str:
        """What a row of the dataset is: tabular, image, text or series."""
        return DATASET_KINDS[self.dataset]

    def source_options(self) -> dict[str, int]:
        """The kind-specific options given, as keyword arguments of `load_dataset`."""
        values = {option: getattr(self, option) for option in KIND_OPTIONS}
        return {option: value for option, value in values.items() if value is not None}


class ModelSection(_SearchableSection):
    section_name: ClassVar[str] = "model"
    rules: ClassVar[dict[str, dict[str, Any]]] = {
        "depth": {"kind": int, "ge": 1, "le": 64},
        "width": {"kind": int, "ge": 1},
        "activation": {"kind": str, "options": ACTIVATIONS},
        "connectivity": {"kind": str, "options": CONNECTIVITIES},
        "batch_norm": {"kind": bool},
        "channels": {"kind": int, "ge": 1},
        "kernel_size": {"kind": int, "ge": 1, "le": 15},
        "pooling": {"kind": str, "options": POOLINGS},
        "convs_per_stage": {"kind": int, "ge": 1, "le": 8},
        "cell": {"kind": str, "options": CELLS},
        "bidirectional": {"kind": bool},
        "embedding_dim": {"kind": int, "ge": 1},
        "summary": {"kind": str, "options": SUMMARIES},
        "layer_dropout": {"kind": float, "ge": 0.0, "lt": 1.0},
    }

    family: str
    depth: SkipValidation[Domain] = Fixed(2)
    width: SkipValidation[Domain] = Fixed(64)
    activation: SkipValidation[Domain] = Fixed("relu")
    connectivity: SkipValidation[Domain] = Fixed("plain")
    batch_norm: SkipValidation[Domain] = Fixed(False)
    channels: SkipValidation[Domain] = Fixed(16)
    kernel_size: SkipValidation[Domain] = Fixed(3)
    pooling: SkipValidation[Domain] = Fixed("max")
    convs_per_stage: SkipValidation[Domain] = Fixed(1)
    cell: SkipValidation[Domain] = Fixed("lstm")
    bidirectional: SkipValidation[Domain] = Fixed(False)
    embedding_dim: SkipValidation[Domain] = Fixed(64)
    summary: SkipValidation[Domain] = Fixed("last")
    layer_dropout: SkipValidation[Domain] = Fixed(0.0)

    @model_validator(mode="after")
    def _fields_fit_family(self) -> ModelSection:
        if self.family not in FAMILIES:
            raise ValueError(
                f"model.family: unknown family {self.family!r}"
                f"{did_you_mean(self.family, list(FAMILIES))}; available: {', '.join(FAMILIES)}"
            )
        used = FAMILY_FIELDS.get(self.family, COMMON_MODEL_FIELDS)
        for name in sorted(self.model_fields_set - {"family"} - set(used)):
            raise ValueError(f"model.{name}: the {self.family} family does not use it; remove it")
        for value in domain_values(self.kernel_size) or ():
            if value % 2 == 0:
                raise ValueError(
                    f"model.kernel_size: {value} is even; use odd sizes (3, 5, 7) so 'same' "
                    "padding keeps the image centred"
                )
        return self

    def domains(self) -> dict[str, Domain]:
        used = FAMILY_FIELDS.get(self.family, COMMON_MODEL_FIELDS)
        return {"family": Fixed(self.family), **{name: getattr(self, name) for name in used}}


class RegularizationSection(_SearchableSection):
    section_name: ClassVar[str] = "regularization"
    rules: ClassVar[dict[str, dict[str, Any]]] = {
        "dropout": {"kind": float, "ge": 0.0, "lt": 1.0},
        "l1": {"kind": float, "ge": 0.0},
        "l2": {"kind": float, "ge": 0.0},
    }

    dropout: SkipValidation[Domain] = Fixed(0.0)
    l1: SkipValidation[Domain] = Fixed(0.0)
    l2: SkipValidation[Domain] = Fixed(0.0)


class OptimizerSection(_SearchableSection):
    section_name: ClassVar[str] = "optimizer"
    rules: ClassVar[dict[str, dict[str, Any]]] = {
        "name": {"kind": str, "options": OPTIMIZERS},
        "lr": {"kind": float, "gt": 0.0, "le": 10.0},
        "momentum": {"kind": float, "ge": 0.0, "lt": 1.0},
        "nesterov": {"kind": bool},
        "batch_size": {"kind": int, "ge": 1},
        "schedule": {"kind": str, "options": SCHEDULES},
    }

    name: SkipValidation[Domain] = Fixed("adam")
    lr: SkipValidation[Domain] = Fixed(1e-3)
    momentum: SkipValidation[Domain] = Fixed(0.9)
    nesterov: SkipValidation[Domain] = Fixed(False)
    batch_size: SkipValidation[Domain] = Fixed(64)
    schedule: SkipValidation[Domain] = Fixed("none")


class TrainingSection(_Section):
    epochs: int = Field(default=10, ge=1)
    patience: int | None = Field(default=None, ge=1)
    # None: refit for the epoch count at which the cross-validated objective peaked.
    refit_epochs: int | None = Field(default=None, ge=1)


class EvaluationSection(_Section):
    folds: int = Field(default=5, ge=2, le=50)
    stratified: bool | None = None
    metric: str = "loss"
    mode: Literal["max", "min"] | None = None
    # [{accuracy: max}, {latency_ms: min}]: several objectives, checked by Spec (metrics
    # depend on the task); None optimises `metric` alone.
    objectives: SkipValidation[Any] = None


class ConstraintsSection(_Section):
    """Upper bounds on a candidate's costs; a candidate over one is recorded, never trained."""

    max_params: int | None = Field(default=None, ge=1)
    max_macs: int | None = Field(default=None, ge=1)
    max_latency_ms: float | None = Field(default=None, gt=0.0)

    def bounds(self) -> dict[str, float]:
        """The bounds set, by spec key (`max_params`)."""
        return {key: getattr(self, key) for key in BOUNDS if getattr(self, key) is not None}


class CompressionSection(_Section):
    """What `archsearch compress` makes of the exported model."""

    prune_rates: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = [0.5]
    quantize: bool = True
    finetune_epochs: int = Field(default=0, ge=0, le=100)


class SearchSection(_Section):
    strategy: str = "random"
    trials: int | None = Field(default=None, ge=1)
    scheduler: str = "none"
    concurrency: int | None = Field(default=None, ge=1)
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1.0)
    # Regularized evolution only; None sizes them from the budget (nas.strategies).
    population_size: int | None = Field(default=None, ge=2)
    sample_size: int | None = Field(default=None, ge=1)
    # Times a trial whose worker process died is run again from its last epoch's checkpoint.
    max_retries: int = Field(default=1, ge=0, le=100)
    constraints: ConstraintsSection = ConstraintsSection()

    @model_validator(mode="after")
    def _known_names(self) -> SearchSection:
        for field, value, options in (
            ("strategy", self.strategy, STRATEGIES),
            ("scheduler", self.scheduler, SCHEDULERS),
        ):
            if value not in options:
                raise ValueError(
                    f"search.{field}: unknown {field} {value!r}{did_you_mean(value, options)}; "
                    f"available: {', '.join(options)}"
                )
        self._check_scheduler_settings()
        self._check_evolution()
        return self

    def _check_scheduler_settings(self) -> None:
        # A setting the chosen scheduler ignores is refused: the user expects it to matter.
        ignored = {"hyperband": "grace_period", "median": "reduction_factor"}.get(self.scheduler)
        if ignored is not None and ignored in self.model_fields_set:
            reads = "reduction_factor" if self.scheduler == "hyperband" else "grace_period"
            raise ValueError(
                f"search.{ignored}: scheduler {self.scheduler} has no {ignored} (it reads "
                f"{reads}); remove it"
            )

    def _check_evolution(self) -> None:
        given = [f for f in ("population_size", "sample_size") if f in self.model_fields_set]
        if given and self.strategy != "evolution":
            raise ValueError(
                f"search.{given[0]}: only strategy evolution reads it, but the strategy is "
                f"{self.strategy}; remove it or set strategy: evolution"
            )
        if not given:
            return

        settings = self.evolution_settings()
        trials = self.trials if self.trials is not None else DEFAULT_TRIALS
        if settings.population_size >= trials:
            raise ValueError(
                f"search.population_size: {settings.population_size} is not fewer than the "
                f"{trials} trials, so evolution would never get past its random first "
                "population; lower it or raise search.trials"
            )
        if settings.sample_size > settings.population_size:
            raise ValueError(
                f"search.sample_size: {settings.sample_size} is more than the population "
                f"({settings.population_size}) a tournament draws from; lower it to at most "
                f"{settings.population_size}"
            )

    def evolution_settings(self) -> EvolutionSettings:
        """Population and tournament size: the spec's, else sized from the budget."""
        default = default_evolution(self.trials if self.trials is not None else DEFAULT_TRIALS)
        population = self.population_size or default.population_size
        sample = self.sample_size or max(1, min(default.sample_size, population // 3))
        return EvolutionSettings(population_size=population, sample_size=sample)


class ResourcesSection(_Section):
    """What one trial holds; with several workers, each gets an equal share of both."""

    cpus_per_trial: float = Field(default=1.0, gt=0.0)
    gpus_per_trial: float = Field(default=0.0, ge=0.0)
    workers_per_trial: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _whole_gpus_per_worker(self) -> ResourcesSection:
        # Ray schedules a share of one GPU, or whole GPUs, never 1.5 of them.
        share = self.gpus_per_worker
        if share > 1 and not share.is_integer():
            raise ValueError(
                f"resources.gpus_per_trial: {self.gpus_per_trial} over "
                f"{self.workers_per_trial} workers gives each {share:g} GPUs; a worker takes "
                "a fraction of one GPU or whole GPUs, so change gpus_per_trial or "
                "workers_per_trial"
            )
        return self

    @property
    def cpus_per_worker(self) -> float:
        return self.cpus_per_trial / self.workers_per_trial

    @property
    def gpus_per_worker(self) -> float:
        return self.gpus_per_trial / self.workers_per_trial

    @property
    def uses_train_workers(self) -> bool:
        """Whether trials run as Ray Train worker groups rather than in the Tune trial."""
        return self.workers_per_trial > 1 or self.gpus_per_trial > 0


# URI schemes pyarrow's filesystems open (cluster.storage); anything else is a typo.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


class ClusterSection(_Section):
    address: str | None = Field(default=None, min_length=1)
    storage: str = Field(default="runs", min_length=1)
    dashboard: bool = False

    @model_validator(mode="after")
    def _known_scheme(self) -> ClusterSection:
        scheme, separator, _ = self.storage.partition("://")
        if separator and scheme not in STORAGE_SCHEMES:
            raise ValueError(
                f"cluster.storage: unknown scheme {scheme!r} in {self.storage}"
                f"{did_you_mean(scheme, STORAGE_SCHEMES)}; use a path or one of "
                f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}"
            )
        return self


class MlflowSection(_Section):
    # None: MLflow's own default (the MLFLOW_TRACKING_URI environment variable, if set).
    tracking_uri: str | None = Field(default=None, min_length=1)
    # None: the spec's name.
    experiment: str | None = Field(default=None, min_length=1)


class TrackingSection(_Section):
    """Where else a search's numbers go: TensorBoard event files, an MLflow tracking store."""

    tensorboard: bool = True
    mlflow: MlflowSection | None = None


class Spec(_Section):
    """A whole search: what to search, how to score it, and where to run it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    task: Literal["classification", "regression"] | None = None
    seed: int = Field(default=0, ge=0)
    data: DataSection
    model: ModelSection
    regularization: RegularizationSection = RegularizationSection()
    optimizer: OptimizerSection = OptimizerSection()
    training: TrainingSection = TrainingSection()
    evaluation: EvaluationSection = EvaluationSection()
    search: SearchSection = SearchSection()
    resources: ResourcesSection = ResourcesSection()
    cluster: ClusterSection = ClusterSection()
    tracking: TrackingSection = TrackingSection()
    compression: CompressionSection = CompressionSection()

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        dataset_task = DATASETS[self.data.dataset]
        if self.task is not None and self.task != dataset_task:
            raise ValueError(
                f"task: {self.task} does not fit dataset {self.data.dataset}, which is "
                f"{dataset_task}; set task: {dataset_task} or leave it out"
            )
        self.task = dataset_task
        self._check_family_reads_data()
        self._check_evaluation()
        self._check_workers()
        check_conditions(self.parameters())
        self._check_search()
        return self

    def _check_search(self) -> None:
        search = self.search
        if search.scheduler != "none" and search.grace_period > self.training.epochs:
            raise ValueError(
                f"search.grace_period: {search.grace_period} is more than training.epochs "
                f"({self.training.epochs}), so {search.scheduler} could never stop a trial; "
                "lower it"
            )
        if search.strategy == "grid":
            # Enumerating the grid refuses continuous ranges and oversized grids, one line each.
            size = len(grid_points([p for p in self.parameters() if p.searched]))
            if search.trials is not None and search.trials < size:
                raise ValueError(
                    f"search.trials: {search.trials} is fewer than the {size} points of the "
                    f"grid; leave search.trials out to run the whole grid, or use strategy random"
                )

    def _check_family_reads_data(self) -> None:
        kind, family = self.data.kind, self.model.family
        if kind == "text" and family != "rnn":
            raise ValueError(
                f"model.family: {family} cannot read the text of {self.data.dataset}; "
                "use family rnn"
            )
        if kind == "series" and family == "cnn":
            raise ValueError(
                f"model.family: cnn needs images but {self.data.dataset} is a time series; "
                "use family rnn or mlp"
            )
        if family == "rnn" and kind not in ("text", "series"):
            raise ValueError(
                f"model.family: rnn reads text or time series but {self.data.dataset} is "
                f"{kind}; use family mlp or cnn"
            )
        if kind != "text" and "embedding_dim" in self.model.model_fields_set:
            raise ValueError(
                f"model.embedding_dim: only text is embedded but {self.data.dataset} is "
                f"{kind}; remove it"
            )

    def _check_workers(self) -> None:
        workers, folds = self.resources.workers_per_trial, self.evaluation.folds
        if workers > folds:
            # Workers split a trial's folds between them (see cluster.workers).
            raise ValueError(
                f"resources.workers_per_trial: {workers} is more than evaluation.folds "
                f"({folds}), and each worker trains whole folds; lower it to {folds} or less"
            )

    def _check_evaluation(self) -> None:
        evaluation = self.evaluation
        produced = metric_names(self.task)
        if evaluation.objectives is not None:
            self._check_objectives(produced)
        if evaluation.metric not in produced:
            raise ValueError(
                f"evaluation.metric: {evaluation.metric!r} is not produced for {self.task}"
                f"{did_you_mean(evaluation.metric, produced)}; choose one of {', '.join(produced)}"
            )

        natural_mode = METRICS[evaluation.metric].mode
        if evaluation.mode is not None and evaluation.mode != natural_mode:
            raise ValueError(
                f"evaluation.mode: {evaluation.mode} would favour the worst {evaluation.metric}; "
                f"set mode: {natural_mode} or leave it out"
            )
        evaluation.mode = natural_mode

        if evaluation.stratified and self.task != "classification":
            raise ValueError(
                "evaluation.stratified: true needs class labels but the task is regression; "
                "set it to false or leave it out"
            )
        if evaluation.stratified is None:
            evaluation.stratified = self.task == "classification"

    def _check_objectives(self, produced: list[str]) -> None:
        """Parse `evaluation.objectives`; the first metric among them is the primary one."""
        evaluation = self.evaluation
        raw = evaluation.objectives
        where = "evaluation.objectives"
        shape = "write a list of one-key mappings, e.g. [{accuracy: max}, {latency_ms: min}]"
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}: expected a non-empty list, got {show_value(raw)}; {shape}")

        parsed: list[Objective] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"{where}.{i}: expected one name: mode, got {show_value(item)}")
            ((name, mode),) = item.items()
            known = [*produced, *COSTS]
            if name not in known:
                raise ValueError(
                    f"{where}.{i}: {name!r} is neither a metric of {self.task} nor a cost"
                    f"{did_you_mean(str(name), known)}; choose from {', '.join(known)}"
                )
            natural = "min" if name in COSTS else METRICS[name].mode
            if mode not in ("max", "min"):
                raise ValueError(f"{where}.{i}: mode of {name} must be max or min, got {mode!r}")
            if mode != natural:
                raise ValueError(
                    f"{where}.{i}: {name}: {mode} would favour the worst {name}; "
                    f"write {{{name}: {natural}}}"
                )
            if any(o.name == name for o in parsed):
                raise ValueError(f"{where}.{i}: {name} is listed twice; list each objective once")
            parsed.append(Objective(name, mode))

        metrics = [o.name for o in parsed if not o.is_cost]
        if not metrics:
            raise ValueError(
                f"{where}: only costs are listed, which are known before training; add a "
                f"metric such as {{{produced[0]}: {METRICS[produced[0]].mode}}}"
            )
        if "metric" in evaluation.model_fields_set and evaluation.metric not in metrics:
            raise ValueError(
                f"evaluation.metric: {evaluation.metric} is not among evaluation.objectives "
                f"({', '.join(o.name for o in parsed)}); leave metric out or list it there"
            )
        if "metric" not in evaluation.model_fields_set:
            evaluation.metric = metrics[0]
        evaluation.objectives = parsed

    def parameters(self) -> list[Parameter]:
        """The flat named parameters, fixed ones included (see search_spaces.parameters)."""
        model = self.model.domains()
        if self.data.kind != "text":
            # Only token ids are embedded; a fixed size would be recorded but change nothing.
            model.pop("embedding_dim", None)
        return flatten(
            {
                "model": model,
                "regularization": self.regularization.domains(),
                "optimizer": self.optimizer.domains(),
            }
        )

    @property
    def objective(self) -> str:
        """The reported key that strategies and schedulers optimise: the fold mean."""
        return f"{self.evaluation.metric}_mean"

    @property
    def mode(self) -> str:
        assert self.evaluation.mode is not None  # set by validation
        return self.evaluation.mode

    @property
    def objectives(self) -> list[Objective]:
        """Every objective: `evaluation.objectives`, else the one metric with its mode."""
        if self.evaluation.objectives is None:
            return [Objective(self.evaluation.metric, self.mode)]
        return list(self.evaluation.objectives)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


def parse_spec(raw: Any, *, source: str = "spec") -> Spec:
    """Validate an already-loaded spec mapping; SpecError with one line on any problem."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source}: the spec must be a YAML mapping of sections, got {show_value(raw)}"
        )
    try:
        return Spec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, raw)) from None


def load_spec(path: str | Path, *, overrides: dict[str, Any] | None = None) -> Spec:
    """Read a YAML spec with the safe loader, apply dotted overrides, and validate it."""
    raw = apply_overrides(read_spec_file(path), overrides or {})
    return parse_spec(raw, source=str(path))


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`search.trials`) in a raw spec mapping, in place; returns it."""
    for dotted, value in overrides.items():
        section, _, field = dotted.partition(".")
        if not field:
            raw[section] = value
            continue
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise SpecError(f"{section}: expected a mapping of fields, got {show_value(target)}")
        target[field] = value
    return raw


def read_spec_file(path: str | Path) -> dict[str, Any]:
    from cluster.storage import location

    path = location(path)  # a spec kept in an s3:// run directory is read from there
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec: file not found: {path}; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"spec: cannot read {path}: {error}") from None

    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{where}: YAML syntax error: {problem}") from None
    if raw is None:
        raise SpecError(f"{path}: the spec is empty; it needs at least name, data and model")
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: the spec must be a YAML mapping of sections, got {show_value(raw)}"
        )
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key written twice in one mapping.

    Plain YAML keeps the last of two equal keys, so a second `model:` section would silently
    replace the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            # `<<` merges another mapping in; its keys may be overridden on purpose.
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # the base class reports keys it cannot hash
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; keep only one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# pydantic's error types for numeric limits -> the limit's name in `ctx` and its symbol.
_LIMITS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
}


def format_validation_error(error: ValidationError, raw: dict[str, Any]) -> str:
    """One line for the first problem pydantic found, in the user's own terms."""
    first = error.errors(include_url=False)[0]
    location = ".".join(
        part if isinstance(part, str) and part.isprintable() else show_value(part)
        for part in first["loc"]
    )
    message = first["msg"].removeprefix("Value error, ")
    kind = first["type"]

    if kind == "value_error":
        # Our own validators already name the field path in the message.
        return message
    if kind in ("extra_forbidden", "invalid_key"):
        *parent, key = first["loc"]
        valid = _field_names(parent)
        return (
            f"{location}: unknown key{did_you_mean(str(key), valid)}; "
            f"valid keys here are {', '.join(valid)}"
        )
    if kind == "missing":
        return f"{location}: required but missing; add it to the spec"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{location}: expected a mapping of fields, got {show_value(first.get('input'))}"

    value = first.get("input")
    if kind in _LIMITS:
        name, symbol = _LIMITS[kind]
        return f"{location}: {show_value(value)} must be {symbol} {first['ctx'][name]}"
    if kind in _TYPES:
        hint = number_text_hint(value) if kind != "string_type" else ""
        return f"{location}: expected {_TYPES[kind]}, got {show_value(value)}{hint}"
    if kind == "finite_number":
        return f"{location}: {show_value(value)} is not allowed; use a finite number"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", first["ctx"]["expected"])
        return (
            f"{location}: unknown value {show_value(value)}{did_you_mean(str(value), options)}; "
            f"valid values are {', '.join(options)}"
        )
    if kind == "string_too_short":
        return f"{location}: must not be empty; give a value or leave the key out"
    if kind == "string_too_long":
        return (
            f"{location}: {len(value)} characters is too long; use at most "
            f"{first['ctx']['max_length']}"
        )
    if kind == "string_pattern_mismatch":
        return (
            f"{location}: {show_value(first.get('input'))} may hold only letters, digits, '_', "
            "'.' and '-', starting with a letter or digit (it names the run folder)"
        )
    return f"{location}: {message}, got {show_value(first.get('input'))}"


def _field_names(location: list[Any]) -> list[str]:
    """Field names of the spec section at `location` (empty list = the top level)."""
    model: type[BaseModel] = Spec
    for part in location:
        annotation = model.model_fields[str(part)].annotation
        # An optional section (`MlflowSection | None`) lists the fields of its section.
        sections = [
            a
            for a in (annotation, *get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not sections:
            return []
        model = sections[0]
    return list(model.model_fields)
