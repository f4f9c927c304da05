"""Train UnICORNN on IMDB sentiment with the paper's hyperparameters.

    python imdb/train.py            # downloads aclImdb v1 and GloVe 6B, tokenises once, caches
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from imdb import data
from imdb.model import build_model
from repro import cli, training
from repro.experiment import Experiment, Task
from repro.metrics import Metric, evaluate_accuracy
from repro.paths import default_data_dir
from repro.seeding import seed_everything


def build_parser():
    parser = cli.experiment_parser(__doc__)
    cli.add_model_args(parser, nhid=128, nlayers=2, dt=[0.0066, 0.205], alpha=0.0,
                       dropout=0.61, lr=0.000164, batch=32)
    parser.add_argument("--emb-dropout", "--emb_dropout", dest="emb_dropout", type=cli.probability,
                        default=0.65, help="embedding dropout, whole words (paper)")
    parser.add_argument("--emb-dim", "--emb_dim", dest="emb_dim", type=int, default=100,
                        choices=[50, 100, 200, 300], help="GloVe 6B size (paper)")
    parser.add_argument("--test-batch", type=cli.positive_int, default=32,
                        help="evaluation batch; it sets the padding the last row sees")
    parser.add_argument("--split-seed", type=cli.seed_int, default=1234,
                        help="seed of the 17500/7500 train/valid split")
    parser.add_argument("--valid-size", type=cli.positive_int, default=7500, help="valid split (paper)")
    parser.add_argument("--max-vocab", type=cli.positive_int, default=25000, help="vocabulary size (paper)")
    cli.add_data_args(parser, data_dir=default_data_dir("imdb"),
                      what="holds aclImdb/, glove/ and cache/ (downloaded there when missing)")
    cli.add_training_args(parser, epochs=50)
    return parser


def main(argv=None, on_epoch=None):
    args = EXPERIMENT.start_run(argv)
    device = training.pick_device(args.device)
    progress = not args.no_progress
    corpus = data.load_corpus(args.data_dir, args.download, args.split_seed, args.valid_size,
                              args.max_vocab, progress)
    glove_itos, glove_vectors = data.load_glove(args.data_dir, args.emb_dim, args.download, progress)
    seed_everything(args.seed)
    embeddings = data.embedding_matrix(corpus["vocab"], glove_itos, glove_vectors)
    batches = data.make_batches(corpus, device, args.batch, args.test_batch, args.seed)
    model = build_model(args, embeddings).to(device)
    return EXPERIMENT.fit(
        args, model, batches["train"], torch.nn.BCEWithLogitsLoss(),
        lambda split: evaluate_accuracy(model, batches[split]), on_epoch=on_epoch,
        suspects=("--lr", "--dt", "--alpha", "--emb-dropout"))


# the paper keeps the learning rate constant (no lr drops)
EXPERIMENT = Experiment(
    name="imdb", tasks=(Task("imdb", Metric("accuracy", True, ".2f", "%")),),
    build_parser=build_parser, main=main)

if __name__ == "__main__":
    main()
