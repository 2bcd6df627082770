"""Reports of runs and experiments: one self-contained HTML page plus markdown.

``write_report(run_dirs, out_dir, title=, extra_figures=(), sections=())`` (``write``) puts
the headline numbers first, then each experiment's ``Section`` (``section``), the runs side by
side on shared axes (``figures``), MAD samples, 2-D views of the embeddings (``views``, from
each run's ``embeddings_sample.npz``: ``sample``), the config differences and every metric
(``tables``). ``runs.collect`` turns run and experiment directories into runs and sections.
"""

from clipspace.report.runs import RunSummary, collect
from clipspace.report.sample import SAMPLE_FILE, EmbeddingSample
from clipspace.report.section import VERDICTS, Section, Table
from clipspace.report.write import write_report

__all__ = ["SAMPLE_FILE", "VERDICTS", "EmbeddingSample", "RunSummary", "Section", "Table",
           "collect", "write_report"]
