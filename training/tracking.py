"""Optional experiment tracking: `bearid train --mlflow URI` logs each stage directory of the
results tree as an MLflow run, nested as the tree is (a chip stage's run under its face
stage's run, and so on), with its config as parameters, its metrics.json as metrics, its
curves as step-wise metrics, and its plots, curves and config as artifacts.

The results tree stays the source of truth: a run is a copy of what a stage directory holds,
tagged with that directory, and a stage reused by a later `bearid train` is found by its tag
rather than logged again. Uses mlflow-skinny's client (the `[mlflow]` extra), no global
MLflow state. The tracking URI is checked before anything is trained (`check_uri`): a
scheme BearID logs to, and a server that answers within a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from bearid.errors import BearIDError
from bearid.training import results
from bearid.training.config import STAGES, as_dict, read_config

TAG = "bearid.stage_dir"
SCHEMES = ("file", "http", "https", "databricks")  # and a plain folder; what mlflow-skinny's client reaches
REACH_TIMEOUT_S = 3.0


def check_uri(uri: str, timeout: float = REACH_TIMEOUT_S) -> str:
    """`uri` if BearID can log to it: a folder or file: URI that can be a folder, or an MLflow
    server (http, https) that answers within `timeout` seconds; else one clear BearIDError."""
    example = "give a folder, file:./mlruns, or http://HOST:PORT of an MLflow server"
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ("file" if uri.startswith("file:") else "")
    if scheme and scheme not in SCHEMES:
        raise BearIDError(f"--mlflow {uri}: '{scheme}' is not a tracking URI scheme BearID logs to; {example}")
    if scheme in ("", "file"):
        local = uri.removeprefix("file://") if uri.startswith("file://") else uri.removeprefix("file:")
        folder = Path(local or ".")
        taken = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if taken is not None and not taken.is_dir():
            raise BearIDError(f"--mlflow {uri}: {taken} is a file, not a folder for MLflow's runs")
        return uri
    if scheme in ("http", "https"):
        import httpx

        try:
            httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
        except httpx.InvalidURL as exc:
            raise BearIDError(f"--mlflow {uri}: not a URL ({exc}); {example}") from None
        except httpx.HTTPError as exc:
            raise BearIDError(
                f"--mlflow {uri}: no MLflow server answers there within {timeout:g} s "
                f"({type(exc).__name__}: {exc}); start one (mlflow server) or {example}"
            ) from None
    return uri


def _flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics.json as MLflow metric names (val.top1, test.baks, ...)."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


class MlflowTracker:
    def __init__(self, uri: str, results_dir: Path, experiment: str = "bearid"):
        check_uri(uri)
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps its file store only on request; a local folder is what was asked for.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise BearIDError(f"--mlflow needs mlflow-skinny: pip install 'bearid[mlflow]' ({exc})") from None
        from mlflow.exceptions import MlflowException

        self.root = Path(results_dir).resolve()
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment = found.experiment_id if found else self.client.create_experiment(experiment)
        except MlflowException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BearIDError(f"--mlflow {uri}: MLflow cannot track there: {first}") from None
        self.runs: dict[Path, str] = {}

    def _existing(self, rel: str) -> str | None:
        runs = self.client.search_runs([self.experiment], filter_string=f"tags.`{TAG}` = '{rel}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def stage(self, d: Path) -> str:
        """Log the finished stage directory `d` (its parent stage first), once; its run id."""
        from mlflow.entities import Metric, Param

        d = Path(d).resolve()
        if d in self.runs:
            return self.runs[d]
        rel = str(d.relative_to(self.root))
        if (run_id := self._existing(rel)) is not None:
            self.runs[d] = run_id
            return run_id
        stage = next(s for s in STAGES.values() if d.name.startswith(s.dir_prefix + "_"))
        tags = {TAG: rel, "bearid.stage": stage.name, "bearid.results": str(self.root)}
        if stage.name != "face":
            tags["mlflow.parentRunId"] = self.stage(d.parent)
        run = self.client.create_run(self.experiment, run_name=f"{stage.name} {d.name}", tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [
            Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
            for k, v in as_dict(read_config(d)).items()
        ]
        metrics = [Metric(k, v, now, 0) for k, v in _flat(results.read_metrics(d)).items()]
        curves_file = d / "curves.json"
        if curves_file.exists():
            for network, curve in json.loads(curves_file.read_text()).items():
                metrics += [Metric(f"{network}.loss", v, now, i + 1) for i, v in enumerate(curve["loss"])]
                metrics += [
                    Metric(f"{network}.val.{k}", v, now, r["step"])
                    for r in curve["validation"]
                    for k, v in r.items()
                    if k != "step"
                ]
        for start in range(0, max(len(metrics), 1), 900):  # MLflow takes at most 1000 values a call
            self.client.log_batch(run_id, metrics=metrics[start : start + 900], params=params if start == 0 else [])
        for name in (results.CONFIG, results.METRICS, "curves.json", "curves.csv"):
            if (d / name).exists():
                self.client.log_artifact(run_id, str(d / name))
        if (d / "plots").is_dir():
            self.client.log_artifacts(run_id, str(d / "plots"), "plots")
        self.client.set_terminated(run_id)
        self.runs[d] = run_id
        return run_id
