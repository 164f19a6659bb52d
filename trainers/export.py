"""TorchScript export of a trained model, with a checksummed description beside it.

A run directory's winner is two files: ``model.pt`` (the scripted model, loadable with
``torch.jit.load`` and no archsearch installed) and ``model.json`` (what it is, how it
scored, and the SHA-256 of ``model.pt``, so a damaged or swapped file is noticed on load).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.builder import count_parameters
from search_spaces.errors import ArchsearchError
from trainers.atomic import write_atomically

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"

# How closely the scripted model must reproduce the eager one on the example input.
ATOL = 1e-5
RTOL = 1e-4


class ExportError(ArchsearchError, RuntimeError):
    """A model could not be scripted, scripted wrongly, or an exported file does not check out."""


def export_model(
    model: nn.Module,
    *,
    path: Path,
    example_input: torch.Tensor,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Script ``model``, check it against eager mode, write it and its description.

    Both files are written atomically (a temporary file in the same folder, then a rename), so
    a crash leaves either the old file or the new one, never a torn one. The written model is
    then loaded back with :func:`load_exported`, which checks its SHA-256, and checked against
    eager mode again.

    Args:
        model: The trained model; it is put in eval mode.
        path: The model file to write (e.g. ``run/model.pt``); its description goes beside it
            with the suffix ``.json``. The folder is created if missing.
        example_input: A batch ``(N, *input_shape)`` on the model's device, on which the
            scripted and eager outputs must agree (``torch.allclose``, atol 1e-5, rtol 1e-4).
        metadata: JSON-able description (config, scores, dataset, ...) stored in
            ``model.json``; numpy scalars and arrays and paths are converted.

    Returns:
        The contents of ``model.json``: ``metadata`` plus ``"sha256"`` (of ``model.pt``),
        ``"parameters"`` (trainable parameter count) and ``"input_shape"`` (one sample's
        shape, without the batch axis). These three computed keys override any of the same
        name in ``metadata``.

    Raises:
        ExportError: The model cannot be scripted, its scripted outputs differ from eager, or
            the file read back does not match its checksum or its outputs.
    """
    model.eval()
    scripted = _script(model)
    _check_agreement(model, scripted, example_input)

    model_path = Path(path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(model_path, lambda f: torch.jit.save(scripted, f))

    description = {
        **metadata,
        "sha256": _sha256(model_path),
        "parameters": count_parameters(model),
        "input_shape": list(example_input.shape[1:]),
    }
    try:
        text = json.dumps(description, indent=2, sort_keys=True, default=_jsonable)
    except (TypeError, ValueError) as error:
        raise ExportError(f"metadata: {error}; pass numbers, strings, lists and dicts") from error
    write_atomically(description_path(model_path), lambda f: f.write(text.encode()))

    # Read back what is on disk: its checksum against the description, its outputs against
    # the eager model's, so what was checked is what was written.
    written, _ = load_exported(model_path)
    _check_agreement(model, written.to(example_input.device), example_input)

    logger.info("exported %s (%d parameters)", model_path, description["parameters"])
    return json.loads(text)


def description_path(model_path: Path) -> Path:
    """Where the description of a model file lives: beside it, with the suffix ``.json``."""
    return Path(model_path).with_suffix(".json")


def load_exported(
    path: Path, *, verify: bool = True
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a model written by :func:`export_model`, on the CPU, in eval mode.

    Args:
        path: The model file (``model.pt``), or a folder holding ``model.pt``; its
            description is read from beside it.
        verify: Recompute the SHA-256 of the model file and compare it with the description's.

    Returns:
        The scripted model and the contents of its description.

    Raises:
        ExportError: A file is missing or unreadable, or (``verify``) the checksum differs.
    """
    model_path = Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path)
    metadata_path = description_path(model_path)
    for file in (model_path, metadata_path):
        if not file.is_file():
            raise ExportError(f"{file}: missing; export the model again with archsearch export")

    try:
        description = json.loads(metadata_path.read_text())
    except (OSError, ValueError) as error:
        raise ExportError(
            f"{metadata_path}: unreadable ({error}); export the model again"
        ) from error

    if verify:
        expected, actual = description.get("sha256"), _sha256(model_path)
        if actual != expected:
            raise ExportError(
                f"{model_path}: sha256 is {actual} but {metadata_path.name} records {expected}; "
                "the file was modified or is incomplete, so export the model again"
            )

    module = torch.jit.load(str(model_path), map_location="cpu")
    return module.eval(), description


def _script(model: nn.Module) -> torch.jit.ScriptModule:
    if isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return torch.jit.script(model)
    except Exception as error:  # TorchScript raises a zoo of types, all meaning the same here
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ExportError(
            f"model: {type(model).__name__} cannot be scripted with torch.jit.script "
            f"({lines[0]}); give its forward type hints and TorchScript-compatible code"
        ) from error


def _check_agreement(
    model: nn.Module, scripted: torch.jit.ScriptModule, example_input: torch.Tensor
) -> None:
    with torch.no_grad():
        eager_out = model(example_input)
        scripted_out = scripted(example_input)

    if eager_out.shape != scripted_out.shape:
        raise ExportError(
            f"model: scripted output has shape {tuple(scripted_out.shape)} but eager output has "
            f"{tuple(eager_out.shape)} on example_input; the forward must not depend on Python"
            " state that TorchScript drops"
        )
    if not torch.allclose(scripted_out, eager_out, atol=ATOL, rtol=RTOL, equal_nan=True):
        gap = (scripted_out - eager_out).abs().nan_to_num(nan=float("inf")).max().item()
        raise ExportError(
            f"model: scripted and eager outputs differ by up to {gap:.3g} on example_input, "
            f"beyond atol={ATOL} and rtol={RTOL}; the forward must not depend on Python state "
            "that TorchScript drops"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Turn the non-JSON values metadata commonly holds into JSON ones."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON-able")
