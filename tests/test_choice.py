"""The model to use (simlabel_ext.report.choice): picks made on validation, gains paired on test.

Oracles: picks worked out by hand from the validation Avg written here; test outcomes built so that each Avg is
known exactly (right on every entry: 1, wrong on every entry: 0, right on the first half of the items: 0.5); the
interval is that of :func:`paired_gain` on the pairs the choice must make, and the rendered row is written out.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from simlabel_ext.report import write_report
from simlabel_ext.report.choice import Pick, best_by_validation, choose, markdown_choice
from simlabel_ext.report.paired import SplitOutcome, paired_gain

ITEMS, ANNOTATORS = 4, 2
RIGHT = SplitOutcome(np.ones((ITEMS, ANNOTATORS)), np.ones((ITEMS, ANNOTATORS)))
WRONG = SplitOutcome(np.zeros((ITEMS, ANNOTATORS)), np.ones((ITEMS, ANNOTATORS)))
HALF = SplitOutcome(np.repeat([[1.0], [1.0], [0.0], [0.0]], ANNOTATORS, axis=1), np.ones((ITEMS, ANNOTATORS)))
AVG = {id(RIGHT): 1.0, id(WRONG): 0.0, id(HALF): 0.5}


def run(model, mode, seed, val, outcome, rate=0.0):
    """A ``metrics.json`` dict (the keys the report reads) and its test outcome."""
    return {"model": model, "mode": mode, "seed": seed, "missing_rate": rate, "best_val_avg_accuracy": val,
            "avg_accuracy": AVG[id(outcome)], "micro_accuracy": AVG[id(outcome)], "imputations": 0,
            "imputation_accuracy": None, "best_epoch": 5, "epoch_limit": 10,
            "annotators": [{"id": f"A{k + 1}", "accuracy": AVG[id(outcome)], "test_count": ITEMS}
                           for k in range(ANNOTATORS)]}, outcome


def grid():
    """madl Skip is the best Skip (val 0.55 against heads' 0.35); heads SimLabel and heads SimLabel + Confidence
    tie on 0.6, above madl SimLabel's 0.45, so heads SimLabel (first in order) is the SimLabel pick."""
    pairs = []
    for seed, (h_skip, m_skip, h_sl, h_slc, m_sl) in enumerate([(0.3, 0.5, 0.7, 0.6, 0.4), (0.4, 0.6, 0.5, 0.6, 0.5)]):
        pairs += [run("heads", "skip", seed, h_skip, WRONG), run("madl", "skip", seed, m_skip, HALF),
                  run("heads", "simlabel", seed, h_sl, RIGHT), run("heads", "simlabel+confidence", seed, h_slc, WRONG),
                  run("madl", "simlabel", seed, m_sl, RIGHT)]
    return [m for m, _ in pairs], [o for _, o in pairs]


def test_picks_on_validation_and_pairs_the_picks_on_test():
    runs, outcomes = grid()
    (c,) = choose(runs, outcomes)
    assert c.missing_rate == 0.0 and c.seeds == (0, 1)
    assert c.skip == Pick("madl", "skip", pytest.approx(0.55), 0.5, 0.0)
    assert c.simlabel == Pick("heads", "simlabel", pytest.approx(0.6), 1.0, 0.0)
    # right everywhere against right on half the items, both seeds: +0.5 each, no spread
    assert c.gain.mean == pytest.approx(0.5) and c.gain.se == pytest.approx(0.0)
    want = paired_gain([(0, RIGHT, HALF), (1, RIGHT, HALF)])
    assert (c.gain.low, c.gain.high, c.gain.seeds) == (want.low, want.high, (0, 1))
    assert 0.0 <= c.gain.low <= 0.5 <= c.gain.high <= 1.0


def test_best_by_validation_takes_the_first_of_equals_and_skips_undefined():
    runs, _ = grid()
    assert best_by_validation(m for m in runs if m["mode"] == "simlabel+confidence") == ("heads", "simlabel+confidence")
    assert best_by_validation(m for m in runs if m["model"] == "heads" and m["mode"] != "skip") == ("heads", "simlabel")
    assert best_by_validation([{"model": "x", "mode": "skip", "best_val_avg_accuracy": None}]) is None
    assert best_by_validation([]) is None


def test_the_choice_is_restricted_to_the_given_modes():
    runs, outcomes = grid()
    (c,) = choose(runs, outcomes, simlabel_modes=["simlabel+confidence"])
    assert (c.simlabel.model, c.simlabel.mode, c.simlabel.test_avg) == ("heads", "simlabel+confidence", 0.0)
    assert c.gain.mean == pytest.approx(-0.5)                     # wrong everywhere against right on half
    assert choose(runs, outcomes, simlabel_modes=["dense"]) == []  # no run of that mode: no choice


def test_pairs_only_the_seeds_both_picks_have_and_a_missing_outcome_leaves_no_gain():
    runs, outcomes = grid()
    extra, extra_outcome = run("madl", "simlabel", 2, 0.99, RIGHT)  # lifts madl SimLabel to the pick (mean 0.63)
    (c,) = choose([*runs, extra], [*outcomes, extra_outcome])
    assert (c.simlabel.model, c.simlabel.mode) == ("madl", "simlabel")
    assert c.simlabel.val_avg == pytest.approx((0.4 + 0.5 + 0.99) / 3)  # validation: all its seeds
    assert c.seeds == (0, 1) and c.gain.seeds == (0, 1)                 # test: the seeds Skip has too
    outcomes = [None if (m["model"], m["mode"], m["seed"]) == ("madl", "skip", 1) else o
                for m, o in zip(runs, outcomes)]
    (c,) = choose(runs, outcomes)
    assert c.gain is None and c.skip.test_avg == 0.5


def test_one_choice_per_rate_that_has_both_arms():
    runs, outcomes = grid()
    later = [run("heads", "skip", 0, 0.2, WRONG, rate=0.4), run("madl", "simlabel", 0, 0.3, RIGHT, rate=0.4)]
    only_skip = [run("heads", "skip", 0, 0.2, WRONG, rate=0.2)]
    everything = [*zip(runs, outcomes), *later, *only_skip]
    choices = choose([m for m, _ in everything], [o for _, o in everything])
    assert [c.missing_rate for c in choices] == [0.0, 0.4]
    assert (choices[1].skip.model, choices[1].simlabel.model, choices[1].gain.mean) == ("heads", "madl", 1.0)
    with pytest.raises(ValueError, match="choose: 1 outcomes for 10 runs"):
        choose(runs, outcomes[:1])


def test_markdown_row_and_the_model_to_use():
    runs, outcomes = grid()
    lines = markdown_choice(choose(runs, outcomes))
    g = paired_gain([(0, RIGHT, HALF), (1, RIGHT, HALF)])
    interval = f"[{100 * g.low:+.1f}, {100 * g.high:+.1f}]"
    verdict = "**beats**" if g.low > 0 else "inconclusive"
    assert lines[0] == "### The model to use"
    assert lines[-2] == (f"| 0 | madl | 55.0 | 50.0 ± 0.0 | heads simlabel | 60.0 | 100.0 ± 0.0 | +50.0 ± 0.0 | "
                         f"{interval} | {verdict} | heads simlabel |")
    # the one to use is the pick with the higher validation Avg: SimLabel + Confidence's 0.6 over madl Skip's 0.55,
    # madl Skip's 0.55 over madl SimLabel's 0.45
    (c,) = choose(runs, outcomes, simlabel_modes=["simlabel+confidence"])
    assert markdown_choice([c])[-2].endswith("| heads simlabel+confidence |")
    kept = [(m, o) for m, o in zip(runs, outcomes) if m["mode"] == "skip" or m["model"] == "madl"]
    assert markdown_choice(choose([m for m, _ in kept], [o for _, o in kept]))[-2].endswith("| madl skip |")
    assert markdown_choice([]) == []


def write_runs(root, pairs):
    """Run directories with ``metrics.json`` and, where an outcome is given, a ``predictions.npz`` whose test
    split reproduces it (labels 0, the prediction 0 where right)."""
    runs = []
    for m, outcome in pairs:
        d = root / m["model"] / m["mode"].replace("+", "-") / f"seed{m['seed']}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(m))
        split = np.full(ITEMS, 2, dtype=np.int8)
        labels = np.zeros((ITEMS, ANNOTATORS), dtype=np.int16)
        prediction = np.where(outcome.correct > 0, 0, 1).astype(np.int16)
        np.savez(d / "predictions.npz", classes=np.array(["a", "b"]), split=split, labels=labels, prediction=prediction,
                 hidden=np.full_like(labels, -1), imputed=np.full_like(labels, -1))
        runs.append((d, m))
    return runs


def test_write_report_shows_the_choice_with_more_than_one_model(tmp_path):
    runs, outcomes = grid()
    written = write_runs(tmp_path / "runs", zip(runs, outcomes))
    write_report(tmp_path / "report", written, {"dataset": "synthetic"}, plots=False)
    md = (tmp_path / "report" / "results.md").read_text()
    assert "\n".join(markdown_choice(choose(runs, outcomes))) in md
    (choice,) = json.loads((tmp_path / "report" / "results.json").read_text())["choice"]
    assert choice["skip"] == {"model": "madl", "mode": "skip", "val_avg": pytest.approx(0.55), "test_avg": 0.5,
                              "test_std": 0.0}
    assert (choice["simlabel"]["model"], choice["simlabel"]["mode"], choice["seeds"]) == ("heads", "simlabel", [0, 1])
    want = paired_gain([(0, RIGHT, HALF), (1, RIGHT, HALF)])
    assert choice["gain"] == {"mean": pytest.approx(0.5), "se": pytest.approx(0.0), "low": want.low,
                              "high": want.high, "verdict": want.verdict}
    heads_only = [(d, m) for d, m in written if m["model"] == "heads"]
    write_report(tmp_path / "heads", heads_only, {"dataset": "synthetic"}, plots=False)
    assert "The model to use" not in (tmp_path / "heads" / "results.md").read_text()  # the main table says it all
    assert json.loads((tmp_path / "heads" / "results.json").read_text())["choice"] == []
