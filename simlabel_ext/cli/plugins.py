"""``simlabel plugins``: every registered annotator model and dataset, and every plugin that failed to load."""
from __future__ import annotations

import argparse
import sys

from ..registry import Registration, get_registry


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "plugins",
        help="list the registered annotator models and datasets and the distributions providing them",
        description=(
            "List every annotator model and dataset registered through the entry-point group 'simlabel' (built-in "
            "and third-party), each with the distribution that provides it, its description and its options "
            "(name, type, default; '-' = no default; the values it takes where bounded). Plugins that failed to load "
            "(import error, duplicate name, malformed registration) are listed with their error; the command still "
            "exits with status 0."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(run=run)


def _section(title: str, entries: dict[str, Registration]) -> list[str]:
    lines = [f"{title}:"]
    if not entries:
        lines.append("  (none)")
    for name, (spec, distribution) in entries.items():
        lines.append(f"  {name}  [{distribution}]" + (f"  {spec.description}" if spec.description else ""))
        for option in spec.option_specs:
            default = "-" if option.default is None else repr(option.default)
            kind = "path" if option.path else option.type.__name__
            bound = f" in {option.within}" if option.within else ""
            bound += f" (one of {' | '.join(option.choices)})" if option.choices else ""
            help_ = f"  {option.help}" if option.help else ""
            lines.append(f"      {option.name}: {kind} = {default}{bound}{help_}")
    return lines


def run(args: argparse.Namespace) -> int:
    registry = get_registry()
    lines = _section("models", registry.models()) + [""] + _section("datasets", registry.datasets())
    if registry.failures:
        lines += ["", "failed plugins:"]
        lines += [f"  {f.plugin}  [{f.distribution}]  {f.error}" for f in registry.failures]
    print("\n".join(lines), file=sys.stdout)
    return 0
