"""Find the mobility pool, negotiate access and train a small model on it: the training job's
journey in one script, on the CPU.

    AGORA_URL=http://localhost:8080 AGORA_TOKEN=<researcher token> python train_mobility.py

The model predicts a trip's duration (minutes) from its distance and transport mode: a linear
regression fitted by minibatch SGD on the samples the node releases (vehicle ids
pseudonymised, places and times generalised). It reads this rank's shards through
`agora_client.training.ShardStream` (numpy, no torch needed) or, with `--torch`, through
`agora_client.torch.AgoraIterableDataset` and a DataLoader with 2 workers. Rank and world size
come from RANK / WORLD_SIZE (as torchrun sets them); a checkpoint (`--checkpoint FILE`) holds
the weights and the data position, and a run started again with it resumes mid-epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from agora_client import AgoraError, NegotiationRefused, Node, PendingNegotiation
from agora_client.training import ShardStream

TRANSPORT = "http://publications.europa.eu/resource/authority/data-theme/TRAN"
MODES = ["walk", "bike", "scooter", "bus", "tram", "car"]
COLUMNS = ["mode", "distance_km", "duration_s"]


def features(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """[distance, one-hot mode, 1] and the duration in minutes."""
    modes = np.asarray(batch["mode"], dtype=object)
    onehot = np.stack([(modes == m).astype(np.float64) for m in MODES], axis=1)
    distance = np.asarray(batch["distance_km"], dtype=np.float64)[:, None]
    x = np.concatenate([distance, onehot * distance, onehot], axis=1)
    y = np.asarray(batch["duration_s"], dtype=np.float64) / 60.0
    return x, y


def batches(node: Node, agreement, args, rank: int, world: int, state: dict | None):
    """This rank's batches of the epoch (dicts of numpy arrays) and the object that knows
    where the loop stands."""
    if args.torch:
        from agora_client.torch import AgoraDataLoader, AgoraIterableDataset

        dataset = AgoraIterableDataset(
            node, agreement, rank=rank, world_size=world, seed=args.seed,
            batch_size=args.batch_size, columns=COLUMNS, as_tensors=False,
        )
        loader = AgoraDataLoader(dataset, batch_size=args.batch_size, num_workers=2)
        if state:
            loader.load_state_dict(state)
        return loader, loader
    stream = ShardStream(
        node, agreement, rank=rank, world_size=world, seed=args.seed,
        batch_size=args.batch_size, columns=COLUMNS,
    )
    if state:
        stream.load_state_dict(state)
    return stream, stream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--torch", action="store_true", help="read through a torch DataLoader")
    parser.add_argument("--checkpoint", type=Path, help="resume from / save to this JSON file")
    args = parser.parse_args()

    node = Node.from_env() if os.environ.get("AGORA_URL") else Node.from_profile()
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))

    weights = np.zeros(1 + 2 * len(MODES))
    state = None
    start_epoch = 0
    if args.checkpoint and args.checkpoint.exists():
        saved = json.loads(args.checkpoint.read_text())
        weights = np.asarray(saved["weights"])
        state = saved["data"]
        start_epoch = state["epoch"]
        agreement = node.agreement(state["agreement"])  # the same agreement, the same order
        print(f"resuming epoch {start_epoch} after {state['consumed']} samples")
    else:
        hits = node.search("trips", theme=TRANSPORT)
        print(f"{hits.total} transport dataset(s): {', '.join(hits.ids)}")
        if not len(hits):
            return 1
        try:
            agreement = node.negotiate(hits.ids[0], purpose="dpv:ScientificResearch")
        except NegotiationRefused as refused:
            print("refused:", "; ".join(refused.failed_constraints) or refused.detail)
            return 2
        if isinstance(agreement, PendingNegotiation):
            agreement = agreement.wait(timeout=60)
    print(f"agreement {agreement.id} on {agreement.dataset}")

    for epoch in range(start_epoch, args.epochs):
        source, position = batches(node, agreement, args, rank, world, state)
        if state is None:
            (source.dataset if args.torch else source).set_epoch(epoch)
        state = None
        losses, seen = [], 0
        for step, batch in enumerate(source):
            x, y = features(batch)
            error = x @ weights - y
            losses.append(float(np.mean(error**2)))
            weights -= args.lr * (x.T @ error) / len(y)
            seen += len(y)
            if args.checkpoint:
                args.checkpoint.write_text(json.dumps({"weights": weights.tolist(), "data": position.state_dict()}))
            if args.max_steps and step + 1 >= args.max_steps:
                break
        first, last = np.mean(losses[:5]), np.mean(losses[-5:])
        print(f"epoch {epoch}: rank {rank}/{world} trained on {seen} samples, "
              f"MSE {first:.1f} -> {last:.1f} (minutes^2)")
    per_km = {m: round(float(weights[0] + weights[1 + i]) * 60, 1) for i, m in enumerate(MODES)}
    print("learnt seconds per km:", json.dumps(per_km))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgoraError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
