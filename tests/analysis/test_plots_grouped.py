"""``plots.plot_grouped_bars``: one panel per entry, series side by side per category."""

from clipspace.analysis import plots


def test_grouped_bars_write_png_with_missing_categories(tmp_path) -> None:
    panels = {"image": {"baseline": {"colour": 0.2, "scale": -0.1},
                        "named always": {"colour": -0.7}},  # scale missing: drawn as no bar
              "text": {"baseline": {"colour": 0.3, "scale": 0.1},
                       "named always": {"colour": -0.6, "scale": 0.0}}}
    p = plots.plot_grouped_bars(panels, tmp_path / "sub" / "bars.png", ylabel="MOAD")
    assert p == tmp_path / "sub" / "bars.png"
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
