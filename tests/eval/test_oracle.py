"""evaluate() wiring check with an oracle model: image and caption embeddings are sums of one
orthogonal vector per label, so a correct pipeline must score (near) perfectly."""

import numpy as np
import pytest
import torch

pytest.importorskip("clipspace.data.mad")
euclidean = pytest.importorskip("clipspace.geometry.euclidean")

from clipspace.data import mad_schema as S  # noqa: E402
from clipspace.data.captions import parse_caption  # noqa: E402
from clipspace.data.mad import MADDataset  # noqa: E402
from clipspace.data.tokenizer import get_tokenizer  # noqa: E402
from clipspace.eval import evaluate  # noqa: E402


class Oracle:
    geometry = euclidean
    context_length = 64  # the tiny test tokenizer needs more than 16 tokens for 6 words

    def __init__(self, root) -> None:
        self.tok = get_tokenizer(root, context_length=self.context_length)
        ds = MADDataset(root, split="all")
        self.by_image = {}
        for i in range(len(ds)):
            item = ds[i]
            key = item["image"].numpy().tobytes()
            self.by_image[key] = {k: item[k] for k in S.LABEL_KEYS}
        self.keys = [(k, v) for k in S.LABEL_KEYS
                     for v in range(10 if k == "digit" else len(S.VALUES[k]))]
        self.index = {kv: j for j, kv in enumerate(self.keys)}

    def _vec(self, labels: dict) -> torch.Tensor:
        v = torch.zeros(len(self.keys))
        for k, val in labels.items():
            v[self.index[(k, int(val))]] = 1.0
        return v

    def curv(self):
        return torch.tensor(1.0)

    def to_points(self, v):
        return v

    def encode_image(self, images, tangent=False):
        return torch.stack([self._vec(self.by_image[im.numpy().tobytes()]) for im in images])

    def encode_text(self, tokens, tangent=False):
        return torch.stack([self._vec(parse_caption(self.tok.decode(t))) for t in tokens])

    def similarity(self, img, txt):
        a = img / img.norm(dim=1, keepdim=True).clamp_min(1e-9)
        b = txt / txt.norm(dim=1, keepdim=True).clamp_min(1e-9)
        return a @ b.T


def unique_true_share(root) -> float:
    """Share of (test image, level) pairs whose chain caption is the only candidate caption of
    that level that is true of the image (candidates: every test chain caption), computed from
    the labels alone."""
    from clipspace.data.chains import mad_chains

    ds = MADDataset(root, split="test")
    chains = mad_chains(ds)
    by_level: dict[int, list[dict]] = {}
    for text in {c for ch in chains for c in ch.positive}:
        parsed = parse_caption(text)
        by_level.setdefault(len(parsed), []).append(parsed)
    unique, total = 0, 0
    for ch in chains:
        labels = {k: int(ds.labels[k][ch.index]) for k in S.LABEL_KEYS}
        for text in ch.positive:
            level = len(parse_caption(text))
            true = [c for c in by_level[level] if all(labels[k] == v for k, v in c.items())]
            unique += len(true) == 1
            total += 1
    return unique / total


def test_oracle_scores_perfectly(tiny_mad) -> None:
    model = Oracle(tiny_mad)
    res = evaluate(model, f"mad:{tiny_mad}", batch_size=7, progress=False,
                   probe_keys=("colour",))
    for task in ("digit", "colour", "stroke", "scale"):
        assert res["zeroshot"][task]["top1"] == 1.0, task
    r = res["retrieval"]
    assert r["i2t_r1"] == 1.0 and r["t2i_r1"] == 1.0
    h = res["hierarchy"]
    assert h["tau_d"] == 1.0 and h["spearman_text"] == pytest.approx(1.0, abs=1e-9)
    # below 1: another image's chain caption naming other true labels of this image ties with
    # the image's own chain caption (MAD has several valid chains per image; in the generated
    # tiny MAD the 24 variants of a digit share most labels, so ties are common). Where the
    # image's own chain caption is the only true caption of its level among the candidates, the
    # oracle must predict it: recall and precision are at least the share of such (image, level)
    # pairs (0.373 on the tiny MAD, where the oracle scores 0.576).
    floor = unique_true_share(tiny_mad)
    assert 0.3 < floor < 1.0, floor  # the bound is neither vacuous nor trivially 1
    assert h["recall"] >= floor and h["precision"] >= floor
    assert h["recall"] > 0.5 and h["precision"] > 0.5
    assert h["root_dist_by_level"] == pytest.approx(list(np.sqrt([1, 2, 3, 4])))
    assert res["linear_probe"]["colour"]["accuracy"] >= 0.5
