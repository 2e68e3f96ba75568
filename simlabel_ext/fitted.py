"""A fitted multi-annotator model: what each annotator would say about new items, and its one-file format.

:class:`FittedModel` holds an annotator model (any model plugin) with what it needs to be used on new items: the
plugin's name and resolved options, the input spec, the feature names and the feature standardisation it was
trained with, the class names and the annotator ids. :meth:`~FittedModel.predict_proba` gives ``[N, A, C]``
probabilities for raw (unscaled) inputs.

The model file (``model.pt``, written by :meth:`~FittedModel.save`; ``simlabel train`` leaves one in every run
directory) is one dict of tensors and plain data::

    format      "simlabel-model"          version   MODEL_FORMAT_VERSION
    model       {"name": plugin name, "options": resolved options}
    state_dict  the weights               input_spec {"kind", "shape"}
    classes     class names (or values)   annotators annotator ids (or values)
    feature_names  list or None           scaling   {"mean", "std"} float64 [D] or None
    metadata    plain data: the training configuration, best epoch, simlabel version

:meth:`~FittedModel.load` opens it with ``torch.load(weights_only=True)`` only (never running code from it), and
refuses, in one line naming the file: a file that holds code, another kind of file, a format version newer than
this simlabel reads, a model plugin that is not installed (named), weights that do not fit the model.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .data import FeatureScaling, InputSpec
from .models import AnnotatorModel
from .registry import RegistryError, get_registry
from .storage import TorchFileError, load_torch, save_torch

__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "FittedModel", "ModelFileError", "class_softmax"]

MODEL_FORMAT = "simlabel-model"
#: The newest model-file version this simlabel writes and reads.
MODEL_FORMAT_VERSION = 1
_KEYS = ("format", "version", "model", "state_dict", "input_spec", "classes", "annotators", "feature_names",
         "scaling", "metadata")


def class_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits, -1)`` of ``[N, A, C]`` logits, computed with the classes on the middle axis: on the CPU,
    PyTorch's softmax over a short last axis (C = 10) is about 2.5x slower than over a middle one. Equal to
    ``logits.softmax(-1)`` within float32 rounding (1e-7)."""
    return logits.transpose(1, 2).contiguous().softmax(1).transpose(1, 2).contiguous()


class ModelFileError(TorchFileError):
    """A model file that cannot be used here; the message names the file and the reason."""


