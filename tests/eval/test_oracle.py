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
    # the image's own chain caption (MAD has several valid chains per image)
    assert h["recall"] > 0.6 and h["precision"] > 0.6
    assert h["root_dist_by_level"] == pytest.approx(list(np.sqrt([1, 2, 3, 4])))
    assert res["linear_probe"]["colour"]["accuracy"] >= 0.5
