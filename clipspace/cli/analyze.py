"""``clipspace analyze``: modality gap, object bias, dimension ablation, neighbourhood test,
per-dimension view (``dims``) and post-hoc gap closing (``close-gap --method
drop|shift|ideal-words|all``) on embedding files or on a run's embeddings of a dataset; JSON (and
figures) out. Bad input (a file with NaN / Inf rows, no rows or no columns, a single pair,
``--max-k`` < 0, ``--drop-k`` outside 1..D-1, ``--method ideal-words`` without labels) exits with
code 2 and a message naming the file or flag; undefined values are written as null with a
note."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clipspace.analysis.run import (
    ANALYSES,
    CLOSE_GAP_CHOICES,
    check_close_gap,
    check_max_k,
    run_analysis,
)
from clipspace.cli.common import add_prompt_args, emit_json
from clipspace.data.embeddings_io import load_embeddings, load_labels, read_arrays, read_texts
from clipspace.errors import ClipspaceError
from clipspace.eval import embed, embedding_arrays
from clipspace.experiments.common import load_model_and_data
from clipspace.geometry import GEOMETRIES, get_geometry
from clipspace.tree import json_ready


def add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="modality gap, object bias, dimension ablation, "
                       "neighbourhood test, per-dimension view, post-hoc gap closing on "
                       "embeddings (JSON out)")
    p.add_argument("what", choices=list(ANALYSES))
    p.add_argument("--embeddings", default=None, metavar="FILE",
                   help="a file written by `clipspace embed` (points, labels, geometry)")
    p.add_argument("--image-emb", default=None, help=".npy/.npz/.pt/.safetensors file")
    p.add_argument("--text-emb", default=None, help="default: key 'text' of --image-emb")
    p.add_argument("--image-key", default=None)
    p.add_argument("--text-key", default=None)
    p.add_argument("--labels", default=None, help="file of 1-D integer label arrays")
    p.add_argument("--label-key", default="digit", help="object / class label (default digit)")
    p.add_argument("--object-column", default=None, metavar="COLUMN",
                   help="csv: data: the object label column (MOAD on real data; sets --label-key)")
    p.add_argument("--attribute-column", action="append", default=[], metavar="COLUMN",
                   help="csv: data: an attribute label column (repeatable)")
    p.add_argument("--geometry", default=None, choices=list(GEOMETRIES),
                   help="space of the embedding files (root distances of gap --plot; default: "
                   "the file's recorded geometry, else sphere); with --model the model's own")
    p.add_argument("--curv", type=float, default=None, help="curvature of --geometry lorentz")
    p.add_argument("--model", "--run", dest="run", default=None,
                   help="embed --data with this model (run, checkpoint, transformers directory)")
    p.add_argument("--data", default=None,
                   help="mad:DIR, hierarcaps:CSV or imagefolder:DIR (with --run)")
    add_prompt_args(p)
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--max-k", type=int, default=20, help="ablate-dims: drop k = 0..max_k dims")
    p.add_argument("--method", default="all", choices=list(CLOSE_GAP_CHOICES),
                   help="close-gap: drop the top mean-difference dims, shift by half the gap "
                   "vector (Liang et al.), remove each modality's ideal-word constant u_0 "
                   "(Trager et al.), or all three (default)")
    p.add_argument("--drop-k", type=int, default=5,
                   help="close-gap drop: dimensions removed (default 5)")
    p.add_argument("--seed", type=int, default=0, help="dims: seed of the random-dims baseline")
    p.add_argument("--plot", default=None, metavar="DIR", help="write PNG figures here")
    p.add_argument("--out", default=None, help="write the JSON here (atomically)")
    p.set_defaults(func=run_analyze)


def _run_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict, Any, Any]:
    """(image, text, labels, geometry, curv) from embedding --data with --run (one pass)."""
    if not args.data:
        raise ClipspaceError("analyze --run needs --data mad:DIR (or hierarcaps:CSV)")
    columns = tuple(c for c in (args.object_column, *args.attribute_column) if c)
    model, ds, tok = load_model_and_data(args.run, args.data, args.split,
                                         classnames=args.classnames, templates=args.templates,
                                         label_columns=columns)
    emb = embed(model, ds, tok, max_samples=args.max_samples)
    arrays = embedding_arrays(emb)
    img, txt = arrays.pop("image"), arrays.pop("text")
    return img, txt, arrays, model.geometry, model.curv().detach().float()


def _file_geometry(args: argparse.Namespace) -> tuple[Any, float]:
    """--geometry/--curv, else what the embedding file records, else the sphere."""
    meta = json.loads(read_texts(args.image_emb).get("meta", "{}") or "{}")
    name = args.geometry or meta.get("geometry") or "sphere"
    curv = args.curv if args.curv is not None else float(meta.get("curv", 1.0))
    return get_geometry(name), curv


def _file_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict | None]:
    args.image_emb = args.image_emb or args.embeddings
    if not args.image_emb:
        raise ClipspaceError("analyze needs --embeddings FILE, --image-emb FILE (and "
                             "--text-emb) or --model MODEL --data SPEC")
    img = load_embeddings(args.image_emb, key=args.image_key or (
        "image" if "image" in read_arrays(args.image_emb) else None))
    if args.text_emb:
        txt = load_embeddings(args.text_emb, key=args.text_key)
    else:
        txt = load_embeddings(args.image_emb, key=args.text_key or "text")
    if args.labels:
        return img, txt, load_labels(args.labels)
    try:
        return img, txt, load_labels(args.image_emb)
    except ClipspaceError:
        return img, txt, None


def run_analyze(args: argparse.Namespace) -> int:
    """Check the flags, read or embed the inputs, print (and with --out write) the JSON: never a
    bare NaN (``json_ready``: null, and a note saying why)."""
    if args.what == "ablate-dims":
        check_max_k(args.max_k)  # before any embedding
    if args.what == "close-gap":
        check_close_gap(args.method, args.drop_k)
    if args.object_column:
        args.label_key = args.object_column
    if args.run:
        img, txt, labels, geometry, curv = _run_inputs(args)
    else:
        img, txt, labels = _file_inputs(args)
        geometry, curv = _file_geometry(args)
    res = run_analysis(args.what, img, txt, labels, plot_dir=args.plot, label_key=args.label_key,
                       max_k=args.max_k, geometry=geometry, curv=curv, method=args.method,
                       drop_k=args.drop_k, seed=args.seed)
    emit_json(json_ready(res), args.out)
    return 0
