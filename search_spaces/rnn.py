"""The "rnn" family: recurrent networks over token ids (text) or float sequences (series).

A network is an optional token embedding, `depth` stacked recurrent layers of one `cell`
(vanilla RNN, LSTM or GRU) with `width` hidden units per direction, a `summary` of the
sequence of hidden states, and a linear head:

- token ids `(B, L)` int64, pad id 0 at the end: Embedding(padding_idx=0) -> Dropout -> the
  recurrent layers over the real steps only (a packed sequence), so extra padding never
  changes the output. A row's length is the position of its last non-pad id (at least 1).
- float sequences `(B, T, F)`: Dropout -> the recurrent layers over all T steps.

The summaries: `last` (the state after the last real step; for a bidirectional network, the
forward state there joined with the backward state at step 0, where the backward pass ends),
`mean` and `max` (over the real steps of every direction's states). Dropout with probability
`layer_dropout` sits between stacked layers, and the shared `dropout` before the head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from search_spaces.errors import SpecError
from search_spaces.layers import check_bool, check_choice, check_dropout, check_int

CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")
SUMMARIES: tuple[str, ...] = ("last", "mean", "max")

PAD_ID = 0
"""The token id of padding; rows of token ids are padded with it at the end."""

_CELL_TYPES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """Embedding (for token ids), recurrent layers, a summary of the states, a linear head.

    Maps token ids `(B, L)` int64 or float sequences `(B, T, F)` to `(B, n_outputs)`.
    """

    # Constants to TorchScript, so each forward compiles only the branches this model takes.
    # (`Final` annotations would do the same, but TorchScript cannot read them as the strings
    # that postponed annotations make of them.)
    __constants__ = ["tokens", "summary", "bidirectional", "pad_id"]

    def __init__(
        self,
        *,
        embedding: nn.Module,
        dropout: nn.Module,
        recurrent: nn.RNNBase,
        head: nn.Module,
        tokens: bool,
        summary: str,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = dropout
        self.recurrent = recurrent
        self.head = head
        self.tokens = tokens
        self.summary = summary
        self.bidirectional = recurrent.bidirectional
        self.pad_id = PAD_ID

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = self._lengths(x)  # (B,)
        steps = self.dropout(self.embedding(x))  # (B, L, E) or (B, T, F)

        # Packing runs every row over its real steps only; a pad step is never seen.
        packed = pack_padded_sequence(steps, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = self.recurrent(packed)
        out, _ = pad_packed_sequence(states, batch_first=True)  # (B, max(lengths), D * H)

        return self.head(self._summarise(out, lengths.to(out.device)))  # (B, n_outputs)

    def _lengths(self, x: torch.Tensor) -> torch.Tensor:
        """Real steps per row: up to the last non-pad token id, or every step of a series."""
        if not self.tokens:
            return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)

        # The last non-pad position + 1, so a pad id inside a row does not cut it short; a row
        # of padding only counts one step, so it still gets an output.
        positions = torch.arange(1, x.shape[1] + 1, device=x.device).unsqueeze(0)  # (1, L)
        return ((x != self.pad_id).long() * positions).amax(dim=1).clamp(min=1)

    def _summarise(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(B, T', D * H)` states, zero past each row's length, to `(B, D * H)`."""
        if self.summary == "mean":
            return out.sum(dim=1) / lengths.unsqueeze(1).to(out.dtype)

        if self.summary == "max":
            steps = torch.arange(out.shape[1], device=out.device).unsqueeze(0)  # (1, T')
            real = (steps < lengths.unsqueeze(1)).unsqueeze(2)  # (B, T', 1)
            return out.masked_fill(~real, float("-inf")).amax(dim=1)

        # last: the forward direction ends at the last real step, the backward one at step 0.
        batch, features = out.shape[0], out.shape[2]
        index = (lengths - 1).view(batch, 1, 1).expand(batch, 1, features)
        last = out.gather(1, index).squeeze(1)  # (B, D * H)
        if not self.bidirectional:
            return last
        hidden = features // 2
        return torch.cat([last[:, :hidden], out[:, 0, hidden:]], dim=1)


def build_rnn(
    *,
    input_shape: tuple[int, ...],
    n_outputs: int,
    dropout: float,
    vocab_size: int | None = None,
    depth: int,
    width: int,
    cell: str = "lstm",
    bidirectional: bool = False,
    embedding_dim: int = 64,
    summary: str = "last",
    layer_dropout: float = 0.0,
) -> RecurrentNet:
    """Build one recurrent network of the search space.

    Args:
        input_shape: `(L,)` for token ids (then `vocab_size` is required) or `(T, F)` for
            float sequences of T steps with F features each.
        n_outputs: classes for classification, 1 for regression.
        dropout: probability on the embedded (or raw) steps and before the head.
        vocab_size: number of token ids, pad and out-of-vocabulary ids included; None for
            float sequences.
        depth: stacked recurrent layers, >= 1.
        width: hidden units of each layer, per direction.
        cell: one of `CELLS`.
        bidirectional: whether each layer also reads the sequence backwards.
        embedding_dim: size of a token's embedding; unused for float sequences.
        summary: one of `SUMMARIES`.
        layer_dropout: probability between stacked layers (no effect when depth is 1).

    Raises:
        SpecError: when a setting is out of range or not a known option, or the input shape
            does not fit the inputs.
    """
    depth = check_int("model.depth", depth)
    width = check_int("model.width", width)
    check_choice("model.cell", cell, CELLS)
    bidirectional = check_bool("model.bidirectional", bidirectional)
    embedding_dim = check_int("model.embedding_dim", embedding_dim)
    check_choice("model.summary", summary, SUMMARIES)
    dropout = check_dropout(dropout)
    layer_dropout = _check_layer_dropout(layer_dropout)
    n_outputs = check_int("n_outputs", n_outputs)

    tokens = vocab_size is not None
    if tokens and len(input_shape) != 1:
        raise SpecError(
            f"model.family: rnn reads token ids as (L,) rows, got input shape "
            f"{tuple(input_shape)} with a vocabulary; pass the padded id length"
        )
    if not tokens and len(input_shape) != 2:
        raise SpecError(
            f"model.family: rnn needs token ids or sequences of shape (T, F), got "
            f"{tuple(input_shape)}; use family mlp for tabular data or cnn for images"
        )

    if tokens:
        # pad and out-of-vocabulary ids come first, so a usable vocabulary holds at least 3.
        vocab_size = check_int("vocab_size", vocab_size, minimum=PAD_ID + 2)
        embedding: nn.Module = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        step_features = embedding_dim
    else:
        embedding = nn.Identity()
        step_features = int(input_shape[1])

    recurrent = _CELL_TYPES[cell](
        step_features,
        width,
        num_layers=depth,
        batch_first=True,
        bidirectional=bidirectional,
        # torch warns about inter-layer dropout on a single layer, where it does nothing.
        dropout=layer_dropout if depth > 1 else 0.0,
    )
    directions = 2 if bidirectional else 1
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(directions * width, n_outputs))
    return RecurrentNet(
        embedding=embedding,
        dropout=nn.Dropout(dropout),
        recurrent=recurrent,
        head=head,
        tokens=tokens,
        summary=summary,
    )


def _check_layer_dropout(value: object) -> float:
    try:
        return check_dropout(value)
    except SpecError:
        raise SpecError(
            f"model.layer_dropout: {value!r} must be a probability in [0, 1); "
            "use 0 for no dropout between layers"
        ) from None
