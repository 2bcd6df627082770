"""``clipspace eval``: evaluate a run, checkpoint or transformers directory; JSON out."""

from __future__ import annotations

import argparse

from clipspace.cli.common import add_prompt_args, emit_json
from clipspace.data.tokenizer import get_tokenizer
from clipspace.eval import SUITES, embed, evaluate, load_eval_dataset, save_embeddings
from clipspace.eval.datasets import dataset_tokenizer
from clipspace.eval.zeroshot import ENSEMBLES
from clipspace.models import load_model_and_tokenizer


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run or checkpoint (zero-shot, retrieval, "
                       "linear probe, hierarchy) and write JSON")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT",
                   help="run dir, step dir or .safetensors file (a preset name: untrained model)")
    p.add_argument("--data", required=True,
                   help="mad:DIR, hierarcaps:CSV or imagefolder:DIR (one sub-folder per class)")
    p.add_argument("--image-dir", default=None, help="HierarCaps image folder")
    add_prompt_args(p)
    p.add_argument("--suite", default="zeroshot,retrieval,linear_probe,hierarchy",
                   help=f"comma-separated suites of: {', '.join(SUITES)}")
    p.add_argument("--split", default="test")
    p.add_argument("--hierarchy-root", default="default", choices=["default", "empty"],
                   help="[ROOT] of the hierarchy suite: the origin (mean direction on the sphere) "
                   "or the text embedding of \"\" (Radial Embedding)")
    p.add_argument("--zeroshot-ensemble", default="auto", choices=["auto", *ENSEMBLES],
                   help="average the prompts before the final map (prototype), average each "
                   "prompt's score (score), or the one that suits the model's scoring rule "
                   "(auto: score for angle-scored ATMG, else prototype); reported in the JSON")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: run's, else data's)")
    p.add_argument("--save-embeddings", default=None, metavar="FILE",
                   help="also write the embeddings + labels (.npz/.pt/.safetensors) for analyze")
    p.add_argument("--out", default=None, help="write the results JSON here (atomically)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    model, tok = load_model_and_tokenizer(args.model)
    model.to(args.device).eval()
    if args.tokenizer:
        tok = get_tokenizer(args.tokenizer, context_length=model.context_length)
    dataset = load_eval_dataset(args.data, model, args.split, args.image_dir,
                                args.classnames, args.templates)
    tok = tok or dataset_tokenizer(dataset, model)
    emb = embed(model, dataset, tok, args.batch_size, args.device, args.max_samples,
                progress=not args.no_progress)
    res = evaluate(model, args.data, suites=args.suite, tokenizer=tok, split=args.split,
                   batch_size=args.batch_size, device=args.device,
                   progress=not args.no_progress, image_dir=args.image_dir,
                   hierarchy_root=args.hierarchy_root, zeroshot_ensemble=args.zeroshot_ensemble,
                   embeddings=emb)
    res["model"] = str(args.model)
    if args.save_embeddings:
        res["embeddings"] = str(save_embeddings(emb, args.save_embeddings))
    emit_json(res, args.out)
    return 0
