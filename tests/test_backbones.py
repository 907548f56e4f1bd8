"""timm backbones in the embed stage, from local weights files (no downloads): trained with
a frozen start, used as they are, exported with parity and served; bad weights refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import TINY_CHIP, TINY_FACE
from safetensors.torch import save_file

from bearid.errors import BearIDError
from bearid.training.config import ClassifyConfig, EmbedConfig, Sweep, make
from bearid.training.embed.timmnet import TimmEmbedNet
from bearid.training.embed.train import load
from bearid.training.stages import run_embed
from bearid.training.train import train

SMALL = {"p": 3, "k": 2, "views": 0, "recolour": 0, "checkpoint_every": 0}


def _weights(tmp_path: Path, name: str) -> tuple[Path, dict]:
    """A timm model's weights with random values, saved as a hub file would hold them
    (classifier included)."""
    torch.manual_seed(0)
    state = timm.create_model(name, pretrained=False).state_dict()
    path = tmp_path / f"{name}.safetensors"
    save_file(state, path)
    return path, state


def test_a_timm_backbone_from_local_weights_trains_exports_with_parity_and_serves(trained, splits, tmp_path):
    import httpx

    from bearid.exporters.export import export
    from bearid.serving import bundle as bundles
    from bearid.serving.localserver import LocalServer

    weights, _ = _weights(tmp_path, "test_resnet")
    results = tmp_path / "results"
    shutil.copytree(trained[0], results)  # the face and chip stages are reused
    embed = EmbedConfig(
        backbone="timm:test_resnet", weights=str(weights), input_size=64, steps=20, freeze=5, backbone_lr=0.1, p=6, k=3
    )
    report = train(Sweep([TINY_FACE], [TINY_CHIP], [embed], [ClassifyConfig()]), splits, results, log=lambda m: None)
    [branch] = report.branches
    assert branch[0] in report.reused and branch[1] in report.reused and branch[2] in report.computed
    net, size, norm = load(branch[2] / "model")
    assert isinstance(net, TimmEmbedNet) and size == 64 and norm.mean == (0.5, 0.5, 0.5) and net.dim == 128
    vectors = np.load(branch[2] / "embeddings" / "test.npz")["vectors"]
    assert vectors.shape[1] == 128 and np.isfinite(vectors).all()

    bundle = tmp_path / "bundle"
    export(branch[-1], bundle, parity_photos=4, log=lambda m: None)
    loaded = bundles.load(bundle)
    assert loaded.manifest["parity"]["identical_decisions"]
    assert loaded.embed_norm == norm and loaded.manifest["embed"]["input_size"] == 64
    assert loaded.manifest["lineage"]["configs"]["embed"]["backbone"] == "timm:test_resnet"
    photo = sorted((splits.parent / "world").rglob("*.jpg"))[0]
    with LocalServer(env={"BEARID_BUNDLE": str(bundle)}, log=tmp_path / "server.log") as url:
        answer = httpx.post(f"{url}/identify", files={"photo": (photo.name, photo.read_bytes())}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["version"] == loaded.manifest["version"]


def test_freeze_trains_the_head_alone_and_steps_0_uses_the_backbone_as_it_is(trained, tmp_path):
    chip_meta = trained[1].branches[0][1] / "chip_meta"
    quiet = lambda m: None
    weights, state = _weights(tmp_path, "test_resnet")
    common = {"backbone": "timm:test_resnet", "weights": str(weights), "input_size": 64, **SMALL}
    run_embed(tmp_path / "frozen", make("embed", {**common, "steps": 4, "freeze": 4}), chip_meta, quiet)
    frozen, _, _ = load(tmp_path / "frozen" / "model")
    for key, tensor in frozen.backbone.state_dict().items():  # weights and batch-norm statistics
        assert torch.equal(tensor, state[key]), key
    head = frozen.head[0].weight
    kept = run_embed(tmp_path / "tuned", make("embed", {**common, "steps": 4, "freeze": 2}), chip_meta, quiet)[
        "kept_step"
    ]
    tuned, _, _ = load(tmp_path / "tuned" / "model")
    moved = not torch.equal(tuned.backbone.state_dict()["conv1.0.weight"], state["conv1.0.weight"])
    assert moved == (kept > 2), kept  # the best validation step's weights: tuned only after the frozen steps
    if kept > 2:
        assert not torch.equal(tuned.head[0].weight, head)

    vit, vit_state = _weights(tmp_path, "test_vit")  # pretrained at 160 px, used at 32
    zero = {"backbone": "timm:test_vit", "weights": str(vit), "input_size": 32, "steps": 0, **SMALL}
    run_embed(tmp_path / "zero", make("embed", zero), chip_meta, quiet)
    net, _, _ = load(tmp_path / "zero" / "model")
    assert net.head is None and net.dim == 64
    assert torch.equal(net.backbone.state_dict()["blocks.0.attn.qkv.weight"], vit_state["blocks.0.attn.qkv.weight"])
    vectors = np.load(tmp_path / "zero" / "embeddings" / "test.npz")["vectors"]
    assert vectors.shape[1] == 64 and np.isfinite(vectors).all()
    # The ViT exports to ONNX as the CNN does (the export's own opset and exporter), alike.
    import onnxruntime

    from bearid.exporters.export import _to_onnx
    from bearid.training.embed.model import Descriptor

    _to_onnx(Descriptor(net).eval(), torch.zeros(2, 3, 32, 32), tmp_path / "vit.onnx", image_axes=False)
    x = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    ort = onnxruntime.InferenceSession(str(tmp_path / "vit.onnx")).run(None, {"input": x})[0]
    with torch.no_grad():
        assert np.abs(ort - net.descriptor(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_a_missing_or_mismatched_weights_file_is_one_error_naming_file_and_tensor(trained, tmp_path):
    chip_meta = trained[1].branches[0][1] / "chip_meta"
    quiet = lambda m: None
    vit, _ = _weights(tmp_path, "test_vit")
    resnet, state = _weights(tmp_path, "test_resnet")
    cfg = lambda w: make("embed", {"backbone": "timm:test_resnet", "weights": str(w), "input_size": 64, "steps": 0})
    with pytest.raises(BearIDError, match=r"test_vit.safetensors: has no tensor conv1.0.weight of timm:test_resnet"):
        run_embed(tmp_path / "a", cfg(vit), chip_meta, quiet)
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"][:, :1].contiguous()
    save_file(state, tmp_path / "cut.safetensors")
    with pytest.raises(BearIDError, match=r"cut.safetensors: tensor layer1.0.conv1.weight is \(.*\), timm:test_resnet"):
        run_embed(tmp_path / "b", cfg(tmp_path / "cut.safetensors"), chip_meta, quiet)
    with pytest.raises(BearIDError, match="nothing.pth: no such weights file"):
        run_embed(tmp_path / "c", cfg(tmp_path / "nothing.pth"), chip_meta, quiet)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(BearIDError, match="junk.pth: not a readable weights file"):
        run_embed(tmp_path / "d", cfg(tmp_path / "junk.pth"), chip_meta, quiet)
    with pytest.raises(BearIDError, match="timm has no such model"):
        run_embed(tmp_path / "e", make("embed", {"backbone": "timm:no_such_net", "steps": 1}), chip_meta, quiet)
    with pytest.raises(BearIDError, match="weights are a timm backbone's"):
        make("embed", {"weights": str(resnet)})


def test_hub_weights_offline_with_nothing_cached_are_one_clear_error(tmp_path):
    """HF_HUB_OFFLINE is honoured: no network is tried, and the error says what to do."""
    code = (
        "from bearid.training.config import make; from bearid.training.embed.model import build;"
        "build(make('embed', {'backbone': 'timm:test_resnet', 'weights': 'hub', 'steps': 0}))"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    assert "weights: hub: cannot fetch the weights" in done.stderr and "weights: FILE.safetensors" in done.stderr
