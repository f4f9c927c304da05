"""Default places, relative to the repository (never to the working directory): downloaded data in
<repository>/data/<name>, run folders in <repository>/results/ (both git-ignored)."""
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_ROOT = REPO_ROOT / "results"


def default_data_dir(name):
    return REPO_ROOT / "data" / name
