"""The imputation store (ALGORITHM.md §4) against hand-computed cases and a plain-Python model of it.

Oracles: provenance values written out by hand for a 3 x 3 case; a hand-computed Cohen's kappa before and after
imputations and a revision; a dict-based model of the store driven by hypothesis-generated update sequences;
and, for the similarity, a fresh :class:`SimilarityEngine` rebuilt from ``store.labels()`` compared with an
engine that was only fed the store's :class:`LabelChange` s (both backends).
"""
from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simlabel_ext import _extension
from simlabel_ext.imputation import ImputationStore, LabelChange
from simlabel_ext.similarity import SimilarityEngine

BACKENDS = [
    "torch",
    pytest.param("cpp", marks=pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C was not built")),
]

# 3 items x 3 annotators, 3 classes; missing: (0,1), (1,0), (1,1), (2,2)
OBSERVED = torch.tensor([[0, -1, 2],
                         [-1, -1, 1],
                         [1, 0, -1]])


def t(*values):
    return torch.tensor(values, dtype=torch.int64)


def snapshot(store: ImputationStore) -> dict[str, torch.Tensor]:
    return {name: getattr(store, name).clone() for name in ("classes", "confidence", "epoch", "step", "revisions")}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------------------------------------------------ hand cases
def test_new_store_is_empty():
    store = ImputationStore(OBSERVED, 3)
    assert len(store) == 0
    assert torch.equal(store.labels(), OBSERVED)
    assert torch.equal(store.classes, torch.full((3, 3), -1))
    assert torch.equal(store.epoch, torch.full((3, 3), -1))
    assert torch.equal(store.step, torch.full((3, 3), -1))
    assert torch.equal(store.revisions, torch.zeros(3, 3, dtype=torch.int64))
    assert all(len(v) == 0 for v in store.entries().values())


def test_store_copies_observed():
    observed = OBSERVED.clone()
    store = ImputationStore(observed, 3)
    observed[0, 1] = 1  # the caller's tensor changes later: the store's observed labels do not
    assert store.observed[0, 1] == -1
    store.observed[0, 0] = 2  # .observed is a copy
    assert store.observed[0, 0] == 0


def test_first_imputation():
    store = ImputationStore(OBSERVED, 3)
    change = store.update(t(0, 1), t(1, 0), t(2, 1), torch.tensor([0.7, 0.9]), epoch=0, step=5)
    assert isinstance(change, LabelChange) and len(change) == 2
    assert change.items.tolist() == [0, 1]
    assert change.annotators.tolist() == [1, 0]
    assert change.classes.tolist() == [2, 1]
    assert change.previous.tolist() == [-1, -1]
    assert len(store) == 2
    assert store.classes.tolist() == [[-1, 2, -1], [1, -1, -1], [-1, -1, -1]]
    assert store.confidence[0, 1].item() == pytest.approx(0.7) and store.confidence[1, 0].item() == pytest.approx(0.9)
    assert store.epoch.tolist() == [[-1, 0, -1], [0, -1, -1], [-1, -1, -1]]
    assert store.step.tolist() == [[-1, 5, -1], [5, -1, -1], [-1, -1, -1]]
    assert store.revisions.sum() == 0
    # observed where present, imputed elsewhere, -1 for the rest
    assert store.labels().tolist() == [[0, 2, 2], [1, -1, 1], [1, 0, -1]]


def test_reselection_keeps_provenance_and_revision_replaces_it():
    store = ImputationStore(OBSERVED, 3)
    store.update(t(0, 1), t(1, 0), t(2, 1), torch.tensor([0.7, 0.9]), epoch=0, step=5)
    # (1,0) again with class 1: unchanged; (0,1) 2 -> 0: revised; (2,2): first imputation
    change = store.update(t(1, 0, 2), t(0, 1, 2), t(1, 0, 0), torch.tensor([0.95, 0.8, 0.65]), epoch=1, step=9)
    assert change.items.tolist() == [0, 2]  # only the changed entries, in the order given
    assert change.annotators.tolist() == [1, 2]
    assert change.classes.tolist() == [0, 0]
    assert change.previous.tolist() == [2, -1]
    # re-selected with the same class: provenance of the first time that class was imputed
    assert store.classes[1, 0] == 1
    assert store.confidence[1, 0].item() == pytest.approx(0.9)
    assert (store.epoch[1, 0], store.step[1, 0], store.revisions[1, 0]) == (0, 5, 0)
    # revised: confidence, epoch and step replaced, one revision
    assert store.classes[0, 1] == 0
    assert store.confidence[0, 1].item() == pytest.approx(0.8)
    assert (store.epoch[0, 1], store.step[0, 1], store.revisions[0, 1]) == (1, 9, 1)
    # new entry
    assert store.confidence[2, 2].item() == pytest.approx(0.65)
    assert (store.epoch[2, 2], store.step[2, 2], store.revisions[2, 2]) == (1, 9, 0)
    assert len(store) == 3
    assert store.labels().tolist() == [[0, 0, 2], [1, -1, 1], [1, 0, 0]]
    # back to the first class: a second revision, previous is the class just before
    change = store.update(t(0), t(1), t(2), torch.tensor([0.61]), epoch=3, step=20)
    assert change.previous.tolist() == [0] and change.classes.tolist() == [2]
    assert (store.epoch[0, 1], store.step[0, 1], store.revisions[0, 1]) == (3, 20, 2)
    entries = store.entries()
    assert entries["item"].tolist() == [0, 1, 2]  # (item, annotator) order
    assert entries["annotator"].tolist() == [1, 0, 2]
    assert entries["label"].tolist() == [2, 1, 0]
    assert entries["confidence"].tolist() == pytest.approx([0.61, 0.9, 0.65])
    assert entries["epoch"].tolist() == [3, 0, 1]
    assert entries["step"].tolist() == [20, 5, 9]
    assert entries["revisions"].tolist() == [2, 0, 0]


def test_unchanged_update_returns_no_change():
    store = ImputationStore(OBSERVED, 3)
    store.update(t(2), t(2), t(1), torch.tensor([0.7]), epoch=0, step=0)
    before = snapshot(store)
    change = store.update(t(2), t(2), t(1), torch.tensor([0.99]), epoch=4, step=40)
    assert len(change) == 0 and change.items.dtype == torch.int64
    assert_same_state(snapshot(store), before)
    empty = store.update(t(), t(), t(), torch.tensor([]), epoch=5, step=50)
    assert len(empty) == 0 and all(x.numel() == 0 for x in empty)
    assert_same_state(snapshot(store), before)


def test_changes_drive_the_engine_to_hand_computed_kappa():
    # a0 labels every item, a1 only items 0 and 1
    observed = torch.tensor([[0, 0], [1, 1], [0, -1], [1, -1]])
    store = ImputationStore(observed, 2)
    engine = SimilarityEngine(observed, 2)
    assert engine.kappa()[0, 1].item() == pytest.approx(1.0)  # 2 shared items, identical: po=1, pe=1/2
    change = store.update(t(2, 3), t(1, 1), t(0, 0), torch.tensor([0.8, 0.7]), epoch=0, step=0)
    engine.set_labels(change.items, change.annotators, change.classes)
    # a0 = [0,1,0,1], a1 = [0,1,0,0]: po = 3/4, pe = 1/2*3/4 + 1/2*1/4 = 1/2, kappa = (3/4-1/2)/(1/2) = 1/2
    assert engine.kappa()[0, 1].item() == pytest.approx(0.5, abs=1e-12)
    assert engine.overlap()[0, 1] == 4 and engine.agreement()[0, 1] == 3
    change = store.update(t(3), t(1), t(1), torch.tensor([0.9]), epoch=1, step=3)  # revise (3,1): 0 -> 1
    assert change.previous.tolist() == [0]
    engine.set_labels(change.items, change.annotators, change.classes)
    assert engine.kappa()[0, 1].item() == pytest.approx(1.0, abs=1e-12)
    assert engine.agreement()[0, 1] == 4
    assert torch.equal(engine.labels(), store.labels())


# ------------------------------------------------------------------------------------------------ errors
def test_imputing_an_observed_entry_names_it_and_changes_nothing():
    store = ImputationStore(OBSERVED, 3)
    store.update(t(0), t(1), t(1), torch.tensor([0.7]), epoch=0, step=0)
    before = snapshot(store)
    # (1,1) is valid, (2,1) holds the observed label 0
    with pytest.raises(ValueError, match=r"item 2, annotator 1\).*observed label 0"):
        store.update(t(1, 2), t(1, 1), t(2, 2), torch.tensor([0.9, 0.9]), epoch=1, step=1)
    assert_same_state(snapshot(store), before)
    assert torch.equal(store.labels()[OBSERVED >= 0], OBSERVED[OBSERVED >= 0])


@pytest.mark.parametrize(
    "items, annotators, classes, message",
    [
        ((3,), (1,), (0,), r"item 3 is outside 0\.\.2"),
        ((-1,), (1,), (0,), r"item -1 is outside 0\.\.2"),
        ((0,), (3,), (0,), r"annotator 3 is outside 0\.\.2"),
        ((0,), (-1,), (0,), r"annotator -1 is outside 0\.\.2"),
        ((0,), (1,), (3,), r"class 3 is outside 0\.\.2"),
        ((0,), (1,), (-1,), r"class -1 is outside 0\.\.2"),  # the store never removes an imputation
        ((1, 0, 1), (0, 1, 0), (1, 1, 2), r"appears twice"),
    ],
    ids=["item-high", "item-negative", "annotator-high", "annotator-negative", "class-high", "class-negative",
         "duplicate"],
)
def test_bad_updates_raise_and_change_nothing(items, annotators, classes, message):
    store = ImputationStore(OBSERVED, 3)
    before = snapshot(store)
    with pytest.raises(ValueError, match=message):
        store.update(torch.tensor(items), torch.tensor(annotators), torch.tensor(classes),
                     torch.full((len(items),), 0.9), epoch=0, step=0)
    assert_same_state(snapshot(store), before)


@pytest.mark.parametrize("lengths", [(2, 1, 1, 1), (1, 2, 1, 1), (1, 1, 2, 1), (1, 1, 1, 2)])
def test_mismatched_lengths(lengths):
    store = ImputationStore(OBSERVED, 3)
    ni, na, nc, nf = lengths
    with pytest.raises(ValueError, match="same length"):
        store.update(torch.zeros(ni, dtype=torch.int64), torch.ones(na, dtype=torch.int64),
                     torch.zeros(nc, dtype=torch.int64), torch.full((nf,), 0.9), epoch=0, step=0)
    assert len(store) == 0


def test_constructor_errors():
    with pytest.raises(ValueError, match="int64"):
        ImputationStore(OBSERVED.to(torch.int32), 3)
    with pytest.raises(ValueError, match="int64"):
        ImputationStore(OBSERVED[0], 3)
    with pytest.raises(ValueError, match="num_classes"):
        ImputationStore(OBSERVED, 1)
    bad = OBSERVED.clone()
    bad[1, 2] = 3
    with pytest.raises(ValueError, match=r"observed\[1, 2\] = 3"):
        ImputationStore(bad, 3)
    bad[1, 2] = -2
    with pytest.raises(ValueError, match=r"observed\[1, 2\] = -2"):
        ImputationStore(bad, 3)


# ------------------------------------------------------------------------------------------------ state
def _filled_store() -> ImputationStore:
    store = ImputationStore(OBSERVED, 3)
    store.update(t(0, 1, 2), t(1, 1, 2), t(2, 0, 1), torch.tensor([0.7, 0.8, 0.9]), epoch=0, step=3)
    store.update(t(0, 1), t(1, 0), t(1, 2), torch.tensor([0.75, 0.66]), epoch=2, step=17)
    return store


def test_state_dict_round_trip_through_weights_only_load():
    store = _filled_store()
    buffer = io.BytesIO()
    torch.save(store.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = ImputationStore(OBSERVED, 3)
    restored.load_state_dict(state)
    assert_same_state(snapshot(restored), snapshot(store))
    assert torch.equal(restored.labels(), store.labels()) and len(restored) == len(store) == 4
    assert restored.revisions[0, 1] == 1 and restored.step[0, 1] == 17
    # the restored store keeps working like the original
    a = store.update(t(2), t(2), t(2), torch.tensor([0.9]), epoch=3, step=30)
    b = restored.update(t(2), t(2), t(2), torch.tensor([0.9]), epoch=3, step=30)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert_same_state(snapshot(restored), snapshot(store))


def test_state_dict_is_sparse_by_hand():
    state = _filled_store().state_dict()
    assert state["shape"].tolist() == [3, 3]
    assert state["observed_at"].tolist() == [0, 2, 5, 6, 7] and state["observed"].tolist() == [0, 2, 1, 1, 0]
    # imputed: (0,1) class 1 at step 17 (revised once), (1,0) 2 at 17, (1,1) 0 at 3, (2,2) 1 at 3; flat i * 3 + a
    assert state["imputed_at"].tolist() == [1, 3, 4, 8]
    assert state["classes"].tolist() == [1, 2, 0, 1]
    assert state["step"].tolist() == [17, 17, 3, 3] and state["epoch"].tolist() == [2, 2, 0, 0]
    assert state["revisions"].tolist() == [1, 0, 0, 0]
    assert state["confidence"].tolist() == pytest.approx([0.75, 0.66, 0.8, 0.9])


def test_state_dict_of_a_large_sparse_store_is_small():
    observed = torch.full((5000, 200), -1, dtype=torch.int64)
    rng = torch.Generator().manual_seed(0)
    flat = torch.randperm(observed.numel(), generator=rng)[:31000]
    observed.view(-1)[flat[:30000]] = torch.randint(0, 2, (30000,), generator=rng)
    store = ImputationStore(observed, 2)
    free = flat[30000:]
    store.update(free // 200, free % 200, torch.ones(1000, dtype=torch.int64), torch.full((1000,), 0.9),
                 epoch=1, step=9)
    buffer = io.BytesIO()
    torch.save(store.state_dict(), buffer)
    assert buffer.tell() < 800_000  # 30,000 observed + 1,000 imputed entries; dense [N, A] fields would be 40 MB
    buffer.seek(0)
    restored = ImputationStore(observed, 2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert_same_state(snapshot(restored), snapshot(store))


def test_the_dense_state_of_earlier_versions_still_loads():
    store = _filled_store()
    legacy = {"observed": OBSERVED.clone(), **{name: getattr(store, name).clone() for name in
                                                ("classes", "confidence", "epoch", "step", "revisions")}}
    restored = ImputationStore(OBSERVED, 3)
    restored.load_state_dict(legacy)
    assert_same_state(snapshot(restored), snapshot(store))
    legacy["classes"][0, 0] = 1  # the dense form keeps every check: (0, 0) holds the observed label 0
    with pytest.raises(ValueError, match="holds an observed label"):
        ImputationStore(OBSERVED, 3).load_state_dict(legacy)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("imputed_at"), r"field 'observed' is \(5,\) torch.int64, expected \(3, 3\)"),  # as dense
    (lambda s: s.pop("revisions"), "lacks 'revisions'"),
    (lambda s: s.update(shape=t(3, 4)), r"is \(3, 4\), expected \(3, 3\)"),
    (lambda s: s.update(imputed_at=t(1, 3, 4, 9)), r"'imputed_at' holds an entry outside 0..8"),
    (lambda s: s.update(imputed_at=t(1, 3, 3, 8)), "'imputed_at' names an entry twice"),
    (lambda s: s.update(observed_at=t(0, 2, 5, 6, -1)), r"'observed_at' holds an entry outside 0..8"),
    (lambda s: s.update(classes=t(1, 2, 0)), r"field 'classes' is \(3,\) torch.int64, expected \(4,\) torch.int64"),
    (lambda s: s.update(imputed_at=s["imputed_at"].to(torch.int32)), "field 'imputed_at' is"),
])
def test_a_malformed_sparse_state_is_refused_naming_the_field(edit, message):
    state = _filled_store().state_dict()
    edit(state)
    store = ImputationStore(OBSERVED, 3)
    with pytest.raises(ValueError, match=message):
        store.load_state_dict(state)
    assert len(store) == 0


