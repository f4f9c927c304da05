"""Details of the five data loaders that the per-experiment tests leave open: the paper's seeds (the
psMNIST permutation, the CIFAR noise, both default valid splits) as their recipes, the boundaries of
the input checks (MNIST label 10, EigenWorms label 5, infinite targets), cached labels' dtypes, image
orientation in the training split, and IMDB's label polarity, split seed and batch sizes."""
import gzip
import re

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import random_split
from torchvision.transforms.functional import pil_to_tensor

from eigenworms import data as worms_data
from healthcare import data as health_data
from imdb import data as imdb_data
from noisy_cifar import data as cifar_data
from psMNIST import data as mnist_data
from repro.timeseries_archive import save_splits
from test_noisy_cifar import tiny_cifar  # noqa: F401 (a fixture)
from tiny_data import NEG, POS, write_idx, write_imdb, write_mnist

# psMNIST ----------------------------------------------------------------------------------------


def test_permutation_is_the_2021_recipe():
    # torch.manual_seed(5544); torch.randperm(784), drawn from a generator in that state
    assert torch.equal(mnist_data.paper_permutation(),
                       torch.randperm(784, generator=torch.Generator().manual_seed(5544)))


def test_default_valid_split_is_random_split_seeded_5544(tmp_path):
    source = write_mnist(tmp_path / "idx")
    images = np.frombuffer(gzip.decompress((source / "train-images-idx3-ubyte.gz").read_bytes())[16:],
                           np.uint8).reshape(120, 784)
    splits = mnist_data.load_splits(source, False, tmp_path / "cache", valid_size=20)
    train_idx, valid_idx = random_split(range(120), [100, 20], generator=torch.Generator().manual_seed(5544))
    assert np.array_equal(splits["valid"][0].numpy(), images[list(valid_idx)])
    assert np.array_equal(splits["train"][0].numpy(), images[list(train_idx)])


def idx_bytes(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


@pytest.mark.parametrize("data,kind,problem", [
    (idx_bytes(0x08, [3], bytes([0, 9, 10])), "labels", "holds label 10; MNIST labels are 0..9"),
    (idx_bytes(0x08, [3], bytes([0, 9, 9])), "labels", None),
    (idx_bytes(0x0D, [3], bytes(12)), "labels", "not an idx file of unsigned bytes"),
    (idx_bytes(0x08, [2, 28, 27], bytes(2 * 28 * 27)), "images", "holds images of 28x27 pixels"),
    (idx_bytes(0x08, [2, 28, 28], bytes(2 * 28 * 28)), "images", None),
    (idx_bytes(0x08, [2, 28, 28], bytes(2 * 28 * 28 + 1)), "images", "truncated or padded"),
    (idx_bytes(0x08, [3], bytes(3)), "images", "holds labels .*expected images"),
])
def test_idx_checks_at_their_boundaries(data, kind, problem):
    found = mnist_data.idx_problem(data, kind)
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found)


def test_a_bad_label_anywhere_in_a_torchvision_root_is_found(tmp_path):
    raw = write_mnist(tmp_path / "root" / "MNIST" / "raw", gz=False)
    labels = np.arange(30) % 10
    labels[-1] = 12  # the last label, far past the header
    write_idx(raw / "t10k-labels-idx1-ubyte", labels, gz=False)
    with pytest.raises(SystemExit, match="t10k-labels-idx1-ubyte: holds label 12"):
        mnist_data.load_splits(tmp_path / "root", False, tmp_path / "cache")

# noisy CIFAR ------------------------------------------------------------------------------------


def test_noise_is_the_recipe_seeded_12345():
    assert torch.equal(cifar_data.paper_noise(), torch.randn(968, 96, generator=torch.Generator().manual_seed(12345)))


def test_training_images_keep_their_orientation_and_the_default_split_is_seeded_12345(tiny_cifar):  # noqa: F811
    train = torchvision.datasets.CIFAR10(str(tiny_cifar), train=True)
    images = torch.stack([pil_to_tensor(train[i][0]) for i in range(len(train))])  # (n, 3, 32, 32) uint8
    splits = cifar_data.load_splits(tiny_cifar, download=False, valid_size=10)
    train_idx, valid_idx = random_split(range(100), [90, 10], generator=torch.Generator().manual_seed(12345))
    assert torch.equal(splits["valid"][0], images[list(valid_idx)])
    assert torch.equal(splits["train"][0], images[list(train_idx)])
    assert splits["train"][1].tolist() == [train.targets[i] for i in train_idx]

# EigenWorms and healthcare ----------------------------------------------------------------------


@pytest.mark.parametrize("labels,ok", [([0, 4, 2], True), ([0.0, 4.0], True), ([0, 5], False), ([-1, 3], False)])
def test_eigenworms_labels_must_be_0_to_4(labels, ok):
    problem = worms_data.label_problem(np.array(labels))
    assert problem is None if ok else "expected class labels 0..4" in problem


