"""``clipspace report``: one HTML + markdown report of run directories and experiment output
directories (``section.json`` + ``runs/*``, what ``clipspace reproduce NAME`` writes), their
sections first and every run side by side."""

from __future__ import annotations

import argparse

from clipspace.report import collect, write_report


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML + markdown report of runs and experiment outputs")
    p.add_argument("paths", nargs="+", metavar="DIR",
                   help="run directories and/or experiment output directories (section.json, "
                   "runs/*)")
    p.add_argument("--out", default="report", help="output directory (report.html, report.md)")
    p.add_argument("--title", default="clipspace report")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    runs, sections = collect(args.paths)
    html_path, md_path = write_report(runs, args.out, title=args.title, sections=sections,
                                      progress=True)
    print(f"report of {len(runs)} run(s) and {len(sections)} section(s): wrote {html_path} "
          f"and {md_path}")
    return 0
