"""The plugin registry: registration, duplicate names, failing plugins, option typing, entry points installed with
pip (a real third-party distribution from tests/fixtures/third_party_plugin) and ``simlabel plugins``."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from simlabel_ext.cli import main
from simlabel_ext.data import CrowdDataset, from_arrays, make_dataset
from simlabel_ext.models import AnnotatorModel, InputSpec, ModelOutput
from simlabel_ext.registry import (
    DatasetSpec,
    DuplicateNameError,
    ModelSpec,
    OptionSpec,
    Registry,
    RegistryError,
    UnknownNameError,
    get_registry,
    hookimpl,
    manager,
    resolve_options,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "third_party_plugin"
BUILTIN_MODELS = {"heads", "padl", "madl", "qumatl"}
BUILTIN_DATASETS = {"synthetic", "crowd-csv", "music", "sentiment"}


class Linear(AnnotatorModel):
    def __init__(self, input_spec, num_annotators, num_classes, options):
        super().__init__(input_spec, num_annotators, num_classes)
        self.options = options
        self.linear = torch.nn.Linear(input_spec.shape[0], num_annotators * num_classes)

    def forward(self, inputs, labels=None):
        logits = self.linear(inputs).view(len(inputs), self.num_annotators, self.num_classes)
        return ModelOutput(logits, logits.new_zeros(()))


def tiny_dataset(options) -> CrowdDataset:
    matrix = from_arrays([[0, 1], [1, -1], [-1, 0], [1, 1]] * 5)
    return make_dataset(torch.zeros(20, 2), InputSpec("features", (2,)), matrix, seed=options["seed"])


MODEL_OPTIONS = (
    OptionSpec("hidden", int, 8, "width"),
    OptionSpec("rate", float, 0.5, "a rate"),
    OptionSpec("flag", bool, False, "a switch"),
    OptionSpec("mode", str, "a", "a mode"),
)


def plugin(models=(), datasets=()):
    """A plugin object implementing both hooks."""

    class Plugin:
        @hookimpl
        def simlabel_models(self):
            return list(models)

        @hookimpl
        def simlabel_datasets(self):
            return list(datasets)

    return Plugin()


def linear_spec(name: str = "linear") -> ModelSpec:
    return ModelSpec(name, Linear, MODEL_OPTIONS, "a linear model", ("features",))


def tiny_spec(name: str = "tiny") -> DatasetSpec:
    return DatasetSpec(name, tiny_dataset, (OptionSpec("seed", int, 0, "seed"),), "a tiny dataset")


class FakeEntryPoint:
    """What the registry needs of an entry point, with a chosen distribution name."""

    def __init__(self, name: str, value: str, distribution: str) -> None:
        self.name, self.value = name, value
        self.dist = SimpleNamespace(name=distribution)

    def load(self):
        return importlib.metadata.EntryPoint(self.name, self.value, "simlabel").load()


@pytest.fixture()
def plugin_modules(tmp_path, monkeypatch):
    """Importable modules: two registering the same model name, one raising on import, one with a bad hook."""
    modules = {
        "dup_first": """
            from simlabel_ext.registry import ModelSpec, DatasetSpec, hookimpl
            @hookimpl
            def simlabel_models():
                return [ModelSpec("shared", lambda *a: None), ModelSpec("only-first", lambda *a: None)]
            @hookimpl
            def simlabel_datasets():
                return [DatasetSpec("first-data", lambda o: None)]
            """,
        "dup_second": """
            from simlabel_ext.registry import ModelSpec, hookimpl
            @hookimpl
            def simlabel_models():
                return [ModelSpec("shared", lambda *a: None), ModelSpec("only-second", lambda *a: None)]
            """,
        "raises_on_import": """
            raise RuntimeError("this plugin is broken")
            """,
        "typo_hook": """
            from simlabel_ext.registry import hookimpl
            @hookimpl
            def simlabel_modelz():
                return []
            """,
        "wrong_type": """
            from simlabel_ext.registry import hookimpl
            @hookimpl
            def simlabel_models():
                return ["not a spec"]
            """,
    }
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in modules:
        sys.modules.pop(name, None)


# ------------------------------------------------------------------------------------------------- direct


def test_register_plugin_objects_directly():
    reg = Registry()
    reg.register(plugin([linear_spec()], [tiny_spec()]), name="mine", distribution="my-dist")
    assert list(reg.models()) == ["linear"] and list(reg.datasets()) == ["tiny"]
    spec, distribution = reg.model("linear")
    assert spec.description == "a linear model" and distribution == "my-dist"
    assert reg.dataset("tiny").distribution == "my-dist"
    assert reg.failures == []


def test_duplicate_names_raise_naming_both_distributions_and_register_nothing():
    reg = Registry()
    reg.register(plugin([linear_spec()]), name="first-plugin", distribution="dist-a")
    with pytest.raises(DuplicateNameError) as info:
        reg.register(plugin([linear_spec("other"), linear_spec()]), name="second-plugin", distribution="dist-b")
    message = str(info.value)
    assert "model 'linear' is registered twice" in message
    assert "'first-plugin' of distribution 'dist-a'" in message
    assert "'second-plugin' of distribution 'dist-b'" in message
    assert list(reg.models()) == ["linear"]                                 # the second plugin is not half-registered
    reg.register(plugin([linear_spec("other")]), name="second-plugin", distribution="dist-b")  # its name is free again
    assert list(reg.models()) == ["linear", "other"]


def test_malformed_specs_are_refused():
    reg = Registry()
    with pytest.raises(RegistryError, match="must match"):
        reg.register(plugin([linear_spec("bad name")]))
    with pytest.raises(RegistryError, match="registers model 'x' twice"):
        reg.register(plugin([linear_spec("x"), linear_spec("x")]))
    for bounded in ({}, {"within": "[1, inf)"}):
        bad_default = ModelSpec("m", Linear, (OptionSpec("hidden", int, "wide", **bounded),))
        with pytest.raises(RegistryError, match="bad default: option 'hidden' expects int"):
            reg.register(plugin([bad_default]))
    with pytest.raises(RegistryError, match="expected DatasetSpec, got ModelSpec"):
        reg.register(plugin(datasets=[linear_spec()]))
    assert reg.models() == {} and reg.datasets() == {}


def test_unknown_names_list_the_available_ones():
    reg = Registry()
    reg.register(plugin([linear_spec("b-model"), linear_spec("a-model")], [tiny_spec()]))
    with pytest.raises(UnknownNameError, match="unknown model 'c-model'; available: a-model, b-model$"):
        reg.model("c-model")
    with pytest.raises(UnknownNameError, match="unknown dataset 'nope'; available: tiny$"):
        reg.load_dataset("nope")
    with pytest.raises(ValueError):                                           # a ValueError: the CLI reports it
        reg.build_model("c-model", InputSpec("features", (2,)), 2, 2)


# ------------------------------------------------------------------------------------------------- options


def test_build_model_resolves_typed_options():
    reg = Registry()
    reg.register(plugin([linear_spec()], [tiny_spec()]))
    spec = InputSpec("features", (2,))
    model = reg.build_model("linear", spec, 3, 4, hidden="16", rate=1, flag="yes")
    assert isinstance(model, AnnotatorModel)
    assert model.options == {"hidden": 16, "rate": 1.0, "flag": True, "mode": "a"}
    assert isinstance(model.options["rate"], float)
    assert model(torch.zeros(5, 2)).logits.shape == (5, 3, 4)
    with pytest.raises(ValueError, match="option 'hidden' expects int; got 'wide'"):
        reg.build_model("linear", spec, 3, 4, hidden="wide")
    with pytest.raises(ValueError, match="option 'flag' expects true/false"):
        reg.build_model("linear", spec, 3, 4, flag="maybe")
    with pytest.raises(ValueError, match="model 'linear' has no option 'depth'; its options are: hidden, rate, flag"):
        reg.build_model("linear", spec, 3, 4, depth=2)
    with pytest.raises(RegistryError, match="takes inputs \\('features',\\), not 'image'"):
        reg.build_model("linear", InputSpec("image", (1, 4, 4)), 3, 4)
    ds = reg.load_dataset("tiny", seed="2")
    assert isinstance(ds, CrowdDataset) and ds.num_items == 20


def test_factories_must_return_the_contract_types():
    reg = Registry()
    reg.register(plugin([ModelSpec("plain", lambda *a: torch.nn.Linear(2, 2))], [DatasetSpec("dict", lambda o: {})]))
    with pytest.raises(RegistryError, match="model 'plain' built a Linear, not an AnnotatorModel"):
        reg.build_model("plain", InputSpec("features", (2,)), 2, 2)
    with pytest.raises(RegistryError, match="dataset 'dict' loaded a dict, not a CrowdDataset"):
        reg.load_dataset("dict")


# ------------------------------------------------------------------------------------------------- entry points


def test_duplicate_entry_points_are_reported_and_the_name_withdrawn(plugin_modules):
    reg = Registry.from_entry_points([
        FakeEntryPoint("second", "dup_second", "dist-b"),
        FakeEntryPoint("first", "dup_first", "dist-a"),
    ])
    assert [(f.plugin, f.distribution) for f in reg.failures] == [("second", "dist-b")]
    error = reg.failures[0].error
    assert error.startswith("DuplicateNameError: model 'shared' is registered twice")
    assert "'first = dup_first' of distribution 'dist-a'" in error
    assert "'second = dup_second' of distribution 'dist-b'" in error
    assert set(reg.models()) == {"only-first"}                              # neither 'shared' is picked silently
    assert set(reg.datasets()) == {"first-data"}
    with pytest.raises(DuplicateNameError, match="dist-a.*dist-b"):
        reg.model("shared")


def test_a_plugin_that_fails_is_reported_not_raised(plugin_modules):
    reg = Registry.from_entry_points([
        FakeEntryPoint("broken", "raises_on_import", "broken-dist"),
        FakeEntryPoint("missing", "no_such_module_anywhere", "gone-dist"),
        FakeEntryPoint("typo", "typo_hook", "typo-dist"),
        FakeEntryPoint("wrong", "wrong_type", "wrong-dist"),
        FakeEntryPoint("good", "dup_first", "good-dist"),
    ])
    failures = {f.plugin: f for f in reg.failures}
    assert set(failures) == {"broken", "missing", "typo", "wrong"}
    assert failures["broken"].distribution == "broken-dist"
    assert failures["broken"].error == "RuntimeError: this plugin is broken"
    assert failures["missing"].error.startswith("ModuleNotFoundError: No module named 'no_such_module_anywhere'")
    assert "simlabel_modelz" in failures["typo"].error
    assert "expected ModelSpec, got str" in failures["wrong"].error
    assert set(reg.models()) == {"shared", "only-first"}                    # the good plugin still works
    with pytest.raises(UnknownNameError, match="4 plugin\\(s\\) failed"):
        reg.model("nope")


def test_builtin_plugins_register_through_entry_points():
    reg = get_registry()
    assert get_registry() is reg                                            # cached per process
    assert BUILTIN_DATASETS <= set(reg.datasets())
    assert BUILTIN_MODELS <= set(reg.models())
    for name in BUILTIN_DATASETS:
        assert reg.dataset(name).distribution == "simlabel"
    for name in BUILTIN_MODELS:
        assert reg.model(name).distribution == "simlabel"
    builtin = [f for f in reg.failures if f.distribution == "simlabel"]
    assert builtin == []


# ------------------------------------------------------------------------------------------------- pip


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """The fixture distribution, built and installed with pip (offline) into a fresh target folder."""
    work = tmp_path_factory.mktemp("third_party")
    source = work / "src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", "--no-compile", "-q", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("simlabel_toy_plugin-0.1.0.dist-info"))
    return target


def test_pip_installed_plugin_is_in_the_registry(installed_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_plugin))
    reg = Registry.from_entry_points()
    assert reg.model("toy-model").distribution == "simlabel-toy-plugin"
    assert reg.dataset("toy-data").distribution == "simlabel-toy-plugin"
    model = reg.build_model("toy-model", InputSpec("features", (2,)), 3, 2, scale="2.0")
    assert model(torch.ones(4, 2)).logits.shape == (4, 3, 2)
    ds = reg.load_dataset("toy-data", seed=1)
    assert (ds.num_items, ds.num_annotators, ds.num_classes) == (12, 3, 2)
    assert BUILTIN_DATASETS <= set(reg.datasets())                          # side by side with the built-ins


def test_declared_ranges_and_choices_are_checked_with_the_owner_option_and_value():
    specs = (OptionSpec("width", int, 8, within="[1, inf)"), OptionSpec("rate", float, 0.5, within="(0, 1]"),
             OptionSpec("mode", str, "a", choices=("a", "b")), OptionSpec("free", float, None, within="[0, 1)"))
    assert resolve_options(specs, {"width": "1", "rate": 1, "mode": "b"}, "model 'm'") == {
        "width": 1, "rate": 1.0, "mode": "b", "free": None}                  # the closed ends are in; None is exempt
    for given, message in [({"width": 0}, "option 'width' must be >= 1; got 0"),
                           ({"rate": 0.0}, r"option 'rate' must lie in \(0, 1\]; got 0.0"),
                           ({"rate": "1.5"}, r"option 'rate' must lie in \(0, 1\]; got 1.5"),
                           ({"rate": "nan"}, r"option 'rate' must lie in \(0, 1\]; got nan"),
                           ({"free": 1.0}, r"option 'free' must lie in \[0, 1\); got 1.0"),
                           ({"mode": "c"}, "option 'mode' must be one of a, b; got 'c'"),
                           ({"width": "w"}, "option 'width' expects int; got 'w'")]:
        with pytest.raises(ValueError, match=f"^model 'm': {message}$"):
            resolve_options(specs, given, "model 'm'")


@pytest.mark.parametrize("kwargs, message", [
    ({"type": str, "default": "x", "within": "[0, 1)"}, "within= bounds int and float options only"),
    ({"type": float, "default": 0.5, "within": "0..1"}, "within='0..1' is not an interval such as"),
    ({"type": float, "default": 0.5, "within": "[0, 1, 2]"}, r"within='\[0, 1, 2\]' is not an interval such as"),
    ({"type": float, "default": 0.5, "within": "[0, inf]"}, r"within='\[0, inf\]' is empty or closed at an infinity"),
    ({"type": float, "default": 0.5, "within": "(1, 0)"}, r"within='\(1, 0\)' is empty or closed at an infinity"),
    ({"type": int, "default": 1, "choices": ("a",)}, "choices= applies to str options only"),
    ({"type": float, "default": 2.0, "within": "[0, 1]"}, r"its default 2.0 lies outside its own within='\[0, 1\]'"),
    ({"type": str, "default": "z", "choices": ("a", "b")},
     r"its default 'z' lies outside its own choices=\('a', 'b'\)"),
])
def test_malformed_ranges_and_choices_are_refused_where_they_are_declared(kwargs, message):
    with pytest.raises(TypeError, match=f"^option 'x': {message}"):
        OptionSpec("x", **kwargs)


def test_simlabel_plugins_lists_the_pip_installed_plugin(installed_plugin, monkeypatch, capsys):
    # In-process (a second interpreter would re-import torch): the command's cached registry is rebuilt from the
    # entry points on the extended path, and monkeypatch restores the previous one afterwards.
    monkeypatch.syspath_prepend(str(installed_plugin))
    monkeypatch.setattr(manager, "_default", None)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "  toy-model  [simlabel-toy-plugin]  a third-party linear toy model\n" in out
    assert "      scale: float = 1.0  multiplies the logits\n" in out
    assert "  toy-data  [simlabel-toy-plugin]  a third-party toy dataset\n" in out
    assert "  synthetic  [simlabel]" in out
    assert ("      preset: str = 'amer2-like' (one of amer2-like | amer-like | custom)  the paper's crowd shapes, or "
            "custom\n") in out
    assert "      eta: float = 0.8 in (0, 1)  prior probability of a correct annotation (confusion bias init)\n" in out
    assert "failed plugins" not in out


# ------------------------------------------------------------------------------------------------- CLI


def test_simlabel_plugins_reports_failures_and_exits_0(plugin_modules, monkeypatch, capsys):
    reg = Registry.from_entry_points([
        FakeEntryPoint("broken", "raises_on_import", "broken-dist"),
        FakeEntryPoint("first", "dup_first", "dist-a"),
    ])
    monkeypatch.setattr("simlabel_ext.cli.plugins.get_registry", lambda: reg)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "models:\n  only-first  [dist-a]\n  shared  [dist-a]\n" in out
    assert "datasets:\n  first-data  [dist-a]\n" in out
    assert out.endswith("failed plugins:\n  broken  [broken-dist]  RuntimeError: this plugin is broken\n")


def test_simlabel_plugins_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["plugins", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "with the distribution that provides it" in out and "Plugins that failed to load" in out


def test_pip_installed_plugin_trains_through_simlabel_train(installed_plugin, monkeypatch, tmp_path, capsys):
    # The README's plugin example (this fixture, verbatim: tests/test_readme.py) used like a built-in.
    monkeypatch.syspath_prepend(str(installed_plugin))
    monkeypatch.setattr(manager, "_default", None)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "toy-data", "--model", "toy-model", "--model-option", "scale=2", "--epochs", "3",
            "--lr", "1e-2", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["model"], metrics["epochs_run"]) == ("toy-data", "toy-model", 3)
    assert [a["id"] for a in metrics["annotators"]] == ["0", "1", "2"]
    assert sum(a["test_count"] for a in metrics["annotators"]) == metrics["test_labels"] > 0
    assert main(argv[:-2] + ["--missing-rate", "0.5", "--out", str(tmp_path / "other")]) == 2
    assert "dataset 'toy-data' has no option 'missing_rate'" in capsys.readouterr().err
