"""``lam = "auto"`` (ALGORITHM.md §3): the choice rule on hand-made scores, the config value, and a tiny end-to-end
selection whose λ = 0 candidate must be exactly a Skip run (the KL term off)."""
from __future__ import annotations

import json
import math

import pytest

from simlabel_ext.cli import main
from simlabel_ext.train import TrainConfig, Trainer, fit_run, load_config, write_config
from simlabel_ext.train.lam_selection import LAM_CANDIDATES, choose_lam

TINY = dict(dataset="synthetic", dataset_options={"preset": "custom", "items": 160, "annotators": 6, "classes": 3,
                                                  "missing": 0.6, "accuracy": 0.8, "separation": 1.5},
            model="heads", model_options={"hidden": 8, "depth": 1}, epochs=2, batch_size=32, lr=3e-2,
            progress=False, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """One intra-op thread (see conftest.one_thread)."""


@pytest.mark.parametrize("scores, expected", [
    ({0.0: 0.50, 1.0: 0.60, 3.0: 0.55}, 1.0),
    ({0.0: 0.70, 1.0: 0.60, 3.0: 0.65}, 0.0),  # the KL term does not help: fall back to 0
    ({0.0: 0.50, 1.0: 0.60, 3.0: 0.60}, 1.0),  # a tie goes to the smaller λ
    ({0.0: 0.60, 1.0: 0.60, 3.0: 0.60}, 0.0),
    ({0.0: None, 1.0: math.nan, 3.0: 0.20}, 3.0),  # unscored candidates never win
    ({0.0: None, 1.0: None, 3.0: None}, 0.0),
])
def test_choose_lam(scores, expected):
    assert choose_lam(scores) == expected


def test_choose_lam_needs_a_candidate():
    with pytest.raises(ValueError, match="at least one"):
        choose_lam({})


def test_auto_is_a_config_value_that_round_trips(tmp_path):
    assert TrainConfig(lam="AUTO ").lam == "auto"
    assert TrainConfig(lam="2.5").lam == 2.5
    with pytest.raises(ValueError, match="lam must be a number >= 0 or 'auto'; got 'often'"):
        TrainConfig(lam="often")
    with pytest.raises(ValueError, match="'lam' must be >= 0"):
        TrainConfig(lam=-1.0)
    write_config(TrainConfig(lam="auto"), tmp_path / "c.toml")
    assert 'lam = "auto"' in (tmp_path / "c.toml").read_text()
    assert load_config(tmp_path / "c.toml").lam == "auto"


def test_a_single_trainer_refuses_auto_outside_skip(tmp_path):
    with pytest.raises(ValueError, match="one run per candidate"):
        Trainer(TrainConfig(**TINY, lam="auto", mode="simlabel"), tmp_path)
    assert TrainConfig(**TINY, lam="auto", mode="skip").step_lam == 0.0


def test_fit_run_trains_every_candidate_and_keeps_the_best_on_validation(tmp_path):
    config = TrainConfig(**TINY, lam="auto", mode="simlabel")
    metrics = fit_run(config, tmp_path / "auto", log=lambda line: None).metrics
    candidates = {lam: json.loads((tmp_path / "auto" / f"lam-{lam:g}" / "metrics.json").read_text())
                  for lam in LAM_CANDIDATES}
    val = {lam: m["best_val_avg_accuracy"] for lam, m in candidates.items()}
    chosen = choose_lam(val)
    assert metrics["lam_selected"] == chosen
    assert metrics["avg_accuracy"] == candidates[chosen]["avg_accuracy"]
    assert [c["lam"] for c in metrics["lam_candidates"]] == list(LAM_CANDIDATES)
    assert [c["val_avg_accuracy"] for c in metrics["lam_candidates"]] == [val[lam] for lam in LAM_CANDIDATES]
    saved = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert saved["lam_selected"] == chosen
    assert (tmp_path / "auto" / "history.json").read_text() == \
        (tmp_path / "auto" / f"lam-{chosen:g}" / "history.json").read_text()
    assert load_config(tmp_path / "auto" / "config.toml").lam == "auto"

    # λ = 0 is Skip's objective: the same model, step for step, as a Skip run of the same seed
    skip = fit_run(config.replace(mode="skip"), tmp_path / "skip", log=lambda line: None).metrics
    assert candidates[0.0]["avg_accuracy"] == skip["avg_accuracy"]
    assert candidates[0.0]["best_val_loss"] == skip["best_val_loss"]

    # resuming reuses the finished candidates instead of training them again
    again = fit_run(config, tmp_path / "auto", log=lambda line: None, resume=True).metrics
    assert again["lam_candidates"] == metrics["lam_candidates"]
    assert again["train_seconds"] == metrics["train_seconds"]


def test_cli_reads_lam_auto_and_rejects_other_words(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--preset", "custom", "--items", "120", "--annotators", "5",
                 "--model-option", "hidden=8", "--model-option", "depth=1", "--epochs", "1", "--batch-size", "64",
                 "--mode", "simlabel", "--lam", "auto", "--no-progress", "--device", "cpu",
                 "--out", str(tmp_path / "run")]) == 0
    assert "-> λ = " in capsys.readouterr().err
    assert "-> λ = " in (tmp_path / "run" / "train.log").read_text()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["lam_selected"] in LAM_CANDIDATES
    assert main(["train", "--lam", "often", "--out", str(tmp_path / "bad")]) == 2
    assert "argument --lam: lam must be a number >= 0 or 'auto'; got 'often'" in capsys.readouterr().err


def test_compare_with_lam_auto_reports_the_choice(tmp_path, capsys):
    assert main(["compare", "--dataset", "synthetic", "--preset", "custom", "--items", "120", "--annotators", "5",
                 "--model-option", "hidden=8", "--model-option", "depth=1", "--epochs", "1", "--batch-size", "64",
                 "--modes", "skip,simlabel", "--seeds", "0", "--lam", "auto", "--no-plots", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    chosen = json.loads((tmp_path / "runs" / "heads" / "simlabel" / "mr0.0" / "seed0" / "metrics.json").read_text())
    lam = chosen["lam_selected"]
    err = capsys.readouterr().err
    assert "heads simlabel missing 0 seed 0: Avg " in err and f"  imputed 0  λ {lam:g} chosen  (" in err
    assert "heads skip missing 0 seed 0" in err and err.count(" chosen") == 1  # Skip runs have no λ to choose
    table = (tmp_path / "results.md").read_text()
    assert "| λ chosen |" in table and f"| {lam:g} |" in table
