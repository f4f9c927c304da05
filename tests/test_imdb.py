"""IMDB: the whole pipeline on a tiny aclImdb-shaped tree and a tiny GloVe text file."""
import json

import pytest
import torch

from imdb import data, train
from imdb.model import embedding_dropout
from tiny_data import write_imdb

@pytest.fixture
def imdb_dir(tmp_path):
    return write_imdb(tmp_path)


def test_tokenisation_keeps_case_and_markup():
    assert data.tokenize(["A great film.<br />Loved it!"], "t")[0] == \
        ["A", "great", "film.<br", "/>Loved", "it", "!"]


def test_vocab_order_and_specials():
    vocab = data.build_vocab([["b", "a", "c", "a"], ["b", "d"]], max_size=3)
    assert vocab == ["<unk>", "<pad>", "a", "b", "c"]  # freq desc, ties alphabetical, then cut


def test_corpus_split_ids_cache(imdb_dir, monkeypatch):
    corpus = data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)
    assert [len(corpus[k][0]) for k in ("train", "valid", "test")] == [8, 4, 12]
    vocab = corpus["vocab"]
    assert vocab[:2] == ["<unk>", "<pad>"]
    # built on the training reviews only: frequency there descending, ties alphabetical
    counts = torch.bincount(torch.cat(corpus["train"][0]), minlength=len(vocab)).tolist()
    ranked = [(-counts[i], vocab[i]) for i in range(2, len(vocab))]
    assert ranked == sorted(ranked) and min(counts[2:]) > 0 and counts[data.UNK] == 0
    assert corpus["test"][1].dtype == torch.float32 and corpus["test"][1].sum() == 6
    valid_ids = torch.cat(corpus["valid"][0] + corpus["test"][0])
    assert (valid_ids == data.UNK).any()  # words seen only outside train are <unk>
    # second run: from the cache, no re-tokenisation; same seed gives the same split
    monkeypatch.setattr(data, "tokenize", lambda *a: pytest.fail("tokenised again"))
    again = data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)
    assert all(torch.equal(a, b) for a, b in zip(again["valid"][0], corpus["valid"][0]))
    assert len(list((imdb_dir / "cache").glob("tokens-*.pt"))) == 1


def test_glove_embeddings_unk_pad_rows(imdb_dir):
    itos, vectors = data.load_glove(imdb_dir, 50, download=False)
    assert len(list((imdb_dir / "glove").glob("glove.6B.50d-*.pt"))) == 1 and vectors.shape == (5, 50)
    vocab = ["<unk>", "<pad>", "great", "Great", "zzz"]
    torch.manual_seed(0)
    matrix = data.embedding_matrix(vocab, itos, vectors)
    assert torch.all(matrix[0] == 0) and torch.all(matrix[1] == 0)
    assert torch.all(matrix[2] == 0.5)                      # found in GloVe
    assert not torch.all(matrix[3] == 0.5)                  # case-sensitive: random N(0, 1)
    assert matrix[3:].std() > 0.5


def test_padding_and_layout(imdb_dir):
    corpus = data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)
    batches = data.make_batches(corpus, "cpu", batch=5, test_batch=12, seed=0)
    tokens, labels = next(iter(batches["test"]))
    lengths = [len(ids) for ids in corpus["test"][0]]
    assert tokens.shape == (max(lengths), 12) and tokens.dtype == torch.int64
    shortest = lengths.index(min(lengths))
    assert torch.all(tokens[min(lengths):, shortest] == data.PAD)   # padded on the right
    assert torch.equal(labels, corpus["test"][1])                   # test in order


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    weight = torch.ones(1000, 8)
    dropped = embedding_dropout(weight, 0.65)
    assert torch.all((dropped == 0).all(1) | (dropped == 1 / 0.35).all(1))
    assert 0.55 < (dropped[:, 0] == 0).float().mean() < 0.75


def test_missing_data_message(tmp_path):
    with pytest.raises(SystemExit, match="aclImdb/train/pos"):
        data.load_corpus(tmp_path, download=False, split_seed=1)


def test_train_cli_end_to_end_and_resume(imdb_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["--data-dir", str(imdb_dir), "--no-download", "--emb-dim", "50", "--valid-size", "4",
              "--device", "cpu", "--no-progress", "--max-train-batches", "2", "--batch", "4"]
    train.main(common + ["--epochs", "1", "--out-dir", str(run_dir)])
    saved = json.loads((run_dir / "args.json").read_text())
    assert saved["dt"] == [0.0066, 0.205] and saved["emb_dropout"] == 0.65 and saved["lr"] == 0.000164
    summary = train.main(["--resume", str(run_dir), "--epochs", "2", "--no-progress"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith("; paper 88.4% (std not confirmed); the 2021 repository's best run 88.4%")
    assert summary["epochs"] == 2


@pytest.mark.parametrize("missing", ["test/neg", "train/pos"])
def test_incomplete_tree_is_refused_with_counts(imdb_dir, missing):
    for review in (imdb_dir / "aclImdb" / missing).glob("*.txt"):
        review.unlink()
    with pytest.raises(SystemExit, match=f"incomplete aclImdb tree .*{missing} 0.*no reviews in .*{missing}"):
        data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)


def test_caches_follow_their_sources(imdb_dir):
    """A repaired or edited corpus is tokenised again (the cache used to be served regardless)."""
    first = data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)
    review = imdb_dir / "aclImdb" / "test" / "pos" / "0_7.txt"
    review.write_text("Completely new words zebra")
    again = data.load_corpus(imdb_dir, download=False, split_seed=7, valid_size=4)
    assert len(list((imdb_dir / "cache").glob("tokens-*.pt"))) == 2
    assert not torch.equal(first["test"][0][0], again["test"][0][0])
    glove = imdb_dir / "glove" / "glove.6B.50d.txt"
    data.load_glove(imdb_dir, 50, download=False)
    glove.write_text(glove.read_text() + "zebra " + " ".join(["0.7"] * 50) + "\n")
    itos, vectors = data.load_glove(imdb_dir, 50, download=False)
    assert itos[-1] == "zebra" and vectors.shape == (6, 50)


def test_no_progress_silences_the_preparation_bars(imdb_dir, tmp_path, capsys):
    train.main(["--data-dir", str(imdb_dir), "--no-download", "--emb-dim", "50", "--valid-size", "4",
                "--device", "cpu", "--no-progress", "--max-train-batches", "1", "--batch", "4",
                "--epochs", "1", "--out-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "tokenising" not in err and "parsing" not in err and "epoch" not in err
