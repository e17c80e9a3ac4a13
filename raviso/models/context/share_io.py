"""Saving and loading a fitted ``share_net`` / ``ffnn_plus`` (the MODEL's ``regressor/``), so that
`raviso fit` and `raviso cv --save-model` can keep raviso's recommended model and `raviso predict`
can apply it to new samples.

What a fitted model is: its options, the context transform fitted on the training rows (PCA mean
and components, column centre and scale, the tissue list of the one-hot) and the network's
tensors. Written as ``share.json`` + ``share.safetensors`` (no pickle: a MODEL can come from
someone else), the network rebuilt empty from the saved tensor shapes and then filled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...core.errors import RavisoError

SHARE_JSON = "share.json"
SHARE_TENSORS = "share.safetensors"
FORMAT = "raviso-share-net"


def save_share_model(model, directory) -> None:
    """Write a fitted `ShareNet` (or subclass) into an existing directory."""
    from safetensors.torch import save_file

    if model.module is None:
        raise RuntimeError(f"{model.name}: save before fit")
    d = Path(directory)
    tensors = {f"module.{k}": v.detach().cpu().contiguous()
               for k, v in model.module.state_dict().items()}
    f = model.features
    context = {"z_mean": f.z_mean_, "z_std": f.z_std_}
    if f.pca_ is not None:
        context.update(pca_mean=f.pca_[0], pca_components=f.pca_[1])
    tensors.update({f"context.{k}": torch.from_numpy(np.ascontiguousarray(v, np.float32))
                    for k, v in context.items()})
    save_file(tensors, str(d / SHARE_TENSORS))
    cfg = {"format": FORMAT, "version": 1, "variant": model.variant_kind, "name": model.name,
           "context": model.context, "options": model.init_options(),
           "tissues": list(f.tissues_), "n_out": int(model.n_out_),
           "history": model.history_}
    (d / SHARE_JSON).write_text(json.dumps(cfg, indent=1, default=float))


def is_share_model(directory) -> bool:
    return (Path(directory) / SHARE_JSON).is_file()


def load_share_model(directory, classes: dict, device: str = "cpu"):
    """A fitted model from what `save_share_model` wrote; `classes` maps the saved variant kind
    (``share_net``, ``ffnn_plus``) to the class that rebuilds it."""
    from ..ffnn.regressors import read_saved

    d = Path(directory)
    cfg, tensors = read_saved(d, SHARE_JSON, SHARE_TENSORS, "model")
    if cfg.get("format") != FORMAT or cfg.get("variant") not in classes:
        raise RavisoError(f"not a saved {'/'.join(classes)} ({cfg.get('format')!r}, "
                          f"{cfg.get('variant')!r})", d)
    model = classes[cfg["variant"]](name=cfg["name"], context=cfg["context"], device=device,
                                    **cfg["options"])
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items()  # noqa: E731
                           if k.startswith(prefix)}
    ctx, state = part("context."), part("module.")
    f = model.features
    f.pca_ = (ctx["pca_mean"].numpy(), ctx["pca_components"].numpy()) \
        if "pca_mean" in ctx else None
    f.z_mean_, f.z_std_ = ctx["z_mean"].numpy(), ctx["z_std"].numpy()
    f.tissues_ = list(cfg["tissues"])
    model.n_out_ = int(cfg["n_out"])
    model.module = model.empty_module(state)
    model.module.load_state_dict(state)
    model.module.to(model.device).eval()
    model.history_ = cfg.get("history", {})
    return model