class FittedModel:
    """An annotator model with its classes, annotators, input spec, feature names and scaling (see the module
    docstring). ``model`` is put in eval mode; ``classes`` and ``annotators`` are plain values (str, int, ...)."""

    def __init__(
        self,
        model: AnnotatorModel,
        model_name: str,
        model_options: dict[str, Any],
        input_spec: InputSpec,
        classes: Sequence[Any],
        annotators: Sequence[Any],
        *,
        feature_names: Sequence[str] | None = None,
        scaling: FeatureScaling | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if (model.num_annotators, model.num_classes) != (len(annotators), len(classes)):
            raise ValueError(f"the model has {model.num_annotators} annotators and {model.num_classes} classes, but "
                             f"{len(annotators)} annotator ids and {len(classes)} classes were given")
        self.model = model.eval()
        self.model_name = model_name
        self.model_options = dict(model_options)
        self.input_spec = input_spec
        self.classes = list(classes)
        self.annotators = list(annotators)
        self.feature_names = None if feature_names is None else [str(name) for name in feature_names]
        self.scaling = scaling
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return (f"FittedModel({self.model_name!r}, {len(self.annotators)} annotators, {len(self.classes)} classes, "
                f"inputs {self.input_spec.kind} {tuple(self.input_spec.shape)})")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> FittedModel:
        """Move the model to ``device`` (in place); returns ``self``."""
        self.model.to(device)
        return self

    # ------------------------------------------------------------------------------------------------ predict
    def check_inputs(self, inputs: torch.Tensor) -> None:
        """``ValueError`` unless ``inputs`` is a float32 ``[N, *input_spec.shape]`` tensor."""
        shape = tuple(self.input_spec.shape)
        if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.float32:
            raise ValueError(f"inputs must be a float32 tensor; got {getattr(inputs, 'dtype', type(inputs))}")
        if inputs.dim() != 1 + len(shape) or tuple(inputs.shape[1:]) != shape:
            what = f"{shape[0]} features per item" if self.input_spec.kind == "features" else f"images of {shape}"
            raise ValueError(f"the model takes {what} ([N, {', '.join(map(str, shape))}]); got inputs of shape "
                             f"{list(inputs.shape)}")

    @torch.no_grad()
    def predict_logits(self, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """``logits [N, A, C]`` (float32, on the CPU) of raw ``inputs [N, *input_spec.shape]`` (float32), scaled as
        in training, in batches of ``batch_size`` items, the model in eval mode."""
        self.check_inputs(inputs)
        if self.scaling is not None:
            inputs = self.scaling.apply(inputs)
        device, parts = self.device, []
        for start in range(0, len(inputs), batch_size):
            parts.append(self.model(inputs[start:start + batch_size].to(device)).logits.float().cpu())
        a, c = len(self.annotators), len(self.classes)
        return torch.cat(parts) if parts else torch.zeros(0, a, c)

    def predict_proba(self, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """``[N, A, C]`` float32: each annotator's predicted distribution over the classes (rows sum to 1)."""
        return class_softmax(self.predict_logits(inputs, batch_size))

    # ------------------------------------------------------------------------------------------------ the file
    def to_state(self) -> dict[str, Any]:
        """The model file's dict (tensors and plain data only)."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_FORMAT_VERSION,
            "model": {"name": self.model_name, "options": dict(self.model_options)},
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "input_spec": {"kind": self.input_spec.kind, "shape": list(self.input_spec.shape)},
            "classes": list(self.classes),
            "annotators": list(self.annotators),
            "feature_names": self.feature_names,
            "scaling": None if self.scaling is None else {"mean": self.scaling.mean.clone(),
                                                          "std": self.scaling.std.clone()},
            "metadata": self.metadata,
        }

    def save(self, path: str | Path) -> None:
        """Write the model file (atomically) to ``path``."""
        save_torch(self.to_state(), path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> FittedModel:
        """Open a model file (never running code from it) and rebuild the model with its plugin, on ``device``."""
        state = load_torch(path, "model file")
        if state.get("format") != MODEL_FORMAT:
            what = "a training checkpoint" if "optimizer" in state else f"format {state.get('format')!r}"
            raise ModelFileError(f"{path} is not a simlabel model file ({what}); a run directory's model is its "
                                 "model.pt")
        version = state.get("version")
        if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
            raise ModelFileError(f"model file {path} has format version {version!r}, newer than the version "
                                 f"{MODEL_FORMAT_VERSION} this simlabel reads: upgrade simlabel to load it")
        missing = [key for key in _KEYS if key not in state]
        if missing:
            raise ModelFileError(f"model file {path} lacks {', '.join(map(repr, missing))}")
        name, options = state["model"]["name"], state["model"]["options"]
        registry = get_registry()
        if name not in registry.models():
            installed = ", ".join(registry.models()) or "none"
            raise ModelFileError(f"model file {path} needs the annotator-model plugin {name!r}, which is not "
                                 f"installed here (installed: {installed}); install the package that provides it")
        spec = InputSpec(state["input_spec"]["kind"], tuple(state["input_spec"]["shape"]))
        try:
            model = registry.build_model(name, spec, len(state["annotators"]), len(state["classes"]), **options)
            model.load_state_dict(state["state_dict"])
        except (RegistryError, RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"model file {path}: its weights do not fit model {name!r}: {first}") from None
        scaling = state["scaling"]
        return cls(model.to(device), name, options, spec, state["classes"], state["annotators"],
                   feature_names=state["feature_names"],
                   scaling=None if scaling is None else FeatureScaling(scaling["mean"], scaling["std"]),
                   metadata=state["metadata"])
