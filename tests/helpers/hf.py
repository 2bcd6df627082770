"""A random tiny Hugging Face CLIP checkpoint (needs ``transformers``) and random images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

TEXTS = [
    "a dog", "a small dog", "a small brown dog", "a small brown dog on grass",
    "a cat", "a black cat", "a black cat sleeping", "a black cat sleeping on a bed",
    "a car", "a red car", "a red car parked", "a red car parked by the road",
    "a bird", "a bird flying", "",
]


def make_tiny_hf_clip(directory: Path, corpus: list[str] | None = None, seed: int = 0) -> Path:
    """A random tiny transformers CLIP + byte-level BPE tokenizer + image processor in
    ``directory`` (hidden 32, 2 layers, 32x32 images, patch 8, projection 16, 16 positions)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator((corpus or TEXTS) * 3, trainer=trainer)
    sot, eot = backend.token_to_id("<|startoftext|>"), backend.token_to_id("<|endoftext|>")
    backend.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", sot), ("<|endoftext|>", eot)],
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=16,
    )
    cfg = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=backend.get_vocab_size(), hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
            eos_token_id=eot, bos_token_id=sot, pad_token_id=eot,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = transformers.CLIPModel(cfg).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tok.save_pretrained(str(directory))
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(str(directory))
    return directory


def random_image(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
