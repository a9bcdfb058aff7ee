"""The examples run against the node (smoke tests with a look at what they print)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agora_client import Node

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(url: str, token: str, script: str, *args: str, python: str = sys.executable) -> str:
    env = {**os.environ, "AGORA_URL": url, "AGORA_TOKEN": token}
    done = subprocess.run(
        [python, str(EXAMPLES / script), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_researcher_sparql_notebook(url: str, researcher: Node) -> None:
    out = run(url, researcher.token or "", "researcher_sparql.py")
    assert "## datasets" in out and "/datasets/mobility" in out
    assert "## distribution formats" in out and "PARQUET" in out
    assert "any dataset mentioning trips: True" in out
    assert "constructed graph:" in out
    assert "marketing refused: purpose" in out
    assert "policy in words: Use of individual trips" in out
    assert "## released sample" in out and "vehicle_id" in out


def test_training_a_model_on_the_mobility_pool(url: str, researcher: Node, tmp_path) -> None:
    out = run(url, researcher.token or "", "train_mobility.py", "--epochs", "1")
    assert "agreement urn:uuid:" in out
    assert "epoch 0: rank 0/1 trained on 300000 samples" in out
    line = next(l for l in out.splitlines() if l.startswith("epoch 0"))
    first, last = (float(x) for x in line.split("MSE ")[1].split(" (")[0].split(" -> "))
    assert last < first / 2  # it learns
    per_km = json.loads(out.split("learnt seconds per km: ")[1])
    assert per_km["walk"] > per_km["car"]


def test_the_training_example_resumes_from_its_checkpoint(url: str, researcher: Node, tmp_path) -> None:
    checkpoint = tmp_path / "ckpt.json"
    out = run(url, researcher.token or "", "train_mobility.py", "--epochs", "1",
              "--max-steps", "40", "--checkpoint", str(checkpoint))
    assert "trained on 40960 samples" in out
    saved = json.loads(checkpoint.read_text())
    assert saved["data"]["consumed"] == 40960 and saved["data"]["epoch"] == 0
    out = run(url, researcher.token or "", "train_mobility.py", "--epochs", "1",
              "--checkpoint", str(checkpoint))
    assert "resuming epoch 0 after 40960 samples" in out
    assert f"trained on {300000 - 40960} samples" in out
