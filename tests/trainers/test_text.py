"""The tokenizer and the vocabulary: hand-worked tokens and ids, padding, round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest

from search_spaces.errors import DataError, SpecError
from trainers.text import (
    OOV_ID,
    OOV_TOKEN,
    PAD_TOKEN,
    TOKEN_PATTERN,
    TextSettings,
    Vocabulary,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A gorgeous, witty movie.", ["a", "gorgeous", ",", "witty", "movie", "."]),
        ("It's NOT what I'd call fun!", ["it's", "not", "what", "i'd", "call", "fun", "!"]),
        ("@JetBlue #fail :(", ["@", "jetblue", "#", "fail", ":", "("]),
        ("  ", []),
        ("self-driving cars", ["self", "-", "driving", "cars"]),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected
    # The README tells users to tokenize with the stored pattern; that is all tokenize does.
    assert re.findall(TOKEN_PATTERN, text.lower()) == expected


def test_tokenize_keeps_case_when_asked() -> None:
    assert tokenize("Good Film", lowercase=False) == ["Good", "Film"]


ROWS = ["the film is good", "the film is bad", "a good film", "bad bad acting"]


def test_fit_orders_by_frequency_then_alphabet_and_drops_rare_tokens() -> None:
    # Counts: film 3, bad 3, the 2, is 2, good 2, a 1, acting 1.
    vocabulary = Vocabulary.fit(ROWS, settings=TextSettings(min_frequency=2, max_length=8))
    assert vocabulary.tokens == (PAD_TOKEN, OOV_TOKEN, "bad", "film", "good", "is", "the")
    assert len(vocabulary) == 7

    everything = Vocabulary.fit(ROWS, settings=TextSettings(min_frequency=1))
    assert everything.tokens[-2:] == ("a", "acting")


def test_encode_pads_truncates_and_maps_unknown_tokens() -> None:
    vocabulary = Vocabulary.fit(ROWS, settings=TextSettings(min_frequency=2, max_length=4))
    ids = vocabulary.encode(np.array(["the good film", "a bad bad bad bad film", "", "zebra"]))

    assert ids.dtype == np.int64
    np.testing.assert_array_equal(
        ids,
        [
            [6, 4, 3, 0],  # the good film + pad
            [OOV_ID, 2, 2, 2],  # "a" is rare; cut to 4 tokens
            [OOV_ID, 0, 0, 0],  # no token at all still reads one step
            [OOV_ID, 0, 0, 0],
        ],
    )
    assert vocabulary.ids("good good") == [4, 4]


def test_a_text_holding_the_special_tokens_gets_no_second_id() -> None:
    vocabulary = Vocabulary.fit(["<unk> <unk>"] * 3, settings=TextSettings(min_frequency=1))
    assert vocabulary.tokens.count(OOV_TOKEN) == 1
    # "<unk>" tokenizes as "<", "unk", ">", all frequent.
    assert set(vocabulary.tokens[2:]) == {"<", "unk", ">"}


def test_description_round_trips() -> None:
    vocabulary = Vocabulary.fit(ROWS, settings=TextSettings(min_frequency=2, max_length=5))
    description = vocabulary.describe()
    assert description["pad_id"] == 0 and description["oov_id"] == 1
    assert description["vocabulary"][:2] == [PAD_TOKEN, OOV_TOKEN]

    again = Vocabulary.from_description(description)
    assert again.tokens == vocabulary.tokens
    np.testing.assert_array_equal(again.encode(ROWS), vocabulary.encode(ROWS))


def test_description_with_another_pattern_is_refused() -> None:
    description = Vocabulary.fit(ROWS, settings=TextSettings()).describe()
    with pytest.raises(DataError, match=r"^vocabulary: tokenizer pattern"):
        Vocabulary.from_description(description | {"pattern": r"\S+"})


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        (["a", "b"], r"must start with '<pad>' and '<unk>'"),
        ([PAD_TOKEN, OOV_TOKEN, "a", "a"], "twice"),
    ],
)
def test_malformed_vocabulary_is_refused(tokens: list[str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        Vocabulary(tokens, settings=TextSettings())


@pytest.mark.parametrize(
    ("field", "value"), [("max_length", 0), ("min_frequency", -1), ("max_length", 2.5)]
)
def test_bad_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(SpecError, match=rf"^data\.{field}: .* must be an integer >= 1"):
        TextSettings(**{field: value})
