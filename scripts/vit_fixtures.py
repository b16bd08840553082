"""Fixtures of tests/vit.rs: a random small ViTForImageClassification made with transformers,
its preprocessor_config.json, and the expected logits / pixel values.

    python scripts/vit_fixtures.py   # writes tests/fixtures/vit/

transformers' `ViTImageProcessor` is its torchvision backend; without torchvision it falls back to
`ViTImageProcessorPil` (PIL resize), which is what torchless reproduces bit for bit: that class
is used directly here.
"""

import json
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import ViTConfig, ViTForImageClassification
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
OUT = os.path.join(ROOT, "vit")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    labels = ["cat", "dog", "bird", "fish", "frog"]
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        num_labels=5,
        id2label={i: l for i, l in enumerate(labels)},
        label2id={l: i for i, l in enumerate(labels)},
        architectures=["ViTForImageClassification"],
        initializer_range=0.3,
    )
    model = ViTForImageClassification(config).eval()
    # Non-trivial LayerNorm, CLS and position parameters (init leaves them 1/0/small).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias") or "cls_token" in name or "position" in name:
                p.copy_(0.1 * torch.randn_like(p))
    # save_pretrained writes the hub's state_dict names (`vit.encoder.layer.N.attention.
    # attention.query`, ...), not transformers 5's in-memory ones (`vit.layers.N.attention.q_proj`).
    # transformers 5 writes safetensors whatever safe_serialization says: re-saved as a PyTorch
    # pickle (`pytorch_model.bin`, the names unchanged) so the `.bin` path is exercised.
    model.save_pretrained(OUT)
    st = os.path.join(OUT, "model.safetensors")
    state_dict = load_file(st)
    os.remove(st)
    torch.save(state_dict, os.path.join(OUT, "pytorch_model.bin"))
    proc = ViTImageProcessorPil(size={"height": 32, "width": 32})
    proc.save_pretrained(OUT)

    image = Image.open(os.path.join(ROOT, "resnet", "image.png")).convert("RGB")
    pixels = proc(image, return_tensors="pt")["pixel_values"].float()
    batch = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    np.save(os.path.join(OUT, "inputs.npy"), batch.numpy().astype("<f4"))
    with torch.no_grad():
        logits = model(pixel_values=batch).logits
        image_logits = model(pixel_values=pixels).logits
    expected = {
        "generator": "see scripts/vit_fixtures.py",
        "inputs": "inputs.npy",
        "image": "../resnet/image.png",
        "logits": logits.tolist(),
        "image_pixel_values": pixels[0].flatten().tolist(),
        "image_logits": image_logits.tolist(),
        "labels": labels,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")


if __name__ == "__main__":
    main()
