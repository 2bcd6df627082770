"""``clipspace eval``: evaluate a run, checkpoint or transformers directory; JSON out."""

from __future__ import annotations

import argparse

from clipspace.cli.common import emit_json
from clipspace.cli.embed import add_model_data_args, load_for_embedding
from clipspace.eval import (
    SUITES,
    embed,
    embedding_meta,
    evaluate,
    load_saved_embeddings,
    save_embeddings,
)
from clipspace.eval.class_tree import load_class_tree
from clipspace.eval.scenes import evaluate_scenes
from clipspace.eval.zeroshot import ENSEMBLES
from clipspace.models import load_model_and_tokenizer


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run, checkpoint or transformers model "
                       "(zero-shot, retrieval, linear probe, hierarchy) and write JSON")
    add_model_data_args(p)
    p.add_argument("--embeddings", default=None, metavar="FILE",
                   help="points written by `clipspace embed` for this --data (no re-embedding)")
    p.add_argument("--suite", default="zeroshot,retrieval,linear_probe,hierarchy",
                   help=f"comma-separated suites of: {', '.join(SUITES)}")
    p.add_argument("--hierarchy-root", default="default", choices=["default", "empty"],
                   help="[ROOT] of the hierarchy suite: the origin (mean direction on the sphere) "
                   "or the text embedding of \"\" (Radial Embedding)")
    p.add_argument("--zeroshot-ensemble", default="auto", choices=["auto", *ENSEMBLES],
                   help="average the prompts before the final map (prototype), average each "
                   "prompt's score (score), or the one that suits the model's scoring rule "
                   "(auto: score for angle-scored ATMG, else prototype); reported in the JSON")
    p.add_argument("--class-tree", default=None, metavar="FILE",
                   help="class tree (JSON {child: parent}, or a .txt of 'parent child' lines) "
                   "for hierarchical metrics of the zero-shot predictions (adds the class_tree "
                   "suite: tree-induced error, LCA depth, mistake severity, hierarchical P/R)")
    p.add_argument("--save-embeddings", default=None, metavar="FILE",
                   help="also write the embeddings + labels (.npz/.pt/.safetensors) for analyze")
    p.add_argument("--out", default=None, help="write the results JSON here (atomically)")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    if str(args.data).startswith("scenes:"):
        return run_eval_scenes(args)
    tree = load_class_tree(args.class_tree) if args.class_tree else None  # before embedding
    model, dataset, tok = load_for_embedding(args)
    if args.embeddings:
        emb, _ = load_saved_embeddings(args.embeddings, dataset)
    else:
        emb = embed(model, dataset, tok, args.batch_size, args.device, args.max_samples,
                    progress=not args.no_progress, workers=args.workers)
    res = evaluate(model, args.data, suites=args.suite, tokenizer=tok, split=args.split,
                   batch_size=args.batch_size, device=args.device,
                   progress=not args.no_progress, image_dir=args.image_dir,
                   hierarchy_root=args.hierarchy_root, zeroshot_ensemble=args.zeroshot_ensemble,
                   embeddings=emb, class_tree=tree)
    res["model"] = str(args.model)
    if args.save_embeddings:
        meta = {**embedding_meta(model, args.data, args.split), "model": str(args.model)}
        res["embeddings"] = str(save_embeddings(emb, args.save_embeddings, meta))
    emit_json(res, args.out)
    return 0


def run_eval_scenes(args: argparse.Namespace) -> int:
    """``--data scenes:DIR``: multi-object zero-shot, part-whole entailment and scene retrieval
    (``eval.scenes.evaluate_scenes``; the suites of other data do not apply)."""
    model, tok = load_model_and_tokenizer(args.model)
    res = evaluate_scenes(model, args.data, tok, args.max_samples, not args.no_progress,
                          split=args.split, batch_size=args.batch_size)
    res["model"] = str(args.model)
    emit_json(res, args.out)
    return 0
