"""Evaluation on embeddings computed once: ``embed`` -> ``Embeddings``; suites from the
``SUITES`` registry (zero-shot, retrieval, linear probe, hierarchy; docs/reference.md
section 4); ``evaluate`` runs both."""

from clipspace.eval.datasets import caption_num_attrs, load_eval_dataset
from clipspace.eval.embed import Embeddings, embed, encode_texts
from clipspace.eval.evaluate import (
    DEFAULT_SUITES,
    embedding_arrays,
    embedding_meta,
    evaluate,
    evaluate_embeddings,
    load_saved_embeddings,
    parse_suites,
    save_embeddings,
)
from clipspace.eval.hierarchy import hierarcaps_metrics, specificity_correlation
from clipspace.eval.linear_probe import linear_probe
from clipspace.eval.retrieval import caption_groups, recall_at_k
from clipspace.eval.suites import SUITES, SuiteContext, register_suite
from clipspace.eval.traversal import traverse
from clipspace.eval.zeroshot import accuracy, class_prototypes, zeroshot_classify

__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "Embeddings",
    "SuiteContext",
    "accuracy",
    "caption_groups",
    "caption_num_attrs",
    "class_prototypes",
    "embed",
    "embedding_arrays",
    "embedding_meta",
    "encode_texts",
    "evaluate",
    "evaluate_embeddings",
    "hierarcaps_metrics",
    "linear_probe",
    "load_eval_dataset",
    "load_saved_embeddings",
    "parse_suites",
    "recall_at_k",
    "register_suite",
    "save_embeddings",
    "specificity_correlation",
    "traverse",
    "zeroshot_classify",
]
