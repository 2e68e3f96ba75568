"""Training configuration, learning-rate / KL-weight schedules and the sharded batch order.

Oracles: the paper's defaults (ALGORITHM.md §5) written out; configuration files written by hand (TOML and
YAML) and by :func:`write_config`; schedule values computed by hand from their formulas; for the sampler, the
one-process batch order of the same seed and epoch.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from simlabel_ext.train.config import TrainConfig, load_config, write_config
from simlabel_ext.train.sampler import ShardedBatches
from simlabel_ext.train.schedule import build_optimizer, kl_weight, warmup_cosine

yaml = pytest.importorskip("yaml")


# ------------------------------------------------------------------------------------------------ defaults
def test_defaults_are_the_papers():
    c = TrainConfig()
    assert c.lr == 1e-3 and isinstance(c.lr, float)
    assert c.weight_decay == 0.01
    assert c.clip == 1.0
    assert c.warmup == 0.2
    assert c.epochs == 200
    assert c.patience == 25
    assert c.simlabel.threshold == 0.6
    assert c.simlabel.mode == "simlabel+confidence"
    assert c.dataset_options == {} and c.model_options == {}


def test_default_optimizer_is_adamw_with_the_papers_settings_at_lr_1e_3():
    c = TrainConfig()
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer, scheduler = build_optimizer([weight], c.lr, c.weight_decay, total_steps=10, warmup=c.warmup)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["weight_decay"] == 0.01
    lrs = []
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": the schedule is all we test
        warnings.simplefilter("ignore")
        for _ in range(10):
            lrs.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
    assert lrs == pytest.approx([1e-3 * warmup_cosine(s, 10, 0.2) for s in range(10)], rel=1e-12)
    assert lrs[0] == pytest.approx(0.5e-3) and lrs[1] == pytest.approx(1e-3)


def test_dict_options_are_not_shared_between_instances():
    a, b = TrainConfig(), TrainConfig()
    assert a.dataset_options is not b.dataset_options


def test_int_is_accepted_for_a_float_option():
    c = TrainConfig(lr=1, threshold=1)
    assert c.lr == 1.0 and type(c.lr) is float and type(c.simlabel.threshold) is float


# ------------------------------------------------------------------------------------------------ validation
BAD = [
    ("epochs", "10", r"'epochs' expects int"),
    ("epochs", 1.5, r"'epochs' expects int"),
    ("epochs", True, r"'epochs' expects int"),
    ("lr", "1e-4", r"'lr' expects float"),
    ("progress", "yes", r"'progress' expects bool"),
    ("progress", 1, r"'progress' expects bool"),
    ("dataset", 3, r"'dataset' expects str"),
    ("dataset_options", ["data_dir"], r"'dataset_options' expects dict"),
    ("lr", float("nan"), r"'lr' must be finite"),
    ("lam", float("inf"), r"'lam' must be finite"),
    ("epochs", 0, r"'epochs' must be >= 1"),
    ("batch_size", 0, r"'batch_size' must be >= 1"),
    ("eval_batch_size", -4, r"'eval_batch_size' must be >= 1"),
    ("lr", -1e-4, r"'lr' must be >= 0"),
    ("weight_decay", -0.01, r"'weight_decay' must be >= 0"),
    ("clip", -1.0, r"'clip' must be >= 0"),
    ("seed", -1, r"'seed' must be >= 0"),
    ("patience", -1, r"'patience' must be >= 0"),
    ("n0", -0.5, r"'n0' must be >= 0"),
    ("min_overlap", -2, r"'min_overlap' must be >= 0"),
    ("impute_start_epoch", -1, r"'impute_start_epoch' must be >= 0"),
    ("dense_similarity", -1.0, r"'dense_similarity' must be >= 0"),
    ("dense_similarity", float("inf"), r"'dense_similarity' must be finite"),
    ("warmup", 1.5, r"'warmup'"),
    ("warmup", -0.1, r"'warmup'"),
    ("missing_rate", 1.2, r"'missing_rate'"),
    ("threshold", 1.5, r"threshold"),
    ("mode", "confident", r"'mode' = 'confident' is not one of skip, simlabel, simlabel\+confidence"),
    ("kl_direction", "sideways", r"'kl_direction' = 'sideways' is not one of"),
    ("reduction", "median", r"'reduction' = 'median'"),
    ("contributors", "some", r"'contributors' = 'some'"),
    ("soft_source", "oracle", r"'soft_source' = 'oracle'"),
    ("kl_weight", "heavy", r"'kl_weight' = 'heavy'"),
    ("backend", "triton", r"'backend' = 'triton'"),
    ("dataset_options", {"seed": 3}, r"set 'seed' at the top level"),
    ("dataset_options", {"data_dir": "x", "missing_rate": 0.2}, r"set 'missing_rate' at the top level"),
]


@pytest.mark.parametrize("name, value, message", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_values_name_the_option(name, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{name: value})
    with pytest.raises(ValueError, match=message):
        TrainConfig().replace(**{name: value})
    with pytest.raises(ValueError, match=r"^run\.toml: .*" + message):
        TrainConfig.from_dict({name: value}, "run.toml")


def test_unknown_option():
    with pytest.raises(ValueError, match=r"unknown config option 'learning_rate'.*the options are: .*\blr\b"):
        TrainConfig().replace(learning_rate=0.1)
    with pytest.raises(ValueError, match=r"^cfg: unknown config option 'learning_rate'"):
        TrainConfig.from_dict({"lr": 0.1, "learning_rate": 0.1}, "cfg")
    with pytest.raises(ValueError, match="expected a table"):
        TrainConfig.from_dict([("lr", 0.1)], "cfg")


def test_config_is_frozen_and_replace_copies():
    c = TrainConfig()
    with pytest.raises(AttributeError):
        c.lr = 0.1
    d = c.replace(lr=0.5, mode="skip")
    assert (d.lr, d.simlabel.mode) == (0.5, "skip") and (c.lr, c.simlabel.mode) == (1e-3, "simlabel+confidence")
    assert TrainConfig.from_dict(d.to_dict()) == d


# ------------------------------------------------------------------------------------------------ files
TRICKY = TrainConfig(
    dataset="music",
    dataset_options={
        "data_dir": 'C:\\runs\\"quoted" dir\\it\'s here',
        "standardize": False,
        "limit": 300,
        "scale": 0.125,
        "with space": "tab\there\nnewline",
        "unicode": "Beyoncé – ünïcödé",
    },
    model="heads",
    model_options={"hidden": 64, "dropout": 0.1, "bias": True, "activation": "gelu", "tiny": 1e-10,
                   "huge": 1e16, "negative": -3},
    mode="skip",
    seed=7,
    missing_rate=0.3,
    epochs=12,
    batch_size=32,
    lr=3e-5,
    weight_decay=0.0,
    clip=0.0,
    warmup=1 / 3,
    patience=0,
    threshold=0.55,
    kl_direction="forward",
    reduction="flat",
    lam=2.5,
    lam_warmup_epochs=4,
    contributors="labelled",
    soft_source="labels",
    kl_weight="evidence",
    n0=0.0,
    min_overlap=3,
    impute_start_epoch=2,
    imputed_as_targets=True,
    device="cuda:1",
    backend="reference",
    progress=False,
)


def _same_types(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert type(a[key]) is type(b[key]), key
        if isinstance(a[key], dict):
            _same_types(a[key], b[key])


def test_write_then_load_round_trips_exactly(tmp_path):
    path = tmp_path / "config.toml"
    write_config(TRICKY, path)
    loaded = load_config(path)
    assert loaded == TRICKY
    assert loaded.to_dict() == TRICKY.to_dict()
    _same_types(loaded.to_dict(), TRICKY.to_dict())
    assert loaded.warmup == 1 / 3  # the float is written exactly
    again = tmp_path / "again.toml"
    write_config(loaded, again)
    assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_default_config_round_trips(tmp_path):
    write_config(TrainConfig(), tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == TrainConfig()


HAND_TOML = """\
dataset = "music"
model = "heads"
mode = "simlabel"
epochs = 30
lr = 0.001
threshold = 0.5
progress = false

