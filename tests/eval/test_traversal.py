"""MERU-style traversal toward [ROOT]."""

import pytest
import torch

from clipspace.eval.traversal import traversal_points, traverse

euclidean = pytest.importorskip("clipspace.geometry.euclidean")
sphere = pytest.importorskip("clipspace.geometry.sphere")


def test_traversal_euclidean_goes_from_image_to_root_with_cone_test() -> None:
    img = torch.tensor([4.0, 0.0])
    pts = traversal_points(img, euclidean, steps=5)
    assert torch.allclose(pts[0], img) and torch.allclose(pts[-1], torch.zeros(2))
    captions = ["specific", "generic", "off-axis"]
    cap = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 3.0]])

    def sim(a, b):
        return -torch.cdist(a, b)

    path = traverse(img, cap, captions, euclidean, sim, steps=9)
    assert path == ["specific", "generic"]
    # the cone test drops a caption whose cone does not contain the point
    cap2 = torch.tensor([[3.0, 0.5], [1.0, 0.0]])
    path2 = traverse(img, cap2, ["tilted", "generic"], euclidean, sim, steps=9)
    assert "generic" in path2
    no_test = traverse(img, cap2, ["tilted", "generic"], euclidean, sim, steps=9, cone_test=False)
    assert no_test[0] == "tilted"


def test_traversal_sphere_toward_root_direction() -> None:
    img = torch.tensor([1.0, 0.0, 0.0])
    root = torch.tensor([0.0, 1.0, 0.0])
    pts = traversal_points(img, sphere, steps=5, root=root)
    assert torch.allclose(pts.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(pts[-1], root, atol=1e-5)
    cap = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    path = traverse(img, cap, ["img-like", "root-like"], sphere, lambda a, b: a @ b.T,
                    steps=7, root=root)
    assert path == ["img-like", "root-like"]
