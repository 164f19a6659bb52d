"""TorchScript export: round trip, checksum, metadata, and refusing a wrong script."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.builder import build_model, count_parameters
from trainers.export import ExportError, export_model, load_exported
from trainers.preprocessing import wrap_with_normalization

_MODEL = {
    "family": "mlp",
    "depth": 2,
    "width": 8,
    "activation": "gelu",
    "connectivity": "residual",
    "batch_norm": True,
}


@pytest.fixture
def model() -> nn.Module:
    """A small regression MLP behind the normalisation wrapper, as the refit returns it."""
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(32, 5)).astype(np.float32)
    y = rng.normal(100.0, 10.0, size=32).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        inner = build_model(_MODEL, dropout=0.2, input_shape=(5,), n_outputs=1)
    return wrap_with_normalization(inner, x_train=x, y_train=y, task="regression").eval()


@pytest.fixture
def example() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).normal(3.0, 2.0, size=(6, 5)).astype("f4"))


def test_round_trip_gives_the_same_outputs(model, example, tmp_path: Path) -> None:
    metadata = {"config": {"model": _MODEL}, "test": {"mse": np.float64(12.5)}, "seed": 3}
    description = export_model(
        model, path=tmp_path / "model.pt", example_input=example, metadata=metadata
    )

    # Nothing but the two files: the temporary files were renamed into place.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]

    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(example), model(example), atol=1e-5, rtol=1e-4)

    reloaded, stored = load_exported(tmp_path)
    assert stored == description == json.loads((tmp_path / "model.json").read_text())
    with torch.no_grad():
        torch.testing.assert_close(reloaded(example), model(example), atol=1e-5, rtol=1e-4)
    assert not reloaded.training


def test_metadata_holds_checksum_parameters_and_shape(model, example, tmp_path: Path) -> None:
    description = export_model(
        model,
        path=tmp_path / "new" / "dir" / "model.pt",
        example_input=example,
        metadata={"seed": 3},
    )

    written = (tmp_path / "new" / "dir" / "model.pt").read_bytes()
    assert description["sha256"] == hashlib.sha256(written).hexdigest()
    assert description["parameters"] == count_parameters(model) > 0
    assert description["input_shape"] == [5]
    assert description["seed"] == 3


def test_modified_model_file_is_caught(model, example, tmp_path: Path) -> None:
    export_model(model, path=tmp_path / "model.pt", example_input=example, metadata={})
    with (tmp_path / "model.pt").open("ab") as file:
        file.write(b"tampered")

    with pytest.raises(ExportError, match=r"model\.pt: sha256 is [0-9a-f]{64} but model\.json"):
        load_exported(tmp_path)


def test_verify_false_skips_the_checksum(model, example, tmp_path: Path) -> None:
    export_model(model, path=tmp_path / "model.pt", example_input=example, metadata={})
    description = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**description, "sha256": "0" * 64}))

    with pytest.raises(ExportError, match="sha256"):
        load_exported(tmp_path)
    loaded, stored = load_exported(tmp_path, verify=False)
    assert stored["sha256"] == "0" * 64
    with torch.no_grad():
        torch.testing.assert_close(loaded(example), model(example), atol=1e-5, rtol=1e-4)


class _ScriptsDifferently(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return x + 0.5
        return x


class _NotScriptable(nn.Module):
    def forward(self, x):
        return torch.as_tensor(np.asarray(x) * 2)


def test_disagreeing_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"scripted and eager outputs differ by up to 0\.5"):
        export_model(
            _ScriptsDifferently(),
            path=tmp_path / "model.pt",
            example_input=torch.ones(2, 3),
            metadata={},
        )
    assert not (tmp_path / "model.pt").exists()


def test_unscriptable_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"_NotScriptable cannot be scripted"):
        export_model(
            _NotScriptable(),
            path=tmp_path / "model.pt",
            example_input=torch.ones(2, 3),
            metadata={},
        )


def test_missing_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"model\.pt: missing"):
        load_exported(tmp_path)


def test_export_overwrites_an_earlier_one(model, example, tmp_path: Path) -> None:
    export_model(model, path=tmp_path / "model.pt", example_input=example, metadata={"run": 1})
    second = export_model(
        model, path=tmp_path / "model.pt", example_input=example, metadata={"run": 2}
    )

    _, stored = load_exported(tmp_path)
    assert stored == second and stored["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]


def test_export_reads_the_written_file_back_and_checks_it(model, example, tmp_path, monkeypatch):
    import trainers.export

    read_back: list[Path] = []
    real = trainers.export.load_exported

    def tampered(path: Path, **kwargs: Any):
        # Stands in for a file that differs from what was scripted: outputs shifted by 1.
        read_back.append(Path(path))
        module, description = real(path, **kwargs)
        return torch.jit.script(_Shifted(module)), description

    monkeypatch.setattr(trainers.export, "load_exported", tampered)
    with pytest.raises(ExportError, match=r"scripted and eager outputs differ by up to 1"):
        export_model(model, path=tmp_path / "model.pt", example_input=example, metadata={})
    assert read_back == [tmp_path / "model.pt"]


class _Shifted(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 1.0
