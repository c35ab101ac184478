"""Pretrained encoder weights from a cache in the Hugging Face hub's own layout, so that SMP and
timm find them unchanged on compute nodes without internet.

huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE from the environment once, at import
(huggingface_hub/constants.py), but its downloads read `constants.HF_HUB_CACHE` and
`constants.is_offline_mode()` at call time: `hub_cache` therefore sets both, the environment (for
anything imported later) and the already-imported constants, and restores them afterwards.
torch.hub (timm weights given only as a URL) reads TORCH_HOME at call time. Plain Python plus
SMP/timm/huggingface_hub: this module is core (no Hydra, no MLflow)."""

from __future__ import annotations

import copy
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from segmentation_models_pytorch.encoders import is_equivalent_to_timm_universal
from timm.models._builder import _resolve_pretrained_source  # timm's own resolution (private; timm 1.0.x)
from timm.models._hub import HF_WEIGHTS_NAME, _get_safe_alternatives, hf_split

from seg58.base.environment import environ

HF_SUBDIR = Path("huggingface") / "hub"  # <paths.cache_dir>/huggingface/hub: HF_HUB_CACHE
TORCH_SUBDIR = Path("torch")  # <paths.cache_dir>/torch: TORCH_HOME (weights known only by URL)
SMP_FILES = ("config.json", "model.safetensors")  # what SMP 0.6 get_encoder downloads per weights name

# Raised by the hub/torch.hub when a file is neither cached nor downloadable (offline, no network).
UNREACHABLE = (LocalEntryNotFoundError, OfflineModeIsEnabled, urllib.error.URLError)


def hf_cache_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser().resolve() / HF_SUBDIR


