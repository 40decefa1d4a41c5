"""``items``: find items by meaning (with the ``[text]`` extra) or by the words of their titles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.cli.common import CliError, Output, cell, require_workspace
from core.importing.ids import stored_id


def add_commands(commands, common) -> None:
    p = commands.add_parser("items", parents=[common], help="find items by meaning, or items similar to one",
                            description="With the [text] extra, the catalogue's text is read by a language model "
                                        "once (cached in the workspace) and items are found by meaning; without "
                                        "it, by the words of their titles.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--search", metavar="TEXT", help='what to look for, e.g. "wooden train"')
    what.add_argument("--similar", metavar="ITEM", type=stored_id,
                      help="an item id: list the items whose text is nearest to it")
    p.add_argument("-k", type=int, default=10, help="how many items (default: %(default)s)")
    add_text_model_option(p)
    p.set_defaults(handler=cmd_items)


def add_text_model_option(p) -> None:
    p.add_argument("--text-model", type=Path, metavar="PATH", default=None,
                   help="a local sentence-transformers model folder to read item text with "
                        "(default: the packaged all-MiniLM-L6-v2 of the [text] extra)")


def text_engine(args):
    """The engine, reading item text with ``--text-model`` when given."""
    from core.engine import Engine

    require_workspace(args.db)
    text_model = getattr(args, "text_model", None)
    return Engine.open(args.db, text_model=None if text_model is None else str(text_model))


def _nothing_found(engine, similar) -> str:
    """Why no item came back: an item without a title, category or attribute has no text to compare
    (an id posted to the service or imported without an items file) ("nothing found" said neither)."""
    from core.text.catalogue import item_text

    item = None if similar is None else engine.workspace.item(similar)
    if item is not None and not item_text(item["title"], "|".join(item["categories"]), item["attributes"]):
        return f"{similar} has no title, category or attribute to read, so there is no text to compare it by"
    return "nothing found"


def cmd_items(args, out: Output) -> dict:
    from core.text import INSTALL_HINT

    engine = text_engine(args)
    if args.similar is not None and engine.workspace.item(args.similar) is None:
        raise CliError(f"unknown item {args.similar!r} in {Path(args.db).name}: no item under that id",
                       "Check the id as the shop's files spell it.")
    by_meaning = engine.text_available()
    if by_meaning:
        engine.embed_items(progress=out.progress())
        out.done_progress()
    elif args.text_model is not None:
        engine.text_model.folder()  # says why the named folder cannot be used
    if args.similar is not None:
        found = engine.similar_items(args.similar, args.k) if by_meaning else []
        header = f"items whose text is nearest to {args.similar}:"
    else:
        found = engine.search_items(args.search, args.k)
        header = f"items {'matching' if by_meaning else 'whose id or title contains'} {args.search!r}:"
    if not by_meaning:
        out.stderr.write(f"nextpick items: no text model, so only words in titles are searched; {INSTALL_HINT}\n")
    lines = [header] + [(f"{rank:>3}. {f.item:<12} {cell(f.title, 48)} {cell(', '.join(f.categories), 32)}"
                         + (f"  {f.similarity:.2f}" if hasattr(f, "similarity") else "")).rstrip()
                        for rank, f in enumerate(found, 1)]
    nothing = _nothing_found(engine, args.similar) if by_meaning else "nothing found"
    out.lines(lines if found else [header, f"  {nothing}"])
    return {"search": args.search, "similar": args.similar, "by_meaning": by_meaning,
            "text_model": engine.text_model.key() if by_meaning else None,
            "items": [dataclasses.asdict(f) for f in found]}