[dataset_options]
data_dir = "../shared/data/music_genre"
standardize = false

[model_options]
hidden = 32
dropout = 0.25
"""

HAND_YAML = """\
dataset: music
model: heads
mode: simlabel
epochs: 30
lr: 0.001
threshold: 0.5
progress: false
dataset_options:
  data_dir: ../shared/data/music_genre
  standardize: false
model_options:
  hidden: 32
  dropout: 0.25
"""

HAND_EXPECTED = TrainConfig(dataset="music", model="heads", mode="simlabel", epochs=30, lr=0.001, threshold=0.5,
                            progress=False,
                            dataset_options={"data_dir": "../shared/data/music_genre", "standardize": False},
                            model_options={"hidden": 32, "dropout": 0.25})


@pytest.mark.parametrize("name, text", [("c.toml", HAND_TOML), ("c.yaml", HAND_YAML), ("c.yml", HAND_YAML),
                                        ("C.TOML", HAND_TOML)])
def test_hand_written_files(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    loaded = load_config(path)
    assert loaded == HAND_EXPECTED
    _same_types(loaded.to_dict(), HAND_EXPECTED.to_dict())


def test_yaml_with_the_same_keys_gives_the_same_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TRICKY.to_dict(), allow_unicode=True), encoding="utf-8")
    assert load_config(path) == TRICKY
    write_config(TRICKY, tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == load_config(path)


def test_empty_yaml_is_the_default_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == TrainConfig()


def test_bad_files(tmp_path):
    json_file = tmp_path / "run.json"
    json_file.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.json: a config file must end in \.toml, \.yaml or \.yml"):
        load_config(json_file)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('lr = 0.1\nepochs = = 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml: .*line 2") as info:
        load_config(bad_toml)
    assert str(bad_toml) in str(info.value)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("lr: [0.1\nepochs: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml: ") as info:
        load_config(bad_yaml)
    assert str(info.value).startswith(str(bad_yaml))
    listing = tmp_path / "list.yaml"
    listing.write_text("- lr\n- 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a table"):
        load_config(listing)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('epochs = 3\nlearning_rate = 0.1\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown\.toml: unknown config option 'learning_rate'"):
        load_config(unknown)
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('epochs = "3"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"wrong\.toml: config option 'epochs' expects int"):
        load_config(wrong_type)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(tmp_path / "missing.toml")


def test_round_trip_of_a_character_outside_the_bmp(tmp_path):
    config = TrainConfig(dataset_options={"data_dir": "/data/\U0001F3B5 music"})
    write_config(config, tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == config


@pytest.mark.parametrize("value", [[64, 32], None, {"depth": 2}], ids=["list", "none", "table"])
def test_non_scalar_option_values_round_trip_or_are_refused(tmp_path, value):
    try:
        config = TrainConfig(model_options={"layers": value})
    except ValueError:
        return  # refusing them is a valid fix
    write_config(config, tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == config


# ------------------------------------------------------------------------------------------------ schedules
def test_warmup_cosine_hand_values():
    # total 10, warm-up 0.2: w = 2 steps at 1/2 and 2/2, then cosine over the 8 remaining steps
    values = [warmup_cosine(s, 10, 0.2) for s in range(10)]
    assert values[0] == pytest.approx(0.5)
    assert values[1] == pytest.approx(1.0)
    assert values[2] == pytest.approx(1.0)  # cos(0)
    assert values[4] == pytest.approx(0.5 * (1 + math.sqrt(0.5)))  # (4-2)/8 = 1/4: cos(pi/4) = sqrt(1/2)
    assert values[6] == pytest.approx(0.5, abs=1e-12)  # (6-2)/8 = 1/2: cos(pi/2) = 0
    # last step: (9-2)/8 = 7/8: 0.5 * (1 + cos(7 pi / 8)) = 0.5 * (1 - cos(pi / 8)), cos(pi/8) = sqrt(2+sqrt 2)/2
    assert values[9] == pytest.approx(0.5 * (1 - math.sqrt(2 + math.sqrt(2)) / 2))
    assert values[9] == pytest.approx(0.0380602337443566, abs=1e-12)
    assert all(a >= b for a, b in zip(values[1:], values[2:]))  # non-increasing after the warm-up


def test_warmup_cosine_edges():
    # no warm-up: cosine from the first step
    assert [warmup_cosine(s, 4, 0.0) for s in range(4)] == pytest.approx(
        [1.0, 0.5 * (1 + math.sqrt(0.5)), 0.5, 0.5 * (1 - math.sqrt(0.5))])
    # all warm-up: linear 1/4 .. 4/4
    assert [warmup_cosine(s, 4, 1.0) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # warm-up of a fraction of a step is rounded up to one step
    assert warmup_cosine(0, 10, 0.01) == 1.0
    assert warmup_cosine(1, 10, 0.01) == 1.0  # w = 1: step 1 is the cosine at 0
    assert warmup_cosine(2, 10, 0.01) == pytest.approx(0.5 * (1 + math.cos(math.pi / 9)))  # (2-1)/9
    # past the end the factor stays 0
    assert warmup_cosine(50, 10, 0.2) == pytest.approx(0.0, abs=1e-15)


def test_warmup_length_is_not_thrown_off_by_float_rounding():
    # 7 % of 100 steps = 7 warm-up steps: 1/7 .. 7/7, then the cosine starts at 1
    assert warmup_cosine(0, 100, 0.07) == pytest.approx(1 / 7)
    assert warmup_cosine(6, 100, 0.07) == pytest.approx(1.0)
    assert warmup_cosine(8, 100, 0.07) == pytest.approx(0.5 * (1 + math.cos(math.pi / 93)))


def test_kl_weight_ramp():
    assert [kl_weight(2.0, e, 4) for e in range(6)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    assert [kl_weight(2.0, e, 0) for e in range(3)] == [2.0, 2.0, 2.0]
    assert kl_weight(1.0, 0, 1) == 1.0
    assert kl_weight(0.0, 0, 5) == 0.0


# ------------------------------------------------------------------------------------------------ sampler
ITEMS = torch.tensor([3, 5, 8, 13, 21, 34, 2, 40, 41, 42, 50, 51, 52, 60, 61, 62, 70, 71, 72, 80, 81, 90, 99])


def _steps(batches: ShardedBatches, epoch: int) -> list[torch.Tensor]:
    return list(batches.epoch(epoch))


@pytest.mark.parametrize("world_size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("batch_size", [8, 10])
def test_shards_union_is_the_one_process_batch(world_size, batch_size):
    single = ShardedBatches(ITEMS, batch_size, seed=4)
    ranks = [ShardedBatches(ITEMS, batch_size, seed=4, rank=r, world_size=world_size) for r in range(world_size)]
    expected_steps = math.ceil(len(ITEMS) / batch_size)
    for epoch in range(3):
        global_steps = _steps(single, epoch)
        assert len(single) == len(global_steps) == expected_steps
        assert [len(b) for b in global_steps] == [batch_size] * (expected_steps - 1) + [
            len(ITEMS) - batch_size * (expected_steps - 1)]
        shards = [_steps(b, epoch) for b in ranks]
        assert all(len(s) == expected_steps == len(b) for s, b in zip(shards, ranks))  # every rank joins every step
        seen = []
        for k, batch in enumerate(global_steps):
            parts = [shards[r][k] for r in range(world_size)]
            assert all(p.dtype == torch.int64 for p in parts)
            assert sorted(torch.cat(parts).tolist()) == sorted(batch.tolist())
            for r, part in enumerate(parts):  # rank r holds positions r, r + W, ... of the global batch
                assert torch.equal(part, batch[r::world_size])
            seen += torch.cat(parts).tolist()
        assert sorted(seen) == sorted(ITEMS.tolist())  # nothing repeated, nothing lost


def test_ranks_may_get_empty_shards_in_the_last_step():
    items = torch.arange(17)
    ranks = [ShardedBatches(items, 8, seed=0, rank=r, world_size=8) for r in range(8)]
    shards = [_steps(b, 0) for b in ranks]
    assert [len(s[-1]) for s in shards] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert all(len(s) == 3 for s in shards)
    assert all(s[-1].dtype == torch.int64 for s in shards)
    assert sorted(torch.cat([torch.cat(s) for s in shards]).tolist()) == list(range(17))


def test_permutation_differs_between_epochs_and_is_reproducible():
    a = ShardedBatches(ITEMS, 8, seed=11)
    b = ShardedBatches(ITEMS.clone(), 8, seed=11)
    orders = [a.permutation(e) for e in range(4)]
    for order in orders:
        assert sorted(order.tolist()) == sorted(ITEMS.tolist())
    assert len({tuple(o.tolist()) for o in orders}) == 4
    for e in range(4):
        assert torch.equal(b.permutation(e), orders[e])
        assert torch.equal(torch.cat(_steps(b, e)), orders[e])
    assert not torch.equal(ShardedBatches(ITEMS, 8, seed=12).permutation(0), orders[0])
    # the global RNG is neither used nor disturbed
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a.permutation(2)
    list(a.epoch(3))
    assert torch.equal(torch.rand(3), expected)


def test_batch_smaller_than_world_is_refused():
    with pytest.raises(ValueError, match=r"global batch size \(2\).*processes \(4\)"):
        ShardedBatches(ITEMS, 2, seed=0, rank=0, world_size=4)


def test_paper_preset_is_the_literal_method_and_flags_override_it():
    from simlabel_ext.cli import build_parser
    from simlabel_ext.cli.train import resolve_config

    args, extra = build_parser().parse_known_args(["train", "--simlabel-preset", "paper", "--lam", "0.5"])
    config = resolve_config(args, extra)
    # ALGORITHM.md: n0 = 0 with no minimum overlap is the paper's kappa; eq. 3 is one flat mean; eq. 2 is KL(p||q)
    assert (config.n0, config.min_overlap, config.simlabel.reduction, config.simlabel.kl_direction) == (0.0, 0, "flat", "reverse")
    assert (config.simlabel.kl_weight, config.simlabel.contributors, config.simlabel.soft_source) == ("uniform", "labelled", "predictions")
    assert (config.simlabel.threshold, config.impute_start_epoch, config.imputed_as_targets) == (0.6, 0, False)
    assert config.lam == 0.5  # the flag wins over the preset
    default = resolve_config(*build_parser().parse_known_args(["train"]))
    assert default.n0 == TrainConfig().n0 and default.simlabel.reduction == "mean"
