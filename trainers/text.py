"""Text to token ids: a tokenizer and a vocabulary fitted on training rows only.

The tokenizer is one regular expression over (optionally lower-cased) text: words, with an
apostrophe inside kept (`don't`), and every other non-space character as a token of its own
(`!`, `#`, `@`, `:`). It is deliberately simple, so that the few lines in the README that score
a raw sentence with an exported model reproduce it exactly from the settings in `model.json`.

A vocabulary maps each token seen at least `min_frequency` times in its training rows to an
id; id 0 is padding and id 1 stands for every other token (out of vocabulary). Rows are cut to
`max_length` tokens and padded with 0 at the end, which the rnn family skips.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_spaces.errors import DataError, SpecError
from search_spaces.rnn import PAD_ID

logger = logging.getLogger(__name__)

TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
"""Words (letters, digits, underscores; inner apostrophes kept) or single other characters."""

PAD_TOKEN = "<pad>"
OOV_TOKEN = "<unk>"
OOV_ID = PAD_ID + 1


@dataclass(frozen=True)
class TextSettings:
    """How text rows become token ids.

    Attributes:
        max_length: Tokens kept per row (the first ones); the id rows are this long.
        min_frequency: A token enters the vocabulary if it occurs at least this many times in
            the training rows; rarer ones map to the out-of-vocabulary id.
        lowercase: Lower-case the text before tokenizing.
    """

    max_length: int = 64
    min_frequency: int = 2
    lowercase: bool = True

    def __post_init__(self) -> None:
        for name in ("max_length", "min_frequency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"data.{name}: {value!r} must be an integer >= 1")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Split one text into tokens with `TOKEN_PATTERN`, lower-cased first if asked."""
    return re.findall(TOKEN_PATTERN, text.lower() if lowercase else text)


class Vocabulary:
    """Token <-> id mapping: `<pad>` is 0, `<unk>` is 1, then tokens by falling frequency.

    Build one with :meth:`fit` on training rows; ties in frequency are broken alphabetically,
    so the same rows always give the same ids.

    Args:
        tokens: Every token in id order, starting with `<pad>` and `<unk>`.
        settings: The tokenizer settings the vocabulary was built with and encodes with.
    """

    def __init__(self, tokens: Sequence[str], *, settings: TextSettings) -> None:
        if list(tokens[:2]) != [PAD_TOKEN, OOV_TOKEN]:
            raise DataError(
                f"vocabulary: must start with {PAD_TOKEN!r} and {OOV_TOKEN!r}, got "
                f"{list(tokens[:2])!r}; build it with Vocabulary.fit"
            )
        if len(set(tokens)) != len(tokens):
            raise DataError("vocabulary: holds a token twice; build it with Vocabulary.fit")
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.settings = settings
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def fit(cls, texts: Iterable[str], *, settings: TextSettings) -> Vocabulary:
        """Count the tokens of `texts` (training rows only) and keep the frequent ones."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, lowercase=settings.lowercase))

        kept = [t for t, n in counts.items() if n >= settings.min_frequency]
        kept.sort(key=lambda token: (-counts[token], token))
        # A text that happens to contain "<unk>" must not get a second id for it.
        kept = [t for t in kept if t not in (PAD_TOKEN, OOV_TOKEN)]
        logger.debug(
            "vocabulary: %d of %d distinct tokens occur >= %d times",
            len(kept),
            len(counts),
            settings.min_frequency,
        )
        return cls([PAD_TOKEN, OOV_TOKEN, *kept], settings=settings)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """The ids of one text's first `max_length` tokens; `[OOV_ID]` for a text without any."""
        tokens = tokenize(text, lowercase=self.settings.lowercase)[: self.settings.max_length]
        return [self._ids.get(token, OOV_ID) for token in tokens] or [OOV_ID]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of token ids `(N, max_length)` int64, padded with 0 at the end."""
        out = np.full((len(texts), self.settings.max_length), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)
            out[row, : len(ids)] = ids
        return out

    def describe(self) -> dict[str, Any]:
        """Everything needed to turn raw text into this vocabulary's ids, as JSON-able values."""
        return {
            "pattern": TOKEN_PATTERN,
            "lowercase": self.settings.lowercase,
            "max_length": self.settings.max_length,
            "min_frequency": self.settings.min_frequency,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
            "vocabulary": list(self.tokens),
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary that :meth:`describe` wrote (e.g. read back from `model.json`)."""
        if description.get("pattern") != TOKEN_PATTERN:
            raise DataError(
                f"vocabulary: tokenizer pattern {description.get('pattern')!r} is not this "
                f"version's {TOKEN_PATTERN!r}; tokenize with the stored pattern instead"
            )
        settings = TextSettings(
            max_length=int(description["max_length"]),
            min_frequency=int(description["min_frequency"]),
            lowercase=bool(description["lowercase"]),
        )
        return cls(description["vocabulary"], settings=settings)
