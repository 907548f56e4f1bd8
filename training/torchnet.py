"""A PyTorch module as a `bearid` Network (NumPy in, NumPy out), so the face finder and the
inference `Pipeline` run PyTorch networks (while training and in the export's parity check)
exactly as they run ONNX Runtime sessions in the service."""

from __future__ import annotations

import numpy as np
import torch

from bearid.face import Network


def network(model: torch.nn.Module) -> Network:
    def call(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return call
