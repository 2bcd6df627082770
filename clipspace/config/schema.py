"""The typed config tree: one dataclass per section, every field with its default.

Values reach a ``Config`` only through ``clipspace.config.overrides`` (presets, TOML, ``--set``),
which type-checks each key; ``clipspace.config.validate`` checks names against the registries
that own them, every numeric key against its range (``validate.RANGES``, one entry per key) and
rejects impossible combinations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clipspace.errors import ClipspaceError


class ConfigError(ClipspaceError):
    """A bad key, value or combination in a config; the message names the key."""


@dataclass
class GeometryConfig:
    """Embedding space. ``curv`` is c in the Lorentz model of curvature -c (ignored elsewhere)."""

    name: str = "sphere"  # sphere | euclidean | lorentz
    curv: float = 1.0
    learn_curv: bool = True
    curv_min: float = 0.1
    curv_max: float = 10.0
    # How encoder features become points before the geometry's exp_map0:
    # none (sphere: exp_map0 = L2 normalise) | sqrt_dim (x / sqrt(D)) | alpha (learnable, <= 1)
    embed_scale: str = "none"
    learn_alpha: bool = True


@dataclass
class LossConfig:
    """Training objective: a contrastive term plus optional entailment / centroid terms."""

    contrastive: str = "infonce"  # infonce | siglip | angle | none
    logit: str = "cosine"  # cosine | dot | inner | neg_dist | neg_sqdist
    logit_scale: float = 1 / 0.07
    learn_logit_scale: bool = True
    max_logit_scale: float = 100.0
    siglip_bias: float = -10.0
    entail_weight: float = 0.0
    entail_min_radius: float = 0.1
    centroid_weight: float = 0.0
    centroid_p: float = 2.0
    centroid_q: float = 0.5
    local_loss: bool = False
    gather_with_grad: bool = True
    # contrastive term in row chunks of this many rows, never forming the B x N logits (same
    # value and gradients; memory O(chunk_size x N)); 0 = unchunked
    chunk_size: int = 0
    # SigLIP across ranks: gather every rank's texts, or pass them round the ring (no gather,
    # O(B x B) logits per rank; losses/ring.py)
    siglip_exchange: str = "gather"
    # batches with boxes (data.train = scenes:DIR): HyCoCLIP's compositional objective replaces
    # the contrastive and entailment terms (losses/compositional.py): the mean of the image-text,
    # box image -> texts and box text -> images cross-entropies, plus entail_weight x half the sum
    # of its four cone terms (apertures scaled by eta_inter / eta_intra)
    compositional: bool = False
    eta_inter: float = 0.7  # text -> image and box text -> box image cones
    eta_intra: float = 1.2  # box image -> image and box text -> text cones
    uncertainty: bool = False  # UNCHA: part rows weighted by exp(-u/2), u = softplus(-|x|)
    calibration_weight: float = 0.2  # UNCHA's calibration terms (with uncertainty)


@dataclass
class ImageTowerConfig:
    kind: str = "convnet"  # convnet | vit
    image_size: int = 28
    in_channels: int = 3
    width: int = 32
    depth: int = 3
    heads: int = 2
    patch_size: int = 4
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"  # sincos | learned
    pool: str = "cls"  # cls | mean
    final_ln: bool = True
    stem_stride: int = 2  # convnet: stride of the first conv (1 keeps full resolution)
    norm: str = "group"  # convnet: group | batch (batch: per-rank statistics under DDP)


@dataclass
class TextTowerConfig:
    vocab_size: int = 1000
    context_length: int = 16
    width: int = 128
    depth: int = 2
    heads: int = 2
    mlp_ratio: float = 4.0
    final_ln: bool = True


@dataclass
class ModelConfig:
    """Towers. Setting ``name`` applies a named shape (``presets.NAMED_MODELS``) to the fields
    below at that point; later keys override it. ``custom`` leaves the fields as they are. The
    defaults are the ``mad-tiny`` shape."""

    name: str = "mad-tiny"
    embed_dim: int = 128
    image: ImageTowerConfig = field(default_factory=ImageTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    pretrained: str = ""
    # norm of a fixed random offset added to every text feature at initialisation (a bias of the
    # text projection, trainable): starts training with a large modality gap (Two Effects Fig. 7b)
    init_text_shift: float = 0.0
    # recompute each transformer block in the backward pass instead of storing its activations
    # (open_clip's --grad-checkpointing; training mode only; convnet towers ignore it)
    grad_checkpointing: bool = False


@dataclass
class DataConfig:
    """Where samples come from: ``mad:DIR``, ``csv:FILE``, ``wds:PATTERN``, ``hierarcaps:FILE``."""

    train: str = "mad:data/mad"
    val: str = ""
    # MAD captions: digit plus ``num_attrs`` of the 5 attribute slots (the imbalance knob)
    num_attrs: int = 5
    main_object: str = ""  # "" | stroke | swelling | fracture | scale | colour
    objects_only: bool = False
    redraw_per_epoch: bool = False
    max_samples: int = 0  # 0 = all
    # caption data of any kind: keep a random fraction of each caption's words or sentences
    # (Two Effects Fig. 7c/15); 1.0 keeps the caption whole. On MAD, num_attrs plays that role.
    caption_fraction: float = 1.0
    caption_unit: str = "word"  # word | sentence
    caption_span: str = "scattered"  # scattered (any k units) | contiguous (one run, the authors')
    image_size: int = 0  # 0 = the tower's image size
    tokenizer: str = ""  # path to tokenizer.json; "" = the dataset's own
    csv_sep: str = "\t"
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    image_root: str = ""
    max_bad_fraction: float = 0.01
    workers: int = 0
    batch_size: int = 256
    epoch_samples: int = 0  # webdataset epoch length (0 = one pass)
    resampled: bool = False


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (docs/reference.md section 2)."""

    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    weight_decay: float = 0.2
    warmup_steps: int = 50
    steps: int = 1000
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    accum_steps: int = 1


