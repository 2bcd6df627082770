"""Embedding throughput of ``clipspace embed`` on a JPEG folder against a plain loop over
transformers' image processor and model, same model and batch size.

Usage: ``python benchmarks/embed.py [--images DIR] [--batch 64] [--workers 0,2] [--size 224]``
(default images: ../shared/data/hierarcaps/images, 1,000 COCO JPEGs). The model is a random
transformers CLIP ViT at ``--size`` px built here (no download): its towers are small, so the
figure weighs JPEG decoding and preprocessing as a real ViT-B run with workers would. Prints
images/s of each and the ratio clipspace / plain (machine-independent).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clipspace.data.imagefolder import ImageFolderDataset  # noqa: E402
from clipspace.eval import embed  # noqa: E402
from clipspace.models import create_model  # noqa: E402


def tiny_clip_dir(out: Path, size: int) -> Path:
    """A random CLIP (hidden 64, 2 layers, patch 32) with a 224-px processor, saved to ``out``."""
    import transformers

    from tests.helpers.hf import make_tiny_hf_clip

    base = make_tiny_hf_clip(out / "base")
    cfg = transformers.CLIPConfig.from_pretrained(base)
    cfg.vision_config.image_size, cfg.vision_config.patch_size = size, 32
    cfg.vision_config.hidden_size = cfg.vision_config.intermediate_size = 64
    model = transformers.CLIPModel(cfg).eval()
    model.save_pretrained(out / "clip")
    proc = transformers.CLIPImageProcessor(size={"shortest_edge": size},
                                           crop_size={"height": size, "width": size})
    proc.save_pretrained(out / "clip")
    keep = ("config.json", "model.safetensors", "preprocessor_config.json")
    for f in base.iterdir():  # the tokenizer files
        if f.is_file() and f.name not in keep:
            (out / "clip" / f.name).write_bytes(f.read_bytes())
    return out / "clip"


@torch.no_grad()
def plain_loop(directory: Path, files: list[Path], batch: int) -> float:
    """images/s of: open JPEGs, transformers' processor, get_image_features, in batches."""
    import transformers

    model = transformers.CLIPModel.from_pretrained(directory).eval()
    proc = transformers.CLIPImageProcessor.from_pretrained(directory)
    t0 = time.perf_counter()
    for s in range(0, len(files), batch):
        images = [Image.open(f).convert("RGB") for f in files[s : s + batch]]
        pixels = proc(images=images, return_tensors="pt")["pixel_values"]
        model.get_image_features(pixel_values=pixels)
    return len(files) / (time.perf_counter() - t0)


def clipspace_embed(directory: Path, folder: Path, batch: int, workers: int) -> float:
    model = create_model(pretrained=str(directory)).eval()
    ds = ImageFolderDataset(folder, model.preprocess)
    t0 = time.perf_counter()
    embed(model, ds, model.tokenizer, batch_size=batch, progress=False, workers=workers)
    return len(ds) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(ROOT.parent / "shared/data/hierarcaps/images"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--limit", type=int, default=1000)
    args = ap.parse_args()
    files = sorted(Path(args.images).glob("*.jpg"))[: args.limit]
    if not files:
        sys.exit(f"no .jpg files in {args.images}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        directory = tiny_clip_dir(tmp, args.size)
        folder = tmp / "folder" / "all"
        folder.mkdir(parents=True)
        for f in files:
            (folder / f.name).symlink_to(f.resolve())
        torch.set_num_threads(2)
        plain = plain_loop(directory, files, args.batch)
        print(f"# {len(files)} JPEGs, batch {args.batch}, {args.size} px, 2 threads")
        print(f"transformers processor + model loop: {plain:8.1f} images/s  (1.00)")
        for w in (int(x) for x in args.workers.split(",")):
            ours = clipspace_embed(directory, folder.parent, args.batch, w)
            print(f"clipspace embed, {w} workers:       {ours:8.1f} images/s  "
                  f"({ours / plain:.2f})")


if __name__ == "__main__":
    main()
