"""Random tiny Hugging Face CLIP / SigLIP / SigLIP 2 checkpoints (need ``transformers``; built
offline: tokenizers trained on a few captions) and random images."""

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


def _siglip_tokenizer(corpus: list[str], max_length: int):
    """A SigLIP-like fast tokenizer: lowercased Metaspace BPE, ``</s>`` appended, ``</s>`` also
    the pad token (as ``SiglipTokenizer``, which needs sentencepiece, is not installed)."""
    import transformers
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    backend.train_from_iterator(corpus * 3, trainer=trainer)
    eos = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="</s>", pad_token="</s>", unk_token="<unk>",
        model_max_length=max_length,
    )


def _siglip2_tokenizer(corpus: list[str], max_length: int):
    """transformers' own ``Siglip2Tokenizer`` (Gemma-style BPE, lowercasing) on a vocabulary
    trained here, appending ``<eos>`` and padding on the right."""
    import json

    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(),
                                               normalizers.Replace(" ", "\u2581")])
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous")
    trainer = trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"],
        show_progress=False,
    )
    backend.train_from_iterator(corpus * 3, trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]]
    return transformers.Siglip2Tokenizer(
        vocab=model["vocab"], merges=merges, model_max_length=max_length, add_eos_token=True,
        padding_side="right",
    )


def make_tiny_hf_siglip(
    directory: Path,
    kind: str = "siglip",
    image_size: int = 32,
    patch_size: int = 8,
    context_length: int = 16,
    corpus: list[str] | None = None,
    seed: int = 0,
    logit_scale: float = 2.3,
    logit_bias: float = -3.0,
) -> Path:
    """A random tiny transformers ``SiglipModel`` (``kind="siglip"``) or ``Siglip2Model``
    (``"siglip2"``) + tokenizer + image processor in ``directory``: hidden 32, 2 layers,
    ``context_length`` positions, ``image_size`` square images (SigLIP 2: at most
    ``(image_size / patch_size)^2`` patches), log logit scale ``logit_scale``, bias
    ``logit_bias`` (transformers initialises both to 0)."""
    import transformers

    corpus = corpus or TEXTS
    tok = (_siglip_tokenizer if kind == "siglip" else _siglip2_tokenizer)(corpus, context_length)
    text = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=context_length,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
    )
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, patch_size=patch_size)
    grid = image_size // patch_size
    if kind == "siglip":
        cfg = transformers.SiglipConfig(text_config=text,
                                        vision_config={**vision, "image_size": image_size})
        model_cls = transformers.SiglipModel
        processor = transformers.SiglipImageProcessor(
            size={"height": image_size, "width": image_size}
        )
    else:
        cfg = transformers.Siglip2Config(text_config=text,
                                         vision_config={**vision, "num_patches": grid * grid})
        model_cls = transformers.Siglip2Model
        processor = transformers.Siglip2ImageProcessor(patch_size=patch_size,
                                                       max_num_patches=grid * grid)
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(logit_scale)
        model.logit_bias.fill_(logit_bias)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tok.save_pretrained(str(directory))
    processor.save_pretrained(str(directory))
    return directory


def random_image(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
