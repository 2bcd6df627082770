"""``clipspace embed``: image and text points of a dataset in the model's own geometry, with
labels, captions and where they come from, written once for ``eval`` and ``analyze``."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipspace.cli.common import add_prompt_args
from clipspace.eval import embed, embedding_meta, save_embeddings
from clipspace.eval.embed_shards import embed_to_directory
from clipspace.experiments.common import load_model_and_data


def add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed a dataset once (points in the model's geometry, "
                       "labels, captions) for eval --embeddings and analyze --embeddings")
    add_model_data_args(p)
    p.add_argument("--out", required=True,
                   help="output .npz / .pt / .safetensors file, or a directory (no suffix): "
                   "points streamed into .npy files, bounded memory for millions of images")
    p.set_defaults(func=run_embed)


def add_model_data_args(p: argparse.ArgumentParser) -> None:
    """MODEL, --data and the options of the one embedding pass (shared by embed and eval)."""
    p.add_argument("model", metavar="MODEL",
                   help="run dir, step dir, .safetensors file or transformers directory "
                   "(a preset name: an untrained model)")
    p.add_argument("--data", required=True,
                   help="mad:DIR, hierarcaps:CSV, imagefolder:DIR (one sub-folder per class), "
                   "csv:FILE, coco:CAPTIONS.json or wds:PATTERN (several captions per image)")
    p.add_argument("--image-dir", default=None,
                   help="image folder of hierarcaps:, csv: and coco: data")
    add_prompt_args(p)
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, default=0, help="a seeded random subset (0: all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes for images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: run's, else data's)")
    p.add_argument("--no-progress", action="store_true")


def load_for_embedding(args: argparse.Namespace):
    """(model in eval mode, dataset, tokenizer) of the shared MODEL/--data arguments."""
    return load_model_and_data(args.model, args.data, args.split, args.device, args.tokenizer,
                               image_dir=args.image_dir, classnames=args.classnames,
                               templates=args.templates)


def run_embed(args: argparse.Namespace) -> int:
    model, dataset, tok = load_for_embedding(args)
    meta = {**embedding_meta(model, args.data, args.split), "model": str(args.model)}
    if not Path(args.out).suffix:
        out = embed_to_directory(model, dataset, tok, args.out, args.batch_size, args.device,
                                 args.max_samples, not args.no_progress, args.workers, meta)
    else:
        emb = embed(model, dataset, tok, args.batch_size, args.device, args.max_samples,
                    progress=not args.no_progress, workers=args.workers)
        out = save_embeddings(emb, args.out, meta)
    print(f"wrote {out}: geometry {meta['geometry']} (curv {meta['curv']:.4g})")
    return 0
