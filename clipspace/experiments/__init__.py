"""The papers' experiments and the demo, each one function with a ``quick`` scale.

``common`` holds what they share: the ``Budget`` type, MAD on disk, the shared training
recipe and ``evaluate_run`` (one embedding pass per run: suites, analysis, figures).
``registry.EXPERIMENTS`` owns the names of ``clipspace reproduce``: importing an experiment
module registers it, so every experiment module is imported here.
"""

from clipspace.experiments.adapt import reproduce_adapt  # noqa: F401
from clipspace.experiments.close_gap import reproduce_close_gap  # noqa: F401
from clipspace.experiments.common import FULL, QUICK, Budget, evaluate_run
from clipspace.experiments.compositional import reproduce_compositional  # noqa: F401
from clipspace.experiments.curvature import reproduce_curvature  # noqa: F401
from clipspace.experiments.demo import run_demo
from clipspace.experiments.entailment import reproduce_entailment  # noqa: F401
from clipspace.experiments.entropy import reproduce_entropy  # noqa: F401
from clipspace.experiments.gap_dynamics import reproduce_gap_dynamics  # noqa: F401
from clipspace.experiments.geometries import reproduce_geometries
from clipspace.experiments.imbalance import reproduce_imbalance
from clipspace.experiments.logits import reproduce_logits  # noqa: F401
from clipspace.experiments.prevalence import reproduce_prevalence  # noqa: F401
from clipspace.experiments.propositions import reproduce_propositions  # noqa: F401
from clipspace.experiments.radial import reproduce_radial
from clipspace.experiments.registry import EXPERIMENTS, Experiment, Option, register
from clipspace.experiments.traversal import reproduce_traversal  # noqa: F401

__all__ = ["EXPERIMENTS", "FULL", "QUICK", "Budget", "Experiment", "Option", "evaluate_run",
           "register", "reproduce_geometries", "reproduce_imbalance", "reproduce_radial",
           "run_demo"]
