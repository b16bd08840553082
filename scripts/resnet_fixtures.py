"""ResNet fixtures for the torchless image-classification tests (``make_resnet()``).

Writes ``tests/fixtures/resnet/`` (about 1.9 MB):

* ``inputs.npy`` -- the fixed input batch, float32 ``[2, 3, 224, 224]`` (generator tensor
  ``"input"``, see below),
* ``expected.json`` -- per model (``resnet18`` with ``num_classes=10``, ``resnet50`` with
  ``num_classes=12``): PyTorch's logits for ``inputs.npy`` (torchvision model, eval mode, f32,
  one thread), the sha256 of the generated state_dict and a few sample values,
* ``image.png`` -- a synthetic 300x260 RGB image; ``image.jpg`` -- the same, JPEG quality 90,
* ``expected.json["jpeg"]`` -- torchvision's tensor of ``image.jpg`` in summary (per-channel
  means, mean absolute difference to the PNG's tensor): JPEG decoders differ slightly,
* ``image_preprocessed.npy`` -- torchvision's ``Resize(256) -> CenterCrop(224) -> ToTensor ->
  Normalize(ImageNet)`` of ``PIL.Image.open("image.png")``, float32 ``[3, 224, 224]``.

Full ResNet weights are 45-100 MB, too big to commit, so the state_dict is not stored: every
value comes from a deterministic integer-hash generator that the Rust test helper
(``tests/resnet.rs``, ``generated_state_dict``) reproduces bit for bit:

    key(name)   = FNV-1a 32-bit hash of the tensor name's UTF-8 bytes
    x           = (i * 0x9E3779B1 + key) mod 2^32            for element i (row-major)
    x ^= x >> 16; x = x * 0x7FEB352D mod 2^32; x ^= x >> 15; x = x * 0x846CA68B mod 2^32;
    x ^= x >> 16                                              (Wellons' lowbias32)
    u           = x / 2^31 - 1                                exact in f64, in [-1, 1)
    value       = float32(center + u * spread)                f64 multiply, f64 add, one cast

    tensor                       center  spread
    conv weight [O, I, kh, kw]   0       sqrt(6 / (I*kh*kw))   (He-uniform)
    bn*.weight (gamma)           1       0.25
    bn*.bias (beta)              0       0.1
    bn*.running_mean             0       0.1
    bn*.running_var              1       0.5                   (so in [0.5, 1.5): positive)
    fc.weight [C, F]             0       1 / sqrt(F)
    fc.bias                      0       0.1
    "input" [2, 3, 224, 224]     0       2
    *.num_batches_tracked        int64 0

The checksum is sha256 over, in state_dict order and skipping ``num_batches_tracked``, each
tensor's name (UTF-8) followed by its float32 little-endian bytes.
"""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

MODELS = [("resnet18", 10), ("resnet50", 12)]
BATCH = 2
M32 = 0xFFFFFFFF


def fnv1a32(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def uniform(name: str, n: int) -> np.ndarray:
    """The generator's u in [-1, 1) for elements 0..n of tensor ``name``, as float64."""
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(fnv1a32(name))) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / float(1 << 31) - 1.0


def center_spread(name: str, shape) -> tuple[float, float]:
    leaf = name.rsplit(".", 1)[-1]
    if name == "input":
        return 0.0, 2.0
    if name == "fc.weight":
        return 0.0, 1.0 / math.sqrt(shape[1])
    if name == "fc.bias":
        return 0.0, 0.1
    if len(shape) == 4:
        return 0.0, math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
    return {"weight": (1.0, 0.25), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1),
            "running_var": (1.0, 0.5)}[leaf]


def generated(name: str, shape) -> np.ndarray:
    center, spread = center_spread(name, shape)
    n = int(np.prod(shape)) if len(shape) else 1
    return (center + uniform(name, n) * spread).astype(np.float32).reshape(shape)


def generated_state_dict(model: torch.nn.Module) -> dict:
    sd = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.zeros_like(t)
        else:
            sd[name] = torch.from_numpy(generated(name, tuple(t.shape)))
    return sd


def checksum(sd: dict) -> str:
    h = hashlib.sha256()
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        h.update(name.encode("utf-8"))
        h.update(t.numpy().astype("<f4").tobytes())
    return h.hexdigest()


def synthetic_image():
    """A 300x260 RGB image with gradients, stripes, a disc and sharp edges (deterministic)."""
    from PIL import Image

    w, h = 300, 260
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1)).astype(np.uint8)
    g = (y * 255 // (h - 1)).astype(np.uint8)
    b = np.where(((x // 7) + (y // 11)) % 2 == 0, 40, 215).astype(np.uint8)
    disc = (x - 170) ** 2 + (y - 120) ** 2 < 60 ** 2
    r = np.where(disc, 250, r).astype(np.uint8)
    g = np.where(disc, 30 + (x % 5) * 40, g).astype(np.uint8)
    b = np.where(disc & (y % 3 == 0), 0, b).astype(np.uint8)
    return Image.fromarray(np.stack([r, g, b], axis=-1), "RGB")


def make_resnet() -> None:
    import torchvision
    from torchvision import transforms

    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "resnet"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    x = generated("input", (BATCH, 3, 224, 224))
    np.save(out / "inputs.npy", x)
    expected = {"generator": "see scripts/resnet_fixtures.py", "inputs": "inputs.npy", "models": {}}
    for arch, classes in MODELS:
        model = getattr(torchvision.models, arch)(weights=None, num_classes=classes).eval()
        sd = generated_state_dict(model)
        model.load_state_dict(sd, strict=True)
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))
            # the f64 forward says how far f32 PyTorch itself is from exact
            logits64 = model.double()(torch.from_numpy(x).double())
        rel = float((logits.double() - logits64).norm() / logits64.norm())
        assert torch.isfinite(logits).all() and float(logits.abs().max()) > 0.1, logits
        assert rel < 1e-5, rel
        samples = {n: [[i, float(sd[n].flatten()[i])] for i in (0, 1, sd[n].numel() - 1)]
                   for n in ("conv1.weight", "bn1.running_var", "layer1.0.bn1.weight", "fc.bias")}
        expected["models"][arch] = {
            "num_classes": classes,
            "state_dict_sha256": checksum(sd),
            "num_tensors": len(sd),
            "samples": samples,
            "logits": logits.tolist(),
            "f32_vs_f64_relative_error": rel,
        }
        print(f"{arch}: logits max |{float(logits.abs().max()):.3f}|, torch f32 vs f64 rel {rel:.2e}")

    img = synthetic_image()
    img.save(out / "image.png", optimize=True)
    img.save(out / "image.jpg", quality=90)
    from PIL import Image

    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    with Image.open(out / "image.png") as im:
        pre = tf(im).numpy().astype(np.float32)
    np.save(out / "image_preprocessed.npy", pre)
    # JPEG decoders differ (IDCT, chroma upsampling), so for image.jpg only summary numbers
    # of torchvision's tensor are kept: per-channel means and the mean |jpeg - png|.
    with Image.open(out / "image.jpg") as im:
        pre_jpg = tf(im).numpy().astype(np.float32)
    expected["jpeg"] = {
        "channel_means": [float(pre_jpg[c].mean()) for c in range(3)],
        "mean_abs_diff_to_png": float(np.abs(pre_jpg - pre).mean()),
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"resnet fixtures: {total / 1e6:.2f} MB in {out}")
