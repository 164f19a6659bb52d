"""Turn the "model" section of one sampled config into a `torch.nn.Module`.

Each family is one function in its own module, listed in `FAMILIES`. Its keyword arguments
beyond `input_shape`, `n_outputs`, `dropout` and `vocab_size` (taken only by families that read
token ids) are the keys of the "model" section it understands; those with defaults are
optional. Adding a family means one new file and one
entry in `FAMILIES`.

Building draws initial weights from torch's global generator; a caller that wants the same
weights twice wraps the call in `torch.random.fork_rng()` and seeds inside it.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from search_spaces.cnn import build_cnn
from search_spaces.errors import SpecError
from search_spaces.layers import ACTIVATIONS, CONNECTIVITIES, POOLINGS
from search_spaces.mlp import build_mlp
from search_spaces.rnn import CELLS, SUMMARIES, build_rnn

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "CONNECTIVITIES",
    "FAMILIES",
    "POOLINGS",
    "SUMMARIES",
    "build_model",
    "count_parameters",
]

logger = logging.getLogger(__name__)

FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "rnn": build_rnn,
}

# Passed by build_model itself, never read from the "model" section.
_CALL_ARGS = frozenset({"input_shape", "n_outputs", "dropout", "vocab_size"})


def build_model(
    model: Mapping[str, Any],
    *,
    dropout: float,
    input_shape: tuple[int, ...],
    n_outputs: int,
    vocab_size: int | None = None,
) -> nn.Module:
    """Build the network that a resolved "model" section describes.

    Args:
        model: `family` plus that family's keys (`depth`, `width`, `activation`,
            `connectivity`, `batch_norm`, and for cnn `channels`, `kernel_size`, `pooling`,
            `convs_per_stage`, for rnn `cell`, `bidirectional`, `embedding_dim`, `summary`,
            `layer_dropout`). Keys that only another family uses are ignored, so a section
            searched over several families may carry them.
        dropout: the `regularization.dropout` probability.
        input_shape: shape of one example without the batch axis: `(F,)` for tables,
            `(C, H, W)` for images, `(L,)` for padded token ids, `(T, F)` for sequences.
        n_outputs: classes for classification, 1 for regression.
        vocab_size: for token ids, the number of ids (pad and out-of-vocabulary included);
            None for float inputs. Only families that embed tokens (rnn) accept it.

    Returns:
        A module mapping `(B, *input_shape)` to `(B, n_outputs)`; every one works with
        `torch.jit.script`.

    Raises:
        SpecError: for an unknown family or key, a missing key, or a bad value.
    """
    family = model.get("family")
    if not isinstance(family, str) or family not in FAMILIES:
        raise SpecError(
            f"model.family: {family!r} is not a valid option; choose one of {', '.join(FAMILIES)}"
        )
    _check_input_shape(input_shape)

    # Keys no family understands are typos; keys of another family are simply not ours.
    known = set().union(*(_family_keys(build)[0] for build in FAMILIES.values()))
    unknown = sorted(set(model) - known - {"family"})
    if unknown:
        raise SpecError(
            f"model.{unknown[0]}: not a key of any model family; known keys are "
            f"{', '.join(sorted(known))}"
        )

    build = FAMILIES[family]
    keys, required = _family_keys(build)
    missing = sorted(required - set(model))
    if missing:
        raise SpecError(f"model.{missing[0]}: required for family {family} but missing; set it")

    kwargs = {key: model[key] for key in keys if key in model}
    if vocab_size is not None:
        if "vocab_size" not in inspect.signature(build).parameters:
            raise SpecError(
                f"model.family: {family} cannot read token ids; use family rnn for text data"
            )
        kwargs["vocab_size"] = vocab_size
    module = build(input_shape=tuple(input_shape), n_outputs=n_outputs, dropout=dropout, **kwargs)
    logger.debug("built %s with %d parameters", family, count_parameters(module))
    return module


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (those with `requires_grad`)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _family_keys(build: Callable[..., nn.Module]) -> tuple[set[str], set[str]]:
    """All "model" keys a family builder takes, and those among them without a default."""
    params = [
        p
        for p in inspect.signature(build).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _CALL_ARGS
    ]
    keys = {p.name for p in params}
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    return keys, required


def _check_input_shape(input_shape: tuple[int, ...]) -> None:
    valid = len(input_shape) >= 1 and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in input_shape
    )
    if not valid:
        raise SpecError(
            f"input_shape: {input_shape!r} must be a non-empty tuple of positive sizes, "
            "without the batch axis"
        )