@dataclass
class RunConfig:
    """Run bookkeeping: where outputs go, precision, logging, checkpoints."""

    output_dir: str = "runs"
    name: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    threads: int = 0
    log_every: int = 10
    eval_every: int = 0  # evaluate data.val every N steps (0 = never)
    eval_suites: str = "zeroshot,retrieval"  # comma-separated suites for eval_every
    eval_samples: int = 1000  # random validation subset evaluated every eval_every steps
    # log L2M/RMG, logit entropy and alignment/uniformity every N steps (0 = never) on a fixed
    # subset of analysis_samples pairs (the validation split, else the training data)
    analysis_every: int = 0
    analysis_samples: int = 512
    save_every: int = 0  # 0 = only at the end
    keep_last: int = 2
    tensorboard: bool = True
    progress: bool = True
    # seconds a collective (all-reduce, broadcast, barrier) waits for every rank before it fails
    # with an error naming the operation (torch's default is 30 minutes)
    dist_timeout: float = 300.0
    # several processes: ddp (DistributedDataParallel; the gradient-cached path reduces by hand)
    # | fsdp (FSDP2 fully_shard of every transformer block and the root; sharded checkpoints)
    parallel: str = "ddp"


@dataclass
class FinetuneConfig:
    """Text-tower fine-tuning of a pretrained CLIP (docs/reference.md section 3)."""

    method: str = "re"  # re (Radial Embedding) | ec (entailment-cone baseline)
    lambda_p: float = 10.0
    lambda_e: float = 1.0
    lambda_m: float = 1.0
    ec_min_radius: float = 0.1  # K of the EC baseline's aperture asin(K / |e - r|)
    ec_margin: float = 0.1  # negatives pushed out by this angle
    epochs: int = 1


@dataclass
class AdaptConfig:
    """A pretrained model moved into this config's geometry (``clipspace finetune geometry``;
    docs/adapt.md): its towers and projections, the geometry / loss sections of this config."""

    base: str = ""  # pretrained model: a clipspace run / checkpoint or a transformers directory
    lora_r: int = 0  # rank of the LoRA adapters (peft); 0 = none
    lora_alpha: float = 16.0  # adapter output scaled by lora_alpha / lora_r
    lora_dropout: float = 0.0
    # comma-separated module names or name suffixes; "" = every linear layer of the attention and
    # MLP of both towers' transformer blocks (every conv of a ConvNet tower)
    lora_targets: str = ""
    unlock: str = ""  # "" | image | text | both: these towers train in full
    lock_layers: int = 0  # with unlock: embeddings and the first N blocks of those towers frozen


@dataclass
class Config:
    preset: str = "clip"
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
