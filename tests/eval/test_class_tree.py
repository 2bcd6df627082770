"""Hierarchical classification metrics over a class tree file (``eval.class_tree``)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clipspace.errors import DataError
from clipspace.eval.class_tree import (
    VIRTUAL_ROOT,
    ClassTree,
    hierarchical_metrics,
    load_class_tree,
    match_class_names,
    pair_tables,
)

# two roots (animal, vehicle) -> joined under the virtual root "<root>":
#   <root> (0) -> animal (1) -> dog (2) -> poodle (3), beagle (3)
#                            -> cat (2)
#              -> vehicle (1) -> car (2)
PARENTS = {"animal": None, "vehicle": "", "dog": "animal", "cat": "animal", "poodle": "dog",
           "beagle": "dog", "car": "vehicle"}
CLASSES = ["poodle", "beagle", "cat", "car"]


@pytest.fixture()
def tree() -> ClassTree:
    return ClassTree.from_parents(PARENTS, "animals.json")


def test_structure(tree) -> None:
    assert tree.virtual_root and tree.names[tree.root] == VIRTUAL_ROOT
    assert [tree.depth_of(n) for n in (VIRTUAL_ROOT, "animal", "dog", "poodle", "car")] == [
        0, 1, 2, 3, 2]
    assert tree.path("poodle") == ["poodle", "dog", "animal", VIRTUAL_ROOT]
    assert tree.ancestors("poodle") == {"dog", "animal", VIRTUAL_ROOT}
    assert tree.lca("poodle", "beagle") == "dog"
    assert tree.lca("poodle", "cat") == "animal"
    assert tree.lca("poodle", "car") == VIRTUAL_ROOT
    assert tree.lca("dog", "poodle") == tree.lca("poodle", "dog") == "dog"
    # one real root: no virtual root
    one = ClassTree.from_parents({"poodle": "dog", "dog": "animal"})
    assert not one.virtual_root and one.names[one.root] == "animal"
    assert one.depth_of("poodle") == 2 and len(one) == 3


def test_pair_functions_by_hand(tree) -> None:
    assert tree.distance("beagle", "poodle") == 2
    assert tree.distance("cat", "poodle") == 3
    assert tree.distance("car", "cat") == 4
    assert tree.distance("poodle", "car") == 5
    assert tree.distance("dog", "poodle") == 1
    assert tree.lca_hops("cat", "poodle") == 1      # cat -> animal
    assert tree.lca_hops("poodle", "cat") == 2      # poodle -> dog -> animal
    assert tree.lca_hops("dog", "poodle") == 0 and tree.lca_hops("poodle", "dog") == 1
    assert tree.hycoclip_lca("poodle", "poodle") == 1  # HyCoCLIP's "+1" for a correct label
    assert tree.hycoclip_lca("poodle", "car") == 3
    assert tree.precision("cat", "poodle") == 1.0
    assert tree.recall("cat", "poodle") == pytest.approx(2 / 3)
    assert tree.jaccard("cat", "poodle") == pytest.approx(2 / 3)
    assert tree.precision("poodle", "car") == pytest.approx(1 / 3)
    assert tree.recall("poodle", "car") == pytest.approx(1 / 2)
    assert tree.jaccard("poodle", "car") == pytest.approx(1 / 4)
    # the root itself: empty ancestor set counts 1 against itself
    assert tree.precision(VIRTUAL_ROOT, VIRTUAL_ROOT) == tree.jaccard(VIRTUAL_ROOT,
                                                                      VIRTUAL_ROOT) == 1.0


def test_hierarchical_metrics_by_hand(tree) -> None:
    # (pred, target): (poodle, poodle) (beagle, poodle) (cat, poodle) (car, cat) (poodle, car)
    pred = np.array([0, 1, 2, 3, 0])
    target = np.array([0, 0, 0, 2, 3])
    # per image:      d     lca depth  hops  hyco  P     R     J     F
    # poodle/poodle   0     3          0     1     1     1     1     1
    # beagle/poodle   2     2          1     1     1     1     1     1
    # cat/poodle      3     1          1     1     1     2/3   2/3   0.8
    # car/cat         4     0          2     2     1/2   1/2   1/3   0.5
    # poodle/car      5     0          3     3     1/3   1/2   1/4   0.4
    m = hierarchical_metrics(pred, target, CLASSES, tree)
    assert m["n"] == 5 and m["mistakes"] == 4
    assert m["top1"] == pytest.approx(0.2)
    assert m["tree_induced_error"] == pytest.approx(14 / 5)
    assert m["lca_depth"] == pytest.approx(6 / 5)
    assert m["lca_hops"] == pytest.approx(7 / 5)
    assert m["hycoclip_lca"] == pytest.approx(8 / 5)
    assert m["hierarchical_precision"] == pytest.approx((3 + 1 / 2 + 1 / 3) / 5)
    assert m["hierarchical_recall"] == pytest.approx((2 + 2 / 3 + 1 / 2 + 1 / 2) / 5)
    assert m["jaccard"] == pytest.approx((2 + 2 / 3 + 1 / 3 + 1 / 4) / 5)
    assert m["hierarchical_f1"] == pytest.approx((2 + 0.8 + 0.5 + 0.4) / 5)
    assert m["mistake_severity"] == pytest.approx(7 / 4)
    assert m["mistake_tree_distance"] == pytest.approx(14 / 4)
    assert m["mistake_lca_depth"] == pytest.approx(3 / 4)
    json.dumps(m, allow_nan=False)


def test_perfect_predictions(tree) -> None:
    y = np.array([0, 1, 2, 3, 3, 2])
    m = hierarchical_metrics(y, y.copy(), CLASSES, tree)
    assert m["top1"] == 1.0 and m["mistakes"] == 0
    assert m["tree_induced_error"] == 0.0 and m["lca_hops"] == 0.0
    assert m["hycoclip_lca"] == 1.0
    assert m["hierarchical_precision"] == m["hierarchical_recall"] == m["jaccard"] == 1.0
    assert m["mistake_severity"] is None and m["mistake_tree_distance"] is None
    json.dumps(m, allow_nan=False)


def test_metrics_reject_bad_predictions(tree) -> None:
    with pytest.raises(DataError, match="class index"):
        hierarchical_metrics(np.array([4]), np.array([0]), CLASSES, tree)
    with pytest.raises(DataError, match="as many"):
        hierarchical_metrics(np.array([0, 1]), np.array([0]), CLASSES, tree)
    with pytest.raises(DataError, match="integer"):
        hierarchical_metrics(np.array([0.0]), np.array([0]), CLASSES, tree)


def test_tables_agree_with_pair_functions() -> None:
    """The vectorised C x C tables equal the per-pair functions on a random tree with internal
    nodes as classes too."""
    rng = np.random.default_rng(1)
    parents: dict[str, str | None] = {"r0": None, "r1": None}
    names = ["r0", "r1"]
    for i in range(60):
        parents[f"n{i}"] = names[rng.integers(len(names))]
        names.append(f"n{i}")
    tree = ClassTree.from_parents(parents)
    classes = list(rng.choice(names, 25, replace=False))
    pred, target = rng.integers(0, 25, 400), rng.integers(0, 25, 400)
    m = hierarchical_metrics(pred, target, classes, tree, pair_tables(tree, classes))
    pairs = [(classes[p], classes[t]) for p, t in zip(pred, target, strict=True)]
    assert m["tree_induced_error"] == pytest.approx(np.mean([tree.distance(*q) for q in pairs]))
    assert m["lca_depth"] == pytest.approx(np.mean([tree.lca_depth(*q) for q in pairs]))
    assert m["lca_hops"] == pytest.approx(np.mean([tree.lca_hops(*q) for q in pairs]))
    assert m["hycoclip_lca"] == pytest.approx(np.mean([tree.hycoclip_lca(*q) for q in pairs]))
    for key, fn in (("hierarchical_precision", tree.precision),
                    ("hierarchical_recall", tree.recall), ("jaccard", tree.jaccard)):
        assert m[key] == pytest.approx(np.mean([fn(*q) for q in pairs]))
    wrong = [q for q in pairs if q[0] != q[1]]
    assert m["mistake_severity"] == pytest.approx(np.mean([tree.lca_hops(*q) for q in wrong]))


@st.composite
def random_trees(draw):
    n = draw(st.integers(1, 25))
    # node i > 0 hangs under an earlier node or is another root (-1)
    parents = [draw(st.integers(-1, i - 1)) for i in range(n)]
    return ClassTree.from_parents({f"k{i}": (f"k{p}" if p >= 0 else None)
                                   for i, p in enumerate(parents)})


@given(random_trees(), st.data())
def test_tree_distance_is_a_metric(tree, data) -> None:
    names = list(tree.names)
    a, b, c = (data.draw(st.sampled_from(names)) for _ in range(3))
    assert tree.distance(a, a) == 0
    assert tree.distance(a, b) == tree.distance(b, a)
    assert (tree.distance(a, b) == 0) == (a == b)
    assert tree.distance(a, c) <= tree.distance(a, b) + tree.distance(b, c)
    assert tree.lca_depth(a, b) <= min(tree.depth_of(a), tree.depth_of(b))
    assert tree.lca(a, b) == tree.lca(b, a)
    assert tree.distance(a, b) == tree.lca_hops(a, b) + tree.lca_hops(b, a)
    tab = pair_tables(tree, names)
    i, j = names.index(a), names.index(b)
    assert tab.lca_depth[i, j] == tree.lca_depth(a, b)
    assert tab.common[i, j] == len(tree.ancestors(a) & tree.ancestors(b))


def test_load_json_and_wrapped_and_isa(tmp_path) -> None:
    f = tmp_path / "tree.json"
    f.write_text(json.dumps(PARENTS))
    t = load_class_tree(f)
    assert t.source == str(f) and t.distance("poodle", "car") == 5
    g = tmp_path / "wrapped.json"
    g.write_text(json.dumps({"parents": PARENTS}))
    assert load_class_tree(g).names == t.names
    isa = tmp_path / "isa.txt"
    isa.write_text("# parent child\nn1 n2\nn1 n3\n\nn2 n4\nn2 n4\n")
    t2 = load_class_tree(isa)
    assert t2.names[t2.root] == "n1" and t2.depth_of("n4") == 2


@pytest.mark.parametrize(("name", "text", "match"), [
    ("bad.json", '{\n  "dog": "animal",\n  oops\n}', r"bad\.json, line 3: not valid JSON"),
    ("list.json", '["dog", "animal"]', r"list\.json: expected a JSON object"),
    ("cycle.json", '{"a": "b", "b": "c", "c": "a", "d": null}',
     r"cycle\.json: .*cycle: a -> b -> c -> a"),
    ("self.json", '{"a": "a"}', r"self\.json: .*cycle: a -> a"),
    ("num.json", '{"dog": 3}', r"num\.json: the parent of 'dog' must be a string"),
    ("dup.json", '{"dog": "animal", "dog": "plant"}', r"dup\.json: key 'dog' appears twice"),
    ("empty.json", "{}", r"empty\.json: the class tree is empty"),
    ("taken.json", '{"a": null, "b": null, "<root>": "a"}', r"taken\.json: .*'<root>'"),
    ("isa.txt", "n1 n2\nn1 n2 n3\n", r"isa\.txt, line 2: expected 'parent child'"),
    ("two.txt", "n1 n2\nn3 n2\n", r"two\.txt, line 2: 'n2' already has the parent 'n1'"),
])
def test_bad_files_name_file_and_fault(tmp_path, name, text, match) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        load_class_tree(f)


def test_missing_file_and_non_utf8(tmp_path) -> None:
    with pytest.raises(DataError, match="nope.json"):
        load_class_tree(tmp_path / "nope.json")
    f = tmp_path / "latin.json"
    f.write_bytes(b'{"caf\xe9": null}')
    with pytest.raises(DataError, match=r"latin\.json, line 1: not UTF-8"):
        load_class_tree(f)


def test_missing_and_repeated_classes_named(tree) -> None:
    with pytest.raises(DataError, match=r"animals\.json: 2 of 3 class names .*'tiger', 'bus'"):
        hierarchical_metrics(np.array([0]), np.array([0]), ["poodle", "tiger", "bus"], tree)
    with pytest.raises(DataError, match=r"repeat \('cat'\)"):
        tree.class_ids(["cat", "dog", "cat"])
    # the first candidate naming list that the tree covers wins (prompt names, then folders)
    assert match_class_names(tree, [["toy poodle"], ["poodle"]]) == ["poodle"]
    with pytest.raises(DataError, match="'toy poodle'"):
        match_class_names(tree, [["toy poodle"], ["toy_poodle"]])


def test_many_classes_fast() -> None:
    """1,000 leaf classes, 50,000 predictions: tables + metrics in well under a second."""
    import time

    rng = np.random.default_rng(0)
    parents: dict[str, str | None] = {"n0": None}
    internal = ["n0"]
    for i in range(1, 372):
        parents[f"n{i}"] = internal[rng.integers(len(internal))]
        internal.append(f"n{i}")
    leaves = [f"c{i}" for i in range(1000)]
    parents.update({c: internal[rng.integers(len(internal))] for c in leaves})
    tree = ClassTree.from_parents(parents)
    y = rng.integers(0, 1000, 50_000)
    start = time.perf_counter()
    m = hierarchical_metrics(rng.integers(0, 1000, 50_000), y, leaves, tree)
    assert time.perf_counter() - start < 5.0  # about 0.07 s on one core
    assert 0 < m["tree_induced_error"] and m["mistakes"] > 0


# --- the class_tree suite and `clipspace eval --class-tree` ------------------------------------

DIGIT_TREE = {"even": "digit", "odd": "digit", **{str(d): ("even" if d % 2 == 0 else "odd")
                                                  for d in range(10)}}


def test_suite_reuses_zeroshot_predictions(tiny_mad, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("clipspace.models")
    from clipspace.data.tokenizer import get_tokenizer
    from clipspace.eval import SuiteContext, embed, evaluate_embeddings, load_eval_dataset
    from clipspace.eval import suites as S

    torch.manual_seed(0)
    model = models.create_model("euclip").eval()
    tok = get_tokenizer(tiny_mad)
    emb = embed(model, load_eval_dataset(f"mad:{tiny_mad}", model), tok, batch_size=16,
                progress=False)
    calls = []
    real = S.prompt_scores

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(S, "prompt_scores", counting)
    tree = ClassTree.from_parents(DIGIT_TREE, "digits.json")
    ctx = SuiteContext(model=model, emb=emb, tokenizer=tok, class_tree=tree)
    res = evaluate_embeddings(ctx, ["zeroshot", "class_tree"])
    n_tasks = len([k for k in res["zeroshot"] if k not in ("mean_top1", "ensemble")])
    assert len(calls) == n_tasks  # class_tree computed no scores of its own
    ct = res["class_tree"]
    assert ct["digit"]["top1"] == pytest.approx(res["zeroshot"]["digit"]["top1"])
    assert 0 <= ct["digit"]["tree_induced_error"] <= 4
    assert "skipped" in ct["colour"] and ct["tree"] == "digits.json"
    # alone it computes the digit scores itself; no tree -> skipped
    alone = evaluate_embeddings(SuiteContext(model=model, emb=emb, tokenizer=tok,
                                             class_tree=tree), ["class_tree"])
    assert alone["class_tree"]["digit"] == ct["digit"]
    none = evaluate_embeddings(SuiteContext(model=model, emb=emb, tokenizer=tok), ["class_tree"])
    assert "skipped" in none["class_tree"]
    # a tree that covers no task: DataError naming the missing classes
    with pytest.raises(DataError, match=r"other\.json: .*not in the class tree"):
        evaluate_embeddings(SuiteContext(model=model, emb=emb, tokenizer=tok,
                                         class_tree=ClassTree.from_parents(
                                             {"x": None}, "other.json")), ["class_tree"])


def test_cli_class_tree(tiny_mad, tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("clipspace.models")
    from clipspace.cli import main
    from clipspace.models.factory import save_pretrained

    torch.manual_seed(0)
    run = save_pretrained(models.create_model("euclip"), tmp_path / "run")
    good = tmp_path / "digits.json"
    good.write_text(json.dumps(DIGIT_TREE))
    code = main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--suite", "zeroshot",
                 "--batch-size", "16", "--no-progress", "--class-tree", str(good)])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["class_tree"]["digit"]["top1"] == pytest.approx(res["zeroshot"]["digit"]["top1"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"0": "even",\n "even": "0"}')
    code = main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--class-tree", str(bad)])
    assert code == 2
    assert "bad.json" in capsys.readouterr().err


def test_pairs_cover_every_class(tree) -> None:
    tab = pair_tables(tree, CLASSES)
    for i, j in itertools.product(range(4), repeat=2):
        assert tab.lca_depth[i, j] == tree.lca_depth(CLASSES[i], CLASSES[j])


def test_imagefolder_tree_keyed_by_folder_ids(tmp_path, tiny_mad) -> None:
    """ImageNet layout: folders are WordNet ids, prompts use human names from --classnames; the
    tree (keyed by the ids) matches the folder names. ``evaluate(class_tree=FILE)`` adds the
    suite."""
    pytest.importorskip("clipspace.models")
    from clipspace.eval import evaluate, load_eval_dataset
    from clipspace.models import load_model_and_tokenizer
    from tests.data.test_imagefolder import make_folder
    from tests.helpers.runs import tiny_run

    root = make_folder(tmp_path / "f", {"n02113624": 3, "n02088364": 3, "n02123045": 3})
    names = tmp_path / "classnames.txt"
    names.write_text("toy poodle\nbeagle\ntabby cat\n")
    tree_file = tmp_path / "isa.txt"
    tree_file.write_text("n00 n_dog\nn00 n_cat\nn_dog n02113624\nn_dog n02088364\n"
                         "n_cat n02123045\n")
    model, tok = load_model_and_tokenizer(tiny_run(tmp_path / "run", tiny_mad))
    data = load_eval_dataset(f"imagefolder:{root}", model, classnames=str(names))
    res = evaluate(model, data, suites=["zeroshot"], tokenizer=tok, progress=False,
                   class_tree=tree_file)
    ct = res["class_tree"]["class"]
    assert ct["n"] == 9 and ct["top1"] == pytest.approx(res["zeroshot"]["class"]["top1"])
    assert 0 <= ct["tree_induced_error"] <= 4 and not res["class_tree"]["virtual_root"]
