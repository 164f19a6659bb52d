from __future__ import annotations

from cluster.trainable import epoch_result, trial_seed
from trainers.loop import EpochReport


def test_trial_seed_is_stable_and_distinct():
    seeds = [trial_seed(7, n) for n in range(50)]
    assert seeds == [trial_seed(7, n) for n in range(50)]
    assert len(set(seeds)) == 50
    assert trial_seed(8, 0) != trial_seed(7, 0)
    assert all(0 <= s < 2**32 for s in seeds)


def test_epoch_result_flattens_means_spreads_and_folds():
    report = EpochReport(
        epoch=3,
        folds=[{"accuracy": 0.8, "train_loss": 0.5}, {"accuracy": 0.6, "train_loss": 0.7}],
        mean={"accuracy": 0.7, "train_loss": 0.6},
        std={"accuracy": 0.1, "train_loss": 0.1},
        seconds=1.5,
        best_epoch=2,
        final=False,
    )
    result = epoch_result(report)

    assert result["epoch"] == 3
    assert result["accuracy_mean"] == 0.7 and result["accuracy_std"] == 0.1
    assert result["accuracy_fold0"] == 0.8 and result["accuracy_fold1"] == 0.6
    assert result["train_loss_fold1"] == 0.7
    assert result["best_epoch"] == 2
    assert result["last_report"] is False