def torch_home(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser().resolve() / TORCH_SUBDIR


@contextmanager
def hub_cache(cache_dir: str | Path | None, offline: bool) -> Iterator[None]:
    """Point the hub (and torch.hub) at `cache_dir` while SMP/timm build an encoder.

    `cache_dir` None keeps the hub's own cache. `offline=True` forbids every hub request (weights
    must be cached); False leaves the hub's own setting (online unless HF_HUB_OFFLINE=1 is set)."""
    env: dict[str, str] = {}
    consts: dict[str, Any] = {}
    if cache_dir is not None:
        env = {"HF_HUB_CACHE": str(hf_cache_dir(cache_dir)), "TORCH_HOME": str(torch_home(cache_dir))}
        consts["HF_HUB_CACHE"] = env["HF_HUB_CACHE"]
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
        consts["HF_HUB_OFFLINE"] = True
    saved_consts = {k: getattr(constants, k) for k in consts}
    with environ(env):
        for k, v in consts.items():
            setattr(constants, k, v)
        try:
            yield
        finally:
            for k, v in saved_consts.items():
                setattr(constants, k, v)


def is_timm(encoder: str) -> bool:
    """SMP builds these through timm (`tu-*`, and the deprecated `timm-*` it maps onto them)."""
    return encoder.startswith("tu-") or is_equivalent_to_timm_universal(encoder)


def is_local_file(weights: Any) -> bool:
    return isinstance(weights, str) and weights.endswith((".pt", ".pth", ".safetensors"))


def smp_weights(encoder: str, weights: str | bool | None) -> str | bool | None:
    """What to hand SMP as encoder_weights. Config strings are normalised ("True"/"false" arrive as
    strings from a str-typed key): timm encoders take True (their default pretrained tag, or the
    tag in the name: tu-<model>.<tag>), SMP-native ones a weights name such as "imagenet"."""
    if weights is None or weights is False or str(weights).lower() in ("", "false", "none", "null"):
        return None
    if is_timm(encoder):
        return True
    return weights


def default_weights(encoder: str) -> str | bool:
    """The pretrained setting `seg58 fetch-weights` uses when encoder.weights is unset."""
    return True if is_timm(encoder) else "imagenet"


@dataclass(frozen=True)
class WeightSource:
    """Where SMP/timm look for one encoder's pretrained weights, resolved without building it."""

    encoder: str
    repo_id: str | None = None  # a hub repo ...
    revision: str | None = None  # None: the repo's main branch
    files: tuple[tuple[str, ...], ...] = ()  # all needed; each a tuple of alternatives (first cached wins)
    url: str | None = None  # ... or a torch.hub URL (cached under TORCH_HOME/hub/checkpoints)
    file: str | None = None  # ... or a local file named by a timm pretrained_cfg_overlay

    def describe(self) -> str:
        if self.repo_id:
            names = ", ".join("|".join(alternatives) for alternatives in self.files)
            return f"{self.repo_id}{'@' + self.revision if self.revision else ''} ({names})"
        return self.url or self.file or self.encoder

    def cached(self, cache_dir: str | Path) -> str | None:
        """The cached weights file (the last file needed), or None if any needed file is missing."""
        if self.file:
            return self.file if Path(self.file).expanduser().exists() else None
        if self.url:
            path = torch_home(cache_dir) / "hub" / "checkpoints" / Path(urlparse(self.url).path).name
            return str(path) if path.is_file() else None
        found = None
        for alternatives in self.files:
            found = next((p for name in alternatives if isinstance(
                p := try_to_load_from_cache(self.repo_id, name, cache_dir=hf_cache_dir(cache_dir),
                                            revision=self.revision), str)), None)
            if found is None:
                return None
        return found


def weight_source(encoder: str, weights: str | bool | None, encoder_kwargs: dict | None = None) -> WeightSource:
    """Resolve the hub repo/files the way SMP 0.6 (pretrained_settings) and timm 1.0
    (pretrained cfg -> _resolve_pretrained_source -> load_state_dict_from_hf) do.

    Raises ValueError for a weights name or pretrained tag that does not exist."""
    if is_timm(encoder):
        name = encoder[3:] if encoder.startswith("tu-") else encoder.replace("timm-", "", 1)
        if encoder.startswith("timm-") and "mobilenetv3" in name:
            name = "tf_" + name
        try:
            cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
        except RuntimeError as e:
            raise ValueError(f"encoder {encoder!r} has no timm pretrained weights ({e})") from None
        settings = copy.deepcopy(cfg.to_dict())
        settings.update((encoder_kwargs or {}).get("pretrained_cfg_overlay") or {})
        load_from, location = _resolve_pretrained_source(settings)
        if load_from == "hf-hub":
            repo, filename = location if isinstance(location, tuple) else (location, HF_WEIGHTS_NAME)
            repo_id, revision = hf_split(repo)
            alternatives = (filename,) if filename.endswith(".safetensors") else (
                *_get_safe_alternatives(filename), filename)
            return WeightSource(encoder, repo_id, revision, (alternatives,))
        if load_from == "url":
            return WeightSource(encoder, url=location)
        if load_from in ("file", "local-dir"):
            return WeightSource(encoder, file=str(location))
        raise ValueError(f"encoder {encoder!r}: timm pretrained source {load_from!r} is not a download")
    if encoder not in smp_encoders:
        raise ValueError(f"encoder {encoder!r} is not an SMP encoder")
    available = smp_encoders[encoder]["pretrained_settings"]
    if weights not in available:
        raise ValueError(f"encoder {encoder!r} has no weights {weights!r}; available: {sorted(available)}")
    settings = available[weights]
    return WeightSource(encoder, settings["repo_id"], settings.get("revision"), tuple((f,) for f in SMP_FILES))


def hub_unreachable(timeout: float = 10.0) -> BaseException | None:
    """Why the hub cannot be reached now (None: it answered). One HEAD request through the hub's
    own session (its proxies, HF_ENDPOINT, HF_HUB_OFFLINE): failing here takes one try, where a
    download retries with back-off for over a minute per file."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as e:  # any failure to get an answer means: not reachable from here
        return e
    return None


def hub_dir(cache_dir: str | Path | None) -> Path:
    """The hub cache folder used for `cache_dir` (None: the hub's own default)."""
    return hf_cache_dir(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)


def root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def missing_weights_message(source: WeightSource | str, cache_dir: str | Path | None, offline: bool,
                            fetch_command: str, cause: BaseException | None = None) -> str:
    """One message for "pretrained weights are not there": what, where, and the command that fixes it."""
    encoder, what = (source.encoder, source.describe()) if isinstance(source, WeightSource) else (source, "")
    if offline:
        why = ("the hub is offline for jobs (paths.hub_offline=true). On a machine with internet (e.g. a "
               "login node), with the same paths.cache_dir, run: ")
        tail = " (or let this run download them: paths.hub_offline=false)"
    else:
        error = root_cause(cause) if cause else None
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}" if error else "no connection"
        offline_env = "; HF_HUB_OFFLINE is set in this environment" if constants.HF_HUB_OFFLINE else ""
        why = f"the hub could not be reached ({reason}{offline_env}). Where there is internet, run: "
        tail = ""
    return (f"encoder {encoder}: pretrained weights {what + ' ' if what else ''}are not in the weights cache "
            f"{hub_dir(cache_dir)}, and {why}{fetch_command}{tail}")
