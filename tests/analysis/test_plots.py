"""Every figure is written as a PNG."""

import numpy as np

from clipspace.analysis import plots


def _is_png(p) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    outs = [
        plots.plot_root_distance({"image": rng.random(50), "text": rng.random(50)},
                                 tmp_path / "a.png"),
        plots.plot_mean_difference(rng.normal(size=32), tmp_path / "b.png"),
        plots.plot_ablation({"k": [0, 1, 2], "dims": [3, 1], "rmg": [0.5, 0.3, 0.2],
                             "i2t_r1": [0.1, 0.2, 0.2]}, tmp_path / "c.png"),
        plots.plot_by_caption_length([1, 2, 3], {"rmg": [0.5, 0.4, 0.3]}, tmp_path / "sub/d.png"),
    ]
    for p in outs:
        assert p.is_file() and _is_png(p) and p.stat().st_size > 1000
