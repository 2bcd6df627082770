"""Training: one engine (``engine``: the step, logging, hooks, checkpoints) and its two jobs,
``train`` (contrastive training, ``loop``) and ``finetune`` (text-tower Radial Embedding /
entailment-cone fine-tuning). ``state`` (train state, RNG), ``rundir`` (run directory),
``optim`` (AdamW groups from the model's no-decay set, warmup-cosine, clipping),
``accumulation`` (gradient-cached micro-batches), ``distributed`` (torchrun, gradient
averaging), ``hooks`` (validation loss, ``--eval-every`` suites + gap), ``logger``.
"""

from clipspace.train.engine import Engine, Hook, Job
from clipspace.train.finetune import finetune
from clipspace.train.hooks import EvalHook, ValLossHook
from clipspace.train.loop import train
from clipspace.train.rundir import RunExistsError
from clipspace.train.state import TrainState

__all__ = ["Engine", "EvalHook", "Hook", "Job", "RunExistsError", "TrainState", "ValLossHook",
           "finetune", "train"]