def test_state_dict_is_a_copy():
    store = _filled_store()
    state = store.state_dict()
    store.update(t(2), t(2), t(0), torch.tensor([0.9]), epoch=5, step=50)
    assert state["classes"][-1] == 1 and state["step"][-1] == 3  # entry (2, 2), flat 8, is the last
    other = ImputationStore(OBSERVED, 3)
    other.load_state_dict(state)
    state["classes"][-1] = 0  # mutating the dict afterwards does not reach the loaded store
    assert other.classes[2, 2] == 1


def test_load_state_dict_refuses_other_observed_labels():
    state = _filled_store().state_dict()
    other_observed = OBSERVED.clone()
    other_observed[2, 2] = 0
    other = ImputationStore(other_observed, 3)
    with pytest.raises(ValueError, match="other observed labels"):
        other.load_state_dict(state)
    assert len(other) == 0


def test_load_state_dict_refuses_an_imputed_observed_entry():
    state = _filled_store().state_dict()
    state["imputed_at"][0] = 0  # (0,0) holds the observed label 0
    store = ImputationStore(OBSERVED, 3)
    with pytest.raises(ValueError, match="holds an observed label"):
        store.load_state_dict(state)
    assert len(store) == 0


def test_load_state_dict_refuses_wrong_dtype():
    state = _filled_store().state_dict()
    state["step"] = state["step"].to(torch.int32)
    with pytest.raises(ValueError, match="'step'"):
        ImputationStore(OBSERVED, 3).load_state_dict(state)


