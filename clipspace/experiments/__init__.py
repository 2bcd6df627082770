"""The papers' experiments and the demo, each one function with a ``quick`` scale.

``common`` holds what they share: the ``Budget`` type, MAD on disk, the shared training
recipe and ``evaluate_run`` (one embedding pass per run: suites, analysis, figures).
``registry.EXPERIMENTS`` owns the names of ``clipspace reproduce``: importing an experiment
module registers it, so every experiment module is imported here.
"""

from clipspace.experiments.common import FULL, QUICK, Budget, evaluate_run
from clipspace.experiments.demo import run_demo
from clipspace.experiments.geometries import reproduce_geometries
from clipspace.experiments.imbalance import reproduce_imbalance
from clipspace.experiments.radial import reproduce_radial
from clipspace.experiments.registry import EXPERIMENTS, Experiment, Option, register

__all__ = ["EXPERIMENTS", "FULL", "QUICK", "Budget", "Experiment", "Option", "evaluate_run",
           "register", "reproduce_geometries", "reproduce_imbalance", "reproduce_radial",
           "run_demo"]