def test_hand_made_float_labels_load_as_integers(tmp_path):
    rng = np.random.default_rng(0)
    save_splits(tmp_path, {name: (rng.normal(size=(n, 9, 6)).astype(np.float32), np.arange(n) % 5 * 1.0)
                           for name, n in (("train", 7), ("valid", 3), ("test", 3))})
    splits = worms_data.load_splits(tmp_path, download=False)
    assert splits["train"][1].dtype == np.int64 and splits["train"][1].tolist() == [0, 1, 2, 3, 4, 0, 1]


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_healthcare_targets_must_be_finite(bad):
    assert "expected finite real targets" in health_data.target_problem(np.array([60.0, bad]))
    assert health_data.target_problem(np.array([60.0, 12.5])) is None


def test_healthcare_cached_targets_load_as_float32(tmp_path):
    rng = np.random.default_rng(0)
    save_splits(tmp_path / "HR", {name: (rng.normal(size=(n, 9, 2)).astype(np.float32), rng.normal(80, 9, n))
                                  for name, n in (("train", 7), ("valid", 3), ("test", 3))})
    splits = health_data.load_splits(tmp_path, "HR", download=False)
    assert all(y.dtype == np.float32 for _, y in splits.values())


def test_healthcare_name_is_checked(tmp_path):
    with pytest.raises(SystemExit, match=r"--name must be one of \['HR', 'RR'\], got 'BR'"):
        health_data.load_splits(tmp_path, "BR", download=False)


@pytest.mark.parametrize("n,sizes", [(7949, [5565, 1192, 1192]), (37, [25, 6, 6]), (40, [28, 6, 6])])
def test_healthcare_split_rounds_15_percent(n, sizes):
    splits = health_data.split_like_lem(np.zeros((n, 1, 1)), np.arange(n))
    assert [len(splits[k][1]) for k in ("train", "valid", "test")] == sizes

# IMDB -------------------------------------------------------------------------------------------


def test_positive_reviews_are_labelled_1_and_an_unusual_tree_is_noted(tmp_path, capsys):
    files = imdb_data.review_files(write_imdb(tmp_path), download=False)
    assert "note: aclImdb v1 has 12500 reviews in each folder" in capsys.readouterr().out
    for split, (texts, labels) in imdb_data.read_reviews(files).items():
        assert sorted(zip(texts, labels)) == sorted([(t, 1) for t in POS] + [(t, 0) for t in NEG])


def test_valid_reviews_are_the_seeded_permutation_of_the_training_reviews(tmp_path):
    root = write_imdb(tmp_path)
    reviews = imdb_data.read_reviews(imdb_data.review_files(root, download=False))
    tokens = imdb_data.tokenize(reviews["train"][0], "t", progress=False)
    valid = {}
    for seed in (7, 8):
        corpus = imdb_data.load_corpus(root, download=False, split_seed=seed, valid_size=4, progress=False)
        order = torch.randperm(12, generator=torch.Generator().manual_seed(seed))[:4].tolist()
        vocab = corpus["vocab"]
        expected = [[t if t in vocab else "<unk>" for t in tokens[i]] for i in order]
        valid[seed] = [[vocab[i] for i in ids.tolist()] for ids in corpus["valid"][0]]
        assert valid[seed] == expected
        assert corpus["valid"][1].tolist() == [float(reviews["train"][1][i]) for i in order]
    assert valid[7] != valid[8]


def test_an_empty_review_becomes_one_pad_token(tmp_path):
    root = write_imdb(tmp_path)
    (root / "aclImdb" / "test" / "neg" / "9_1.txt").write_text("")
    corpus = imdb_data.load_corpus(root, download=False, split_seed=7, valid_size=4, progress=False)
    empty = [ids for ids in corpus["test"][0] if len(ids) == 1]
    assert len(empty) == 1 and empty[0].tolist() == [imdb_data.PAD] and empty[0].dtype == torch.int64


def test_batches_shuffle_train_and_cut_valid_and_test_by_test_batch(tmp_path):
    corpus = imdb_data.load_corpus(write_imdb(tmp_path), download=False, split_seed=7, valid_size=4,
                                   progress=False)
    batches = imdb_data.make_batches(corpus, "cpu", batch=5, test_batch=3, seed=0)
    assert [labels.tolist() for _, labels in batches["valid"]] == [corpus["valid"][1][:3].tolist(),
                                                                   corpus["valid"][1][3:].tolist()]
    assert [len(labels) for _, labels in batches["test"]] == [3, 3, 3, 3]
    train = [tuple(ids.tolist()) for ids in corpus["train"][0]]
    seen = []
    for tokens, labels in batches["train"]:
        assert tokens.shape[1] == len(labels) <= 5
        for column, label in zip(tokens.t(), labels):
            i = train.index(tuple(column[column != imdb_data.PAD].tolist()))  # reviews hold no <pad>
            assert corpus["train"][1][i] == label
            seen.append(i)
    assert sorted(seen) == list(range(8)) and seen != list(range(8))


def test_glove_dimension_and_malformed_lines(tmp_path):
    root = write_imdb(tmp_path)
    with pytest.raises(SystemExit, match="--emb-dim must be 50, 100, 200 or 300"):
        imdb_data.load_glove(root, 64, download=False)
    glove = root / "glove" / "glove.6B.50d.txt"
    glove.write_text("400000 50\n" + glove.read_text() + "broken 0.1 0.2\n")
    itos, vectors = imdb_data.load_glove(root, 50, download=False, progress=False)
    assert itos == ["great", "bad", "film", ".", "the"] and vectors.shape == (5, 50)