def test_rejected_state_leaves_the_store_unchanged():
    store = _filled_store()
    before = snapshot(store)
    state = ImputationStore(OBSERVED, 3).state_dict()  # valid classes (all -1) ...
    state["confidence"] = state["confidence"].double()  # ... but a bad later field
    with pytest.raises(ValueError, match="'confidence'"):
        store.load_state_dict(state)
    assert torch.equal(store.classes, before["classes"]), "a rejected load_state_dict changed the store"


def test_load_state_dict_refuses_classes_out_of_range():
    state = _filled_store().state_dict()
    state["classes"][0] = 7
    with pytest.raises(ValueError):
        ImputationStore(OBSERVED, 3).load_state_dict(state)


def test_load_state_dict_wrong_shape_is_a_value_error():
    state = ImputationStore(OBSERVED, 3).state_dict()
    state["classes"] = torch.full((4, 3), -1, dtype=torch.int64)
    with pytest.raises(ValueError, match="'classes'"):
        ImputationStore(OBSERVED, 3).load_state_dict(state)


# ------------------------------------------------------------------------------------------------ properties
@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 6))
    a = draw(st.integers(1, 5))
    c = draw(st.integers(2, 4))
    observed = draw(st.lists(st.integers(-1, c - 1), min_size=n * a, max_size=n * a))
    observed = [v if draw(st.booleans()) else -1 for v in observed]  # about 3/4 missing
    missing = [(k // a, k % a) for k, v in enumerate(observed) if v < 0]
    present = [(k // a, k % a) for k, v in enumerate(observed) if v >= 0]
    calls = []
    for _ in range(draw(st.integers(1, 8))):
        entries = draw(st.lists(st.sampled_from(missing), max_size=6, unique=True)) if missing else []
        if present and draw(st.integers(0, 4)) == 0:  # now and then a call that touches an observed entry
            entries.insert(draw(st.integers(0, len(entries))), draw(st.sampled_from(present)))
        picks = [(i, b, draw(st.integers(0, c - 1)), draw(st.floats(0.0, 1.0, width=32))) for i, b in entries]
        calls.append(picks)
    return n, a, c, observed, calls


def _run_scenario(n, a, c, observed_list, calls):
    """Drive a store and a plain-Python model of it; yield (store, observed, change) after each accepted call."""
    observed = torch.tensor(observed_list, dtype=torch.int64).reshape(n, a)
    store = ImputationStore(observed, c)
    model: dict[tuple[int, int], list] = {}  # (i, a) -> [class, confidence, epoch, step, revisions]
    changes = []
    for step, picks in enumerate(calls):
        epoch = step // 3
        items = torch.tensor([p[0] for p in picks], dtype=torch.int64)
        anns = torch.tensor([p[1] for p in picks], dtype=torch.int64)
        classes = torch.tensor([p[2] for p in picks], dtype=torch.int64)
        conf = torch.tensor([p[3] for p in picks], dtype=torch.float32)
        hits_observed = any(observed_list[i * a + b] >= 0 for i, b, _, _ in picks)
        before = snapshot(store)
        if hits_observed:
            with pytest.raises(ValueError, match="observed label"):
                store.update(items, anns, classes, conf, epoch=epoch, step=step)
            assert_same_state(snapshot(store), before)
            continue
        change = store.update(items, anns, classes, conf, epoch=epoch, step=step)
        expected = []
        for i, b, cls, cf in picks:
            old = model.get((i, b))
            if old is None:
                model[(i, b)] = [cls, cf, epoch, step, 0]
                expected.append((i, b, cls, -1))
            elif old[0] != cls:
                model[(i, b)] = [cls, cf, epoch, step, old[4] + 1]
                expected.append((i, b, cls, old[0]))
        got = list(zip(change.items.tolist(), change.annotators.tolist(), change.classes.tolist(),
                       change.previous.tolist()))
        assert got == expected
        changes.append(change)
    return observed, store, model, changes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_store_matches_model_and_never_touches_observed(scenario):
    n, a, c, observed_list, calls = scenario
    observed, store, model, _ = _run_scenario(n, a, c, observed_list, calls)
    present = observed >= 0
    labels = store.labels()
    assert torch.equal(labels[present], observed[present])
    assert (store.classes[present] == -1).all()
    assert len(store) == len(model)
    for i in range(n):
        for b in range(a):
            if (i, b) in model:
                cls, cf, epoch, step, revisions = model[(i, b)]
                assert labels[i, b] == cls and store.classes[i, b] == cls
                assert store.confidence[i, b].item() == cf  # float32 in, float32 stored
                assert (store.epoch[i, b], store.step[i, b], store.revisions[i, b]) == (epoch, step, revisions)
            else:
                assert store.classes[i, b] == -1 and store.epoch[i, b] == -1 and store.step[i, b] == -1
                assert labels[i, b] == observed[i, b]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_engine_fed_with_changes_equals_a_fresh_rebuild(backend, scenario):
    n, a, c, observed_list, calls = scenario
    observed = torch.tensor(observed_list, dtype=torch.int64).reshape(n, a)
    engine = SimilarityEngine(observed, c, backend=backend)
    engine.kappa()  # warm the engine's cache so later calls refresh incrementally
    observed, store, _, changes = _run_scenario(n, a, c, observed_list, calls)
    for k, change in enumerate(changes):
        engine.set_labels(change.items, change.annotators, change.classes)
        if k % 2 == 0:
            engine.kappa()  # interleave refreshes with updates
    fresh = SimilarityEngine(store.labels(), c, backend=backend)
    assert engine.backend == fresh.backend == backend
    assert torch.equal(engine.labels(), store.labels())
    assert torch.equal(engine.overlap(), fresh.overlap())
    assert torch.equal(engine.agreement(), fresh.agreement())
    got, want = engine.kappa(), fresh.kappa()
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.allclose(got.nan_to_num(), want.nan_to_num(), rtol=0, atol=1e-12)
    assert torch.allclose(engine.similarity(), fresh.similarity(), rtol=0, atol=1e-6)
    assert math.isclose(engine.num_labels, int((store.labels() >= 0).sum()))
