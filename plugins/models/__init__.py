"""Built-in annotator-model plugins of simlabel, one module per architecture.

Each module implements the ``simlabel_models`` hook and is registered through its own entry point in the group
``simlabel`` (exactly as a third-party plugin would be); each imports only the public API
(:mod:`simlabel_ext.models`, :mod:`simlabel_ext.registry`).

========  ======================================================================================
``heads``   shared encoder and one linear head per annotator (the simplest baseline)
``padl``    Liao et al. 2024, Preference-involved Annotation Distribution Learning
``madl``    Herde et al. 2023, Multi-annotator Deep Learning (ground truth + confusion matrices)
``qumatl``  Zhang et al. 2025, Query-based Multi-annotator Tendency Learning (one query per annotator)
========  ======================================================================================
"""
