"""Zero-shot scoring with a tiny fake model implementing the ARCHITECTURE model interface."""

import pytest
import torch

from clipspace.eval.zeroshot import accuracy, class_prototypes, render, zeroshot_classify

lorentz = pytest.importorskip("clipspace.geometry.lorentz")


class FakeTokenizer:
    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def __call__(self, texts):
        texts = [texts] if isinstance(texts, str) else texts
        return torch.tensor([[self.vocab.setdefault(t, len(self.vocab))] for t in texts])


class FakeModel:
    """Text tangent vector = a fixed random vector per string; Lorentz points; neg-dist or angle."""

    geometry = lorentz

    def __init__(self, tok: FakeTokenizer, table: dict[str, torch.Tensor], score: str) -> None:
        self.tok, self.table, self.score = tok, table, score
        self.c = torch.tensor(1.0)

    def curv(self):
        return self.c

    def to_points(self, v):
        return lorentz.exp_map0(v, self.c)

    def encode_text(self, tokens, tangent=False):
        inv = {i: t for t, i in self.tok.vocab.items()}
        v = torch.stack([self.table[inv[int(i)]] for i in tokens[:, 0]])
        return v if tangent else self.to_points(v)

    def encode_image(self, images, tangent=False):
        return images if tangent else self.to_points(images)

    def similarity(self, img, txt):
        if self.score == "angle":  # ATMG-style: exterior angle at the image (triangle O-img-txt)
            return lorentz.pairwise_ext_angle(img, txt, self.c)
        return -lorentz.pairwise_dist(img, txt, self.c)


def _setup(score: str):
    g = torch.Generator().manual_seed(0)
    classes = ["zero", "one", "two"]
    templates = ["{}", "a {}", "{} b"]
    table = {}
    centres = torch.randn(3, 4, generator=g) * 2
    for c, name in enumerate(classes):
        for t in templates:
            table[render(t, name)] = centres[c] + 0.3 * torch.randn(4, generator=g)
    tok = FakeTokenizer()
    return FakeModel(tok, table, score), tok, classes, templates, centres


def test_prototypes_average_before_the_map() -> None:
    model, tok, classes, templates, _ = _setup("dist")
    protos = class_prototypes(model, tok, classes, templates)
    for c, name in enumerate(classes):
        tangent = torch.stack([model.table[render(t, name)] for t in templates]).mean(0)
        assert torch.allclose(protos[c], lorentz.exp_map0(tangent[None], 1.0)[0], atol=1e-5)
        mean_of_points = model.to_points(torch.stack(
            [model.table[render(t, name)] for t in templates])).mean(0)
        assert not torch.allclose(protos[c], mean_of_points, atol=1e-3)


@pytest.mark.parametrize("score", ["dist", "angle"])
def test_zeroshot_lorentz_and_angle(score: str) -> None:
    model, tok, classes, templates, centres = _setup(score)
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(3).repeat_interleave(10)
    if score == "angle":  # images further from O along the prototype direction: angle ~ 0 is best
        img_tangent = centres[labels] * 2.0 + 0.05 * torch.randn(30, 4, generator=g)
    else:
        img_tangent = centres[labels] + 0.05 * torch.randn(30, 4, generator=g)
    images = model.to_points(img_tangent)
    protos = class_prototypes(model, tok, classes, templates)
    scores = model.similarity(images, protos)
    if score == "angle":
        scores = -scores  # the fake returns the raw angle; smaller angle = entailed
        model.similarity = lambda a, b: -lorentz.pairwise_ext_angle(a, b, model.c)
    acc = zeroshot_classify(model, images, labels, tok, classes, templates, chunk=7)
    assert acc["top1"] == pytest.approx(float((scores.argmax(1) == labels).float().mean()))
    assert acc["top1"] >= 0.9


def test_accuracy_top1_and_mean_per_class() -> None:
    scores = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = [0, 0, 0, 1, 1]
    acc = accuracy(scores, labels)
    assert acc["top1"] == pytest.approx(4 / 5)
    assert acc["mean_per_class_recall"] == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.parametrize("score", ["dist", "angle"])
def test_score_ensemble_is_the_mean_of_per_template_scores(score: str) -> None:
    """ensemble="score": brute force, one template at a time, then the mean over templates;
    ensemble="prototype": the prototypes' scores. The two differ."""
    from clipspace.eval.zeroshot import zeroshot_scores

    model, tok, classes, templates, centres = _setup(score)
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(3).repeat_interleave(8)
    images = model.to_points(centres[labels] * 1.5 + 0.8 * torch.randn(24, 4, generator=g))
    per_template = torch.stack([
        model.similarity(images, class_prototypes(model, tok, classes, [t])) for t in templates
    ], -1)  # (N, C, T)
    got = zeroshot_scores(model, images, tok, classes, templates, chunk=5, ensemble="score")
    torch.testing.assert_close(got, per_template.mean(-1), rtol=1e-5, atol=1e-6)
    proto = zeroshot_scores(model, images, tok, classes, templates, ensemble="prototype")
    protos = class_prototypes(model, tok, classes, templates)
    torch.testing.assert_close(proto, model.similarity(images, protos), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, proto, atol=1e-3)
    acc = zeroshot_classify(model, images, labels, tok, classes, templates, ensemble="score")
    assert acc == pytest.approx(accuracy(per_template.mean(-1), labels))
    with pytest.raises(ValueError, match="ensemble"):
        zeroshot_scores(model, images, tok, classes, templates, ensemble="max")


def test_accuracy_matches_sklearn_definitions() -> None:
    """top-5 and mean per-class recall as CLIP_benchmark computes them (sklearn's
    top_k_accuracy_score and balanced_accuracy_score)."""
    from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(200, 12, generator=g)
    labels = torch.randint(0, 12, (200,), generator=g).numpy()
    acc = accuracy(scores, labels)
    assert acc["top5"] == pytest.approx(top_k_accuracy_score(labels, scores.numpy(), k=5,
                                                             labels=list(range(12))))
    assert acc["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(labels, scores.argmax(1).numpy()))


def test_default_ensemble_follows_the_scoring_rule() -> None:
    from clipspace.eval.zeroshot import default_ensemble
    from clipspace.models import create_model

    assert default_ensemble(create_model("atmg")) == "score"
    assert {default_ensemble(create_model(p)) for p in ("clip", "euclip", "meru")} == {
        "prototype"}
