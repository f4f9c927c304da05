"""Where experiments keep downloaded data by default: <repository>/data/<name> (git-ignored)."""
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def default_data_dir(name):
    return REPO_ROOT / "data" / name
