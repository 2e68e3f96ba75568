"""Builds the C++ extension ``simlabel_ext._C`` from ``csrc/``.

Metadata lives in pyproject.toml. Install torch first, then this package without build isolation:
``pip install --no-build-isolation .`` (README). Every ``csrc/**/*.cpp`` is compiled into one module with
``-O3 -g0`` and ATen's parallel backend (OpenMP where torch uses it).
"""
import glob
import os

from setuptools import setup

try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except ImportError as exc:  # pragma: no cover - the message is the point
    raise SystemExit(
        "simlabel builds its C++ extension against the installed torch. Install torch first "
        "(e.g. `pip install torch==2.13.0`), then `pip install --no-build-isolation .`"
    ) from exc

ROOT = os.path.dirname(os.path.abspath(__file__))
sources = sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "csrc", "**", "*.cpp"), recursive=True)
)

setup(
    ext_modules=[
        CppExtension(
            name="simlabel_ext._C",
            sources=sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args=["-O3", "-g0", "-fopenmp"],
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
