"""Optimizers, schedules and the weight penalty: settings reach torch, values match by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search_spaces.errors import SpecError
from trainers.optim import OPTIMIZERS, SCHEDULES, make_lr_schedule, make_optimizer, weight_penalty


def _params() -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize(
    ("settings", "kind", "expected"),
    [
        (
            {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
            torch.optim.SGD,
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0},
        ),
        (
            {"name": "sgd", "lr": 0.2, "momentum": 0.5, "nesterov": False},
            torch.optim.SGD,
            {"lr": 0.2, "momentum": 0.5, "nesterov": False},
        ),
        # Momentum None means none; nesterov without momentum is plain SGD rather than an error.
        (
            {"name": "sgd", "lr": 0.1, "momentum": None, "nesterov": True},
            torch.optim.SGD,
            {"momentum": 0.0, "nesterov": False},
        ),
        (
            {"name": "rmsprop", "lr": 0.003, "momentum": 0.7, "nesterov": True},
            torch.optim.RMSprop,
            {"lr": 0.003, "momentum": 0.7, "weight_decay": 0},
        ),
        (
            {"name": "adam", "lr": 0.001, "momentum": None, "nesterov": False},
            torch.optim.Adam,
            {"lr": 0.001, "weight_decay": 0},
        ),
    ],
)
def test_settings_reach_torch(settings: dict, kind: type, expected: dict) -> None:
    optimizer = make_optimizer(_params(), {**settings, "batch_size": 32, "schedule": "none"})

    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    for key, value in expected.items():
        assert group[key] == pytest.approx(value), key


def test_every_listed_optimizer_builds() -> None:
    built = {type(make_optimizer(_params(), {"name": n, "lr": 0.1})) for n in OPTIMIZERS}
    assert built == {torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop}


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"name": "adagrad", "lr": 0.1}, r"optimizer\.name: got 'adagrad'.*sgd, adam, rmsprop"),
        ({"name": "sgd", "lr": -0.1}, r"optimizer\.lr: got -0\.1.*>= 0"),
        ({"name": "sgd"}, r"optimizer\.lr: missing"),
        ({"name": "rmsprop", "lr": 0.1, "momentum": -1}, r"optimizer\.momentum: got -1"),
    ],
)
def test_bad_settings_name_the_field(settings: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        make_optimizer(_params(), settings)


def _lrs_after_steps(schedule: str, *, epochs: int, steps: int) -> list[float]:
    optimizer = torch.optim.SGD(_params(), lr=1.0)
    scheduler = make_lr_schedule(optimizer, schedule=schedule, epochs=epochs)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_anneals_to_zero_over_the_epochs() -> None:
    lrs = _lrs_after_steps("cosine", epochs=4, steps=4)

    expected = [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]  # 1, .85, .5, .15, 0
    assert lrs == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [
        # Drops every 9 // 3 = 3 epochs.
        (9, [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001]),
        # Fewer than 3 epochs: drops every epoch rather than never.
        (2, [1, 0.1, 0.01]),
    ],
)
def test_step_divides_by_ten_every_third_of_the_run(epochs: int, expected: list[float]) -> None:
    lrs = _lrs_after_steps("step", epochs=epochs, steps=len(expected) - 1)
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_none_keeps_the_rate_and_every_schedule_is_known() -> None:
    assert _lrs_after_steps("none", epochs=3, steps=3) == [1.0] * 4
    optimizer = torch.optim.SGD(_params(), lr=1.0)
    for schedule in SCHEDULES:
        make_lr_schedule(optimizer, schedule=schedule, epochs=5)

    with pytest.raises(SpecError, match=r"optimizer\.schedule: got 'linear'"):
        make_lr_schedule(optimizer, schedule="linear", epochs=5)
    with pytest.raises(SpecError, match=r"training\.epochs: got 0"):
        make_lr_schedule(optimizer, schedule="cosine", epochs=0)


def _known_linear() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))  # sum|w| 10, sum w^2 30
        layer.bias.copy_(torch.tensor([100.0, -200.0]))  # must not count
    return layer


@pytest.mark.parametrize(
    ("l1", "l2", "expected"),
    [
        (0.5, 0.0, 0.5 * 10),
        (0.0, 0.1, 0.1 * 30),
        (0.5, 0.1, 0.5 * 10 + 0.1 * 30),  # elastic net
    ],
)
def test_penalty_matches_hand_computation(l1: float, l2: float, expected: float) -> None:
    assert weight_penalty(_known_linear(), l1=l1, l2=l2).item() == pytest.approx(expected)


def test_penalty_skips_biases_and_norm_layers_and_has_the_right_gradient() -> None:
    linear = _known_linear()
    norm = nn.BatchNorm1d(2)
    with torch.no_grad():
        norm.weight.fill_(7.0)
        norm.bias.fill_(-7.0)
    model = nn.Sequential(linear, norm)

    penalty = weight_penalty(model, l1=0.0, l2=0.1)
    penalty.backward()

    assert penalty.item() == pytest.approx(3.0)
    # d(l2 * sum w^2)/dw = 2 * l2 * w, and nothing reaches the unpenalised parameters.
    torch.testing.assert_close(linear.weight.grad, 0.2 * linear.weight.detach())
    assert linear.bias.grad is None and norm.weight.grad is None


def test_penalty_is_zero_when_off_and_rejects_negative_coefficients() -> None:
    penalty = weight_penalty(_known_linear(), l1=0.0, l2=0.0)
    assert penalty.item() == 0.0 and penalty.dim() == 0

    with pytest.raises(SpecError, match=r"regularization\.l2: got -0\.5"):
        weight_penalty(_known_linear(), l1=0.0, l2=-0.5)
