"""Annotator models: the contract every model fulfils and the building blocks a model plugin may reuse.

A model plugin imports from here only (see :mod:`simlabel_ext.registry` for how it registers)::

    from simlabel_ext.models import AnnotatorModel, InputSpec, ModelOutput, build_encoder, AnnotatorLinear
"""
from .contract import INPUT_KINDS, AnnotatorModel, InputSpec, ModelOutput
from .encoders import (
    AnnotatorLinear,
    ConvEncoder,
    ConvTrunk,
    MLPEncoder,
    TokenEncoder,
    build_encoder,
    build_token_encoder,
    check_input_spec,
)

__all__ = [
    "INPUT_KINDS",
    "AnnotatorLinear",
    "AnnotatorModel",
    "ConvEncoder",
    "ConvTrunk",
    "InputSpec",
    "MLPEncoder",
    "ModelOutput",
    "TokenEncoder",
    "build_encoder",
    "build_token_encoder",
    "check_input_spec",
]
