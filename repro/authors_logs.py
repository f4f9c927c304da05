"""The validation curves the authors published with their 2021 code, as reference data.

``authors_2021_logs.json`` beside this file holds them, converted once by ``import_logs`` from the six
result logs of github.com/tk-rusch/unicornn (commit 35b243d9ac5f7c3b8efe69e163f8c2739765685c,
2021-10-01), which hold one line per validation: "## learning rate = ..., dt = ..., alpha = ...",
then "eval accuracy: X" (or "eval loss: X" for the RMSE of healthcare), then "final test ...: X".
The values are rounded to 2 decimals, as published.

    python -m repro.authors_logs DIR     # DIR holds the six *_log.txt files: rewrite the JSON
"""
import json
import pathlib
import re
import sys

DATA_FILE = pathlib.Path(__file__).with_name("authors_2021_logs.json")
REPOSITORY = "https://github.com/tk-rusch/unicornn"
COMMIT = "35b243d9ac5f7c3b8efe69e163f8c2739765685c"
# task -> (file name, path in that repository, epochs between two logged validations)
LOGS = {
    "psMNIST": ("psMNIST_log.txt", "psMNIST/result/psMNIST_log.txt", 20),
    "noisy_cifar": ("noisy_cifar10_log.txt", "noisy_CIFAR10/result/noisy_cifar10_log.txt", 1),
    "eigenworms": ("eigenworms_log.txt", "eigenWorms/result/eigenworms_log.txt", 1),
    "healthcare_RR": ("RR_log.txt", "health_care/results/RR_log.txt", 1),
    "healthcare_HR": ("HR_log.txt", "health_care/results/HR_log.txt", 1),
    "imdb": ("IMDB_log.txt", "IMDB/result/IMDB_log.txt", 1),
}


def parse_log(text, every):
    """{"setting", "epochs", "valid", "final_test"} of one log. The 2021 scripts log after epoch
    index 0, every, 2*every, ... (0-based), i.e. after epochs 1, 1 + every, ... (1-based)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or not lines[0].startswith("##") or not lines[-1].startswith("final test"):
        raise ValueError("expected a '## ...' header line and a 'final test ...' last line")
    valid = [float(re.fullmatch(r"eval (?:accuracy|loss): (\S+)", line).group(1)) for line in lines[1:-1]]
    return {"setting": lines[0].lstrip("# "), "epochs": [1 + every * i for i in range(len(valid))],
            "valid": valid, "final_test": float(lines[-1].rsplit(":", 1)[1])}


def import_logs(folder):
    logs = {}
    for task, (name, path, every) in LOGS.items():
        logs[task] = {"file": path, **parse_log((pathlib.Path(folder) / name).read_text(), every)}
    return {"source": f"{REPOSITORY} (commit {COMMIT}, 2021-10-01): the authors' published result "
                      "logs, valid value per logged epoch and final test value, rounded to 2 decimals",
            "repository": REPOSITORY, "commit": COMMIT, "logs": logs}


def load():
    return json.loads(DATA_FILE.read_text())


def citation(task):
    """One line for a figure: where the authors' curve of ``task`` comes from."""
    return f"authors' 2021 log: tk-rusch/unicornn@{COMMIT[:7]}, {LOGS[task][1]}"


def dumps(data):
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[[-\d.,\se]*\]", lambda m: json.dumps(json.loads(m.group())), text) + "\n"


if __name__ == "__main__":
    DATA_FILE.write_text(dumps(import_logs(sys.argv[1])))
    print(f"wrote {DATA_FILE}")
