"""Analysis of image/text embeddings: modality gap, object bias, dimension ablation, neighbourhoods.

Functions take numpy (memory-mapped too) or torch arrays and return plain numbers / dicts.
"""

from clipspace.analysis.ablation import ablate_dims, dimension_order
from clipspace.analysis.gap import gap_stats, l2i, l2m, mean_difference, rmg, root_distances
from clipspace.analysis.moad import label_similarities, moad
from clipspace.analysis.neighbourhood import class_similarity, kendall_distance, neighbourhood_test
from clipspace.analysis.run import ANALYSES, run_analysis
from clipspace.data.embeddings_io import load_embeddings, load_labels, save_arrays

__all__ = [
    "ANALYSES",
    "ablate_dims",
    "class_similarity",
    "dimension_order",
    "gap_stats",
    "kendall_distance",
    "l2i",
    "l2m",
    "label_similarities",
    "load_embeddings",
    "load_labels",
    "mean_difference",
    "moad",
    "neighbourhood_test",
    "rmg",
    "root_distances",
    "run_analysis",
    "save_arrays",
]
