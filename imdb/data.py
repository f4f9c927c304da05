"""IMDB sentiment without torchtext, rebuilding what the 2021 code's torchtext 0.6 pipeline did:

- corpus: the Large Movie Review Dataset (aclImdb v1, 25k train / 25k test, pos/neg), downloaded and
  extracted with torchvision's helpers into <data-dir>/aclImdb/;
- tokens: spaCy's English tokenizer without a model (``spacy.blank("en")``) on the raw text (no
  lower-casing, ``<br />`` kept), as ``tokenize='spacy'``;
- split: 17500 train / 7500 valid from the training reviews by a seeded permutation (the 2021 code
  did not seed it; we do, and record the seed);
- vocabulary on the 17500 training reviews: ``<unk>`` = 0, ``<pad>`` = 1, then the 25000 most
  frequent tokens (frequency descending, ties alphabetical);
- GloVe 6B vectors (``glove.6B.zip``, case-sensitive lookup as torchtext's ``Vectors``), tokens
  without a vector get N(0, 1) rows, then the ``<unk>`` and ``<pad>`` rows are set to zero.

Tokens, vocabulary and ids are cached under <data-dir>/cache/ so a second run starts in seconds; every
cache file is keyed on its sources (the review files' paths, sizes and times; the GloVe file), so a
repaired or changed corpus is never served from a stale cache.
"""
import collections
import pathlib

import torch
from torchvision.datasets.utils import download_and_extract_archive
from tqdm import tqdm

from repro.batching import Batches
from repro.caching import cached, source_key

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
GLOVE_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
UNK, PAD = 0, 1
SPECIALS = ["<unk>", "<pad>"]
REVIEWS_PER_FOLDER = 12500  # aclImdb v1: {train, test} x {pos, neg}


def _fetch(url, folder, md5, what, layout):
    try:
        download_and_extract_archive(url, download_root=str(folder), md5=md5)
    except Exception as err:  # no network, server down ...
        raise SystemExit(f"could not download {what} from {url}: {err}\nDownload it by hand and "
                         f"extract it so that {layout} exists, then rerun.") from err


def review_files(data_dir, download):
    """{(split, sentiment): sorted review files} of <data_dir>/aclImdb, checked: every one of the four
    folders must hold reviews (a missing class would make accuracy meaningless)."""
    root = pathlib.Path(data_dir) / "aclImdb"
    if not (root / "train" / "pos").is_dir():
        if not download:
            raise SystemExit(f"IMDB reviews not found: expected {root}/train/pos/*.txt (and neg/, "
                             f"test/). Drop --no-download to fetch {ACLIMDB_URL}, or extract it "
                             f"into {pathlib.Path(data_dir)}.")
        _fetch(ACLIMDB_URL, data_dir, ACLIMDB_MD5, "the IMDB reviews", f"{root}/train/pos/")
    files = {(split, sentiment): sorted((root / split / sentiment).glob("*.txt"))
             for split in ("train", "test") for sentiment in ("pos", "neg")}
    counts = ", ".join(f"{split}/{sentiment} {len(f)}" for (split, sentiment), f in files.items())
    empty = [f"{root}/{split}/{sentiment}" for (split, sentiment), f in files.items() if not f]
    if empty:
        raise SystemExit(f"incomplete aclImdb tree ({counts} reviews): no reviews in "
                         f"{', '.join(empty)}. Extract {ACLIMDB_URL} again into {pathlib.Path(data_dir)}.")
    print(f"IMDB reviews: {counts}")
    if any(len(f) != REVIEWS_PER_FOLDER for f in files.values()):
        print(f"note: aclImdb v1 has {REVIEWS_PER_FOLDER} reviews in each folder; this tree differs, "
              "so results are not comparable with the paper's")
    return files


def read_reviews(files):
    """{"train"|"test": (texts, labels)}, files in sorted order; label 1 for pos, 0 for neg."""
    out = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, sentiment in ((1, "pos"), (0, "neg")):
            for path in files[split, sentiment]:
                texts.append(path.read_text(encoding="utf-8"))
                labels.append(label)
        out[split] = (texts, labels)
    return out


def tokenize(texts, desc, progress=True):
    import spacy
    tokenizer = spacy.blank("en").tokenizer
    return [[t.text for t in doc] for doc in tqdm(tokenizer.pipe(texts, batch_size=256),
                                                  total=len(texts), desc=desc, disable=not progress)]


def build_vocab(token_lists, max_size=25000):
    counts = collections.Counter(t for tokens in token_lists for t in tokens)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size]
    return SPECIALS + [token for token, _ in ranked]


