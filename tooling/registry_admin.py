"""`mlstages registry list|clean`: what is in the model registry, and the removal of what failed
runs left behind (incomplete versions, and on request unevaluated ones). See registry.py for what
the states mean."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from mlstages.components.common.errors import ParameterError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_age(text: str) -> dt.timedelta:
    """``30m``, ``2h``, ``7d``, ``45s`` as a timedelta; anything else is a ParameterError."""
    match = _AGE.match(text.strip())
    if not match:
        raise ParameterError(
            f"--older-than {text!r} is not an age: give a number and a unit, s, m, h or d (e.g. 2h)"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def add_parser(commands: argparse._SubParsersAction) -> None:
    from mlstages.components.common.registry import DEFAULT_CLEAN_AGE

    reg = commands.add_parser(
        "registry",
        help="list a model's versions in the registry, and remove what failed runs left",
        description="A version exists once its metadata.json is written, last, after every other "
        "file: a publish that was interrupted leaves an *incomplete* folder that no reader uses, and a "
        "version whose evaluation failed is *unevaluated* and never becomes the champion. Without "
        "--registry, the embedded store's registry under --workdir is used.",
    )
    actions = reg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")

    def common(action: argparse.ArgumentParser) -> None:
        action.add_argument("--model", required=True, metavar="NAME", help="the model's name")
        action.add_argument("--registry", metavar="URI", help="registry root: gs://bucket/models or a folder")
        action.add_argument("--workdir", default=".mlstages", help="folder of the embedded store")

    listing = actions.add_parser("list", help="the model's versions and their states")
    common(listing)
    listing.add_argument(
        "--incomplete",
        action="store_true",
        help="only the versions that are not complete (incomplete or unevaluated)",
    )
    listing.set_defaults(handler=list_command)

    show = actions.add_parser(
        "show",
        help="a version's model card: the model, its inputs, data lineage, code, parameters, parent",
        description="Print a version's model card as the HTML model card shows it: the model and "
        "its baselines, its inputs, every data source (URI, rows, content hash), the suite version "
        "and images, each stage's parameters, the parent champion and, once evaluated, the test-set "
        "metrics. VERSION is a version name (as `registry list` prints it), 'champion', or a URI.",
    )
    common(show)
    show.add_argument("version", metavar="VERSION", help="version name, 'champion', or the version's URI")
    show.set_defaults(handler=show_command)

    clean = actions.add_parser(
        "clean",
        help="remove incomplete versions (never a complete one, never the champion)",
        description="Remove the model's incomplete versions older than --older-than (and with "
        "--unevaluated, its unevaluated ones). Complete versions, the champion and the version it "
        "replaced are never touched. Without --yes, only says what it would remove.",
    )
    common(clean)
    clean.add_argument(
        "--older-than",
        default=f"{int(DEFAULT_CLEAN_AGE.total_seconds() // 3600)}h",
        metavar="AGE",
        help="only versions whose publish started this long ago, e.g. 30m, 2h, 7d (default: "
        "%(default)s), so that a publish still running is left alone",
    )
    clean.add_argument(
        "--unevaluated",
        action="store_true",
        help="also remove published versions that were never evaluated (their run failed)",
    )
    clean.add_argument("--yes", action="store_true", help="remove them (default: only list them)")
    clean.set_defaults(handler=clean_command)


@contextlib.contextmanager
def _registry_root(args: argparse.Namespace) -> Iterator[str]:
    if args.registry:
        yield args.registry
        return
    from mlstages.tooling import local

    with local.object_store(Path(args.workdir), lambda line: print(line, file=sys.stderr)) as bucket:
        yield f"gs://{bucket}/models"


def list_command(args: argparse.Namespace) -> int:
    from mlstages.components.common import registry

    with _registry_root(args) as root:
        states = registry.version_states(root, args.model)
        pointer = registry.read_pointer(root, args.model)
    champion = str((pointer or {}).get("version", ""))
    shown = [v for v in states if not args.incomplete or v.state != registry.COMPLETE]
    if not shown:
        what = "incomplete versions" if args.incomplete else "versions"
        print(f"no {what} of {args.model!r} under {root}")
        return 0
    for v in shown:
        mark = "  champion" if v.version == champion else ""
        print(f"{v.version}  {v.state:<11}  {len(v.files)} files  {v.uri}{mark}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    import tempfile

    from mlstages.components.common import registry, storage
    from mlstages.components.common.errors import ParameterError
    from mlstages.components.common.model_card import METADATA_FILE, ModelCard
    from mlstages.components.common.model_card_report import render_card_text

    with _registry_root(args) as root:
        if args.version == "champion":
            pointer = registry.read_champion(root, args.model)
            if pointer is None:
                raise ParameterError(f"no champion of {args.model!r} under {root}: run training first")
            uri = pointer["model_uri"]
        elif "://" in args.version or args.version.startswith("/"):
            uri = args.version
        else:
            uri = registry.version_uri(root, args.model, args.version)
        if not registry.is_published(uri):
            raise ParameterError(
                f"{uri} is not a published version of {args.model!r}; `mlstages registry list --model "
                f"{args.model}` names the versions"
            )
        with tempfile.TemporaryDirectory(prefix="mlstages-card-") as scratch:
            storage.download_file(f"{uri.rstrip('/')}/{METADATA_FILE}", Path(scratch) / METADATA_FILE)
            card = ModelCard.read(scratch, uri)
        evaluation = registry.read_evaluation(uri)
    title = f"Model card: {args.model} {uri.rstrip('/').rsplit('/', 1)[-1]}"
    print(render_card_text(card, title, evaluation), end="")
    return 0


def clean_command(args: argparse.Namespace) -> int:
    from mlstages.components.common import registry

    older_than = parse_age(args.older_than)
    with _registry_root(args) as root:
        doomed = registry.removable_versions(
            root, args.model, older_than=older_than, unevaluated=args.unevaluated
        )
        if not doomed:
            print(f"nothing to remove: no {_what(args)} of {args.model!r} older than {args.older_than}")
            return 0
        for v in doomed:
            if args.yes:
                registry.remove_version(v)
            print(f"{'removed' if args.yes else 'would remove'} {v.uri} ({v.state}, {len(v.files)} files)")
    if not args.yes:
        print(f"run again with --yes to remove these {len(doomed)} version(s)")
    return 0


def _what(args: argparse.Namespace) -> str:
    return "incomplete or unevaluated versions" if args.unevaluated else "incomplete versions"
