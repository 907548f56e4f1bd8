"""`python -m bearid.training.embed`: train the embed stage on a chips XML (also under
torchrun).

    torchrun --nproc_per_node 2 -m bearid.training.embed CHIPS.xml --out DIR [--config embed.yaml] [--set steps=400]

Each process trains on its own batches; DistributedDataParallel keeps the weights in step;
rank 0 writes the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bearid.training.config import EmbedConfig, stage_config
from bearid.training.device import Device, distributed
from bearid.training.embed.loader import open_chips
from bearid.training.embed.model import normalisation_of
from bearid.training.embed.train import save, train_embedder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bearid.training.embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chips", type=Path, help="chips XML of the training split")
    parser.add_argument("--out", type=Path, required=True, help="model directory")
    parser.add_argument("--config", type=Path, help="embed config YAML")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="override one setting, e.g. steps=400"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    cfg = stage_config("embed", args.config, args.settings)
    assert isinstance(cfg, EmbedConfig)
    norm = normalisation_of(cfg)
    rank, world = distributed(Device.choose())
    if rank == 0:  # one process packs the cache; the others wait for it
        data = open_chips(args.chips, cfg.input_size, log=print, norm=norm)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        data = open_chips(args.chips, cfg.input_size, norm=norm)
    net, classes, _ = train_embedder(
        data, cfg, args.out, resume=args.resume, log=print if rank == 0 else (lambda m: None)
    )
    if rank == 0:
        save(args.out, net, classes, cfg, norm)


if __name__ == "__main__":
    main()
