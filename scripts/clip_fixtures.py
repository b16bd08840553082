"""Fixtures of tests/clip.rs: a random small CLIPModel made with transformers, a tiny byte-level
BPE tokenizer with CLIP's special tokens, its preprocessor_config.json, and the expected
(L2-normalised) text and image embeddings.

    python scripts/clip_fixtures.py   # writes tests/fixtures/clip/

The image processor is CLIP's PIL backend with `resample` 2 (bilinear): torchless reproduces
Pillow's bilinear filter bit for bit and refuses the hub default 3 (bicubic) by name.
"""

import json
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
from transformers import CLIPConfig, CLIPModel, CLIPTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
OUT = os.path.join(ROOT, "clip")
TEXTS = ["a photo of a cat", "a red car on the road", "", "hello world hello"]


def tokenizer():
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["a photo of a cat", "a photo of a dog", "the red car on the road", "hello world"] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    tok.save(os.path.join(OUT, "tokenizer.json"))
    return tok, bos, eos


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    tok, bos, eos = tokenizer()
    ids = [tok.encode(t).ids for t in TEXTS]
    fast = CLIPTokenizerFast(tokenizer_file=os.path.join(OUT, "tokenizer.json"))
    fast_ids = [fast(t)["input_ids"] for t in TEXTS]
    assert fast_ids == ids, (fast_ids, ids)
    vocab = tok.get_vocab_size()
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
            projection_dim=16,
        ),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, projection_dim=16,
        ),
        projection_dim=16,
        architectures=["CLIPModel"],
        initializer_factor=1.0,
    )
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(OUT)
    st = os.path.join(OUT, "model.safetensors")
    state_dict = load_file(st)
    os.remove(st)
    torch.save(state_dict, os.path.join(OUT, "pytorch_model.bin"))
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, resample=2
    )
    proc.save_pretrained(OUT)

    image = Image.open(os.path.join(ROOT, "resnet", "image.png")).convert("RGB")
    pixels = proc(image, return_tensors="pt")["pixel_values"].float()
    batch = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    np.save(os.path.join(OUT, "inputs.npy"), batch.numpy().astype("<f4"))
    with torch.no_grad():
        text = []
        for i in ids:
            out = model(input_ids=torch.tensor([i]), pixel_values=pixels)
            text.append(out.text_embeds[0].tolist())
        image_embeds = model(input_ids=torch.tensor([ids[0]]), pixel_values=pixels).image_embeds
        feats = model.get_image_features(pixel_values=batch)
        feats = getattr(feats, "pooler_output", feats)
        batch_embeds = feats / feats.norm(dim=-1, keepdim=True)
    expected = {
        "generator": "see scripts/clip_fixtures.py",
        "texts": TEXTS,
        "ids": ids,
        "text_embeds": text,
        "inputs": "inputs.npy",
        "input_embeds": batch_embeds.tolist(),
        "image": "../resnet/image.png",
        "image_pixel_values": pixels[0].flatten().tolist(),
        "image_embeds": image_embeds.tolist(),
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")


if __name__ == "__main__":
    main()