def load_corpus(data_dir, download, split_seed, valid_size=7500, max_vocab=25000, progress=True):
    """{"vocab": itos list, "train"|"valid"|"test": (list of id tensors, float labels)}."""
    cache = pathlib.Path(data_dir) / "cache"
    files = review_files(data_dir, download)
    reviews_key = source_key([f for group in files.values() for f in group])

    def tokenized():
        reviews = read_reviews(files)
        return {split: (tokenize(texts, f"tokenising {split}", progress), labels)
                for split, (texts, labels) in reviews.items()}

    def numericalised():
        tokens = cached(cache / f"tokens-{reviews_key}.pt", tokenized)
        train_tokens, train_labels = tokens["train"]
        if not 0 < valid_size < len(train_tokens):
            raise SystemExit(f"--valid-size {valid_size} must be between 1 and {len(train_tokens) - 1}")
        order = torch.randperm(len(train_tokens), generator=torch.Generator().manual_seed(split_seed))
        parts = {"train": order[valid_size:], "valid": order[:valid_size]}
        parts = {name: (([train_tokens[i] for i in idx.tolist()]), [train_labels[i] for i in idx.tolist()])
                 for name, idx in parts.items()}
        parts["test"] = tokens["test"]
        vocab = build_vocab(parts["train"][0], max_vocab)
        stoi = {token: i for i, token in enumerate(vocab)}
        out = {"vocab": vocab}
        for name, (token_lists, labels) in parts.items():
            ids = [torch.tensor([stoi.get(t, UNK) for t in tokens] or [PAD]) for tokens in token_lists]
            out[name] = (ids, torch.tensor(labels, dtype=torch.float32))
        return out

    return cached(cache / f"ids-{reviews_key}-seed{split_seed}-valid{valid_size}-vocab{max_vocab}.pt",
                  numericalised)


def load_glove(data_dir, dim, download, progress=True):
    """(itos, vectors (n, dim)) of GloVe 6B, parsed once from glove.6B.<dim>d.txt and cached."""
    if dim not in (50, 100, 200, 300):
        raise SystemExit(f"--emb-dim must be 50, 100, 200 or 300 (GloVe 6B sizes), got {dim}")
    folder = pathlib.Path(data_dir) / "glove"
    text = folder / f"glove.6B.{dim}d.txt"
    if not text.exists():
        if not download:
            raise SystemExit(f"GloVe not found: expected {text}. Drop --no-download to fetch "
                             f"{GLOVE_URL}, or unzip it into {folder}.")
        _fetch(GLOVE_URL, folder, None, "GloVe 6B", str(text))

    def parse():
        itos, rows = [], []
        with open(text, encoding="utf-8") as f:
            for line in tqdm(f, desc=f"parsing {text.name}", disable=not progress):
                token, *values = line.rstrip().split(" ")
                if len(values) == dim:
                    itos.append(token)
                    rows.append([float(v) for v in values])
        if not rows:
            raise SystemExit(f"{text} holds no {dim}-dimensional vectors; download {GLOVE_URL} again")
        return {"itos": itos, "vectors": torch.tensor(rows, dtype=torch.float32)}

    glove = cached(folder / f"glove.6B.{dim}d-{source_key([text])}.pt", parse)
    return glove["itos"], glove["vectors"]


def embedding_matrix(vocab, glove_itos, glove_vectors):
    """GloVe rows for known tokens, N(0, 1) rows (global torch RNG) for the rest, zero unk/pad."""
    index = {token: i for i, token in enumerate(glove_itos)}
    matrix = torch.randn(len(vocab), glove_vectors.shape[1])
    known = [(i, index[token]) for i, token in enumerate(vocab) if token in index]
    if known:
        rows, source = zip(*known)
        matrix[list(rows)] = glove_vectors[list(source)]
    matrix[UNK] = 0.0
    matrix[PAD] = 0.0
    return matrix


def pad_batch(sequences):
    """List of 1-D id tensors -> (longest, batch), padded on the right with <pad>."""
    return torch.nn.utils.rnn.pad_sequence(sequences, padding_value=PAD)


def make_batches(corpus, device, batch, test_batch, seed):
    def batches_of(split, size, shuffle):
        ids, labels = corpus[split]
        def make_batch(idx):
            idx = idx.tolist()
            return pad_batch([ids[i] for i in idx]).to(device), labels[idx].to(device)
        return Batches(len(ids), size, make_batch, shuffle=shuffle, seed=seed)
    return {"train": batches_of("train", batch, True), "valid": batches_of("valid", test_batch, False),
            "test": batches_of("test", test_batch, False)}
