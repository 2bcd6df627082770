"""Evaluation: zero-shot, retrieval, linear probe, hierarchy (REFERENCE.md section 4)."""

from clipspace.eval.evaluate import SUITES, embed_dataset, evaluate, save_embeddings
from clipspace.eval.hierarchy import hierarcaps_metrics, specificity_correlation
from clipspace.eval.linear_probe import linear_probe
from clipspace.eval.retrieval import caption_groups, recall_at_k
from clipspace.eval.traversal import traverse
from clipspace.eval.zeroshot import accuracy, class_prototypes, zeroshot_classify

__all__ = [
    "SUITES",
    "accuracy",
    "caption_groups",
    "class_prototypes",
    "embed_dataset",
    "evaluate",
    "hierarcaps_metrics",
    "linear_probe",
    "recall_at_k",
    "save_embeddings",
    "specificity_correlation",
    "traverse",
    "zeroshot_classify",
]
