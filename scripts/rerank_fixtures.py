"""Reranking / text-classification fixtures for the torchless ``TextClassifier`` tests
(``make_rerank()``).

Writes ``tests/fixtures/rerank/`` (about 450 KB), reusing the committed tokenizers (no hub):

* ``bert-reranker/`` -- a randomly initialised 2-layer, 32-wide ``BertForSequenceClassification``
  with ``num_labels=1`` (a cross-encoder reranker: ``bert.`` encoder + ``bert.pooler`` +
  ``classifier``), the tokenizer files of ``tests/fixtures/bert/`` (truncation at 64 tokens),
  ``model.safetensors``,
* ``xlmr-classifier/`` -- a randomly initialised 2-layer, 32-wide
  ``XLMRobertaForSequenceClassification`` with ``num_labels=3`` and an ``id2label``
  (``roberta.`` encoder + ``classifier.dense`` / ``classifier.out_proj``), the tokenizer of
  ``tests/fixtures/xlmr/tiny-st/`` (truncation at 38 tokens), ``model.safetensors``,
* ``modernbert-reranker/`` -- a randomly initialised 3-layer (global, local, global; window 8),
  32-wide ``ModernBertForSequenceClassification`` with ``num_labels=1`` and
  ``classifier_pooling="mean"`` (``model.`` encoder + ``head.dense`` / ``head.norm`` +
  ``classifier``), the tokenizer of ``tests/fixtures/modernbert/tiny-st/`` (no token types,
  truncation at 40 tokens), eager attention, ``model.safetensors``,
* ``expected.json`` -- for ``pairs`` (query, document; non-ASCII and truncated ones included)
  and ``texts``: per model the pair/text token ids, the transformers model's raw logits, and
  sentence-transformers ``CrossEncoder(folder).predict`` scores (sigmoid for the 1-label
  reranker, identity for the 3-label classifier, plus ``apply_softmax=True``),
* ``documents.json`` -- the pairs' documents (the CLI example's input), ``README.md``.

Weights: ``bert_init_weights`` values (N(0, 0.2) matrices), so the scores spread out.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
RERANK_OUT = FIXTURES / "rerank"
RERANK_SEED = 20250901

QUERY = "how do transformers read text?"
DOCUMENTS = [
    "The model reads the sentence one token at a time and attends to every other token.",
    "Le modèle lit la phrase, jeton après jeton — ¿y después? 東京 über alles.",
    "Bananas are yellow.",
    " ".join(["a long document that repeats the same words over and over again"] * 8),
    "",
]
PAIRS = [(QUERY, d) for d in DOCUMENTS] + [("naïve café query", "Straße, crème brûlée and jalapeño.")]
TEXTS = [
    "A sentence to classify.",
    "Une phrase à classer — très bien!",
    " ".join(["long text"] * 40),
]
XLMR_LABELS = {0: "negative", 1: "neutral", 2: "positive"}

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              hidden_act="gelu")


def bert_init_weights(model: torch.nn.Module, gen: torch.Generator) -> None:
    """As ``make_fixtures.bert_init_weights``: matrices N(0, 0.2), biases N(0, 0.1), LayerNorm
    weights U(0.5, 1.5) and biases N(0, 0.2), in ``named_parameters`` order."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif "LayerNorm" in name or p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _floats(t) -> list:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return [float(x) for x in a.astype(np.float64).ravel()] if a.ndim == 1 else [_floats(r) for r in a]


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _folder(name, model, tok_src: Path, tok_files) -> Path:
    d = RERANK_OUT / name
    model.save_pretrained(str(d))
    for f in tok_files:
        shutil.copy(tok_src / f, d / f)
    return d


def _expected(d: Path, cls, max_len: int) -> dict:
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    model = cls.from_pretrained(str(d)).eval()
    tok = AutoTokenizer.from_pretrained(str(d))
    ce = CrossEncoder(str(d), device="cpu")
    assert ce.max_seq_length == max_len, ce.max_seq_length
    out = {"num_labels": model.config.num_labels, "max_length": max_len,
           "activation": type(ce.activation_fn).__name__, "pairs": [], "texts": []}
    with torch.inference_mode():
        for q, doc in PAIRS:
            # lists: `tok(q, "")` would drop an empty document (falsy text_pair); CrossEncoder
            # and the tokenizers library keep it as an empty second segment
            enc = tok([q], [doc], truncation=True, max_length=max_len, return_tensors="pt")
            full = tok([q], [doc])["input_ids"][0]
            logits = model(**enc).logits[0]
            out["pairs"].append({"input_ids": [int(i) for i in enc["input_ids"][0]],
                                 "truncated": len(full) > max_len, "logits": _floats(logits)})
        for t in TEXTS:
            enc = tok(t, truncation=True, max_length=max_len, return_tensors="pt")
            logits = model(**enc).logits[0]
            out["texts"].append({"input_ids": [int(i) for i in enc["input_ids"][0]],
                                 "logits": _floats(logits)})
        scores = ce.predict(PAIRS, batch_size=len(PAIRS), convert_to_numpy=True)
        out["scores"] = _floats(scores)
        if model.config.num_labels > 1:
            out["softmax"] = _floats(ce.predict(PAIRS, apply_softmax=True, convert_to_numpy=True))
        # the batched CrossEncoder agrees with the single-pair transformers logits
        act = ce.activation_fn
        for p, s in zip(out["pairs"], scores):
            want = act(torch.tensor(p["logits"])).numpy()
            assert np.abs(np.asarray(s).ravel() - want.ravel()).max() < 1e-5, (s, want)
    assert any(p["truncated"] for p in out["pairs"]), "no truncated pair"
    return out


def modernbert_init_weights(model: torch.nn.Module, gen: torch.Generator) -> None:
    """As ``modernbert_fixtures.init_weights``: norm weights U(0.5, 1.5), everything else
    N(0, 0.2), in ``named_parameters`` order."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def make_rerank() -> None:
    from transformers import (BertConfig, BertForSequenceClassification, ModernBertConfig,
                              ModernBertForSequenceClassification, XLMRobertaConfig,
                              XLMRobertaForSequenceClassification)

    if RERANK_OUT.exists():
        shutil.rmtree(RERANK_OUT)
    RERANK_OUT.mkdir(parents=True)
    torch.manual_seed(RERANK_SEED)

    bcfg = BertConfig(vocab_size=1200, pad_token_id=0, max_position_embeddings=64, type_vocab_size=2,
                      layer_norm_eps=1e-12, num_labels=1,
                      architectures=["BertForSequenceClassification"], **COMMON)
    bert = BertForSequenceClassification(bcfg).eval()
    bert_init_weights(bert, torch.Generator().manual_seed(RERANK_SEED))
    assert all(k.startswith(("bert.", "classifier.")) for k in bert.state_dict())
    bdir = _folder("bert-reranker", bert, FIXTURES / "bert",
                   ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"])

    xcfg = XLMRobertaConfig(vocab_size=486, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5,
                            num_labels=3, id2label=XLMR_LABELS,
                            label2id={v: k for k, v in XLMR_LABELS.items()},
                            architectures=["XLMRobertaForSequenceClassification"], **COMMON)
    xlmr = XLMRobertaForSequenceClassification(xcfg).eval()
    bert_init_weights(xlmr, torch.Generator().manual_seed(RERANK_SEED + 1))
    assert all(k.startswith(("roberta.", "classifier.")) for k in xlmr.state_dict())
    xdir = _folder("xlmr-classifier", xlmr, FIXTURES / "xlmr" / "tiny-st",
                   ["tokenizer.json", "tokenizer_config.json"])

    mcfg = ModernBertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=3,
                            num_attention_heads=4, intermediate_size=48, max_position_embeddings=64,
                            global_attn_every_n_layers=2, local_attention=8,
                            global_rope_theta=160000.0, local_rope_theta=1000.0,
                            hidden_activation="gelu", norm_eps=1e-5, pad_token_id=0, cls_token_id=2,
                            sep_token_id=3, bos_token_id=2, eos_token_id=3, num_labels=1,
                            classifier_pooling="mean", attn_implementation="eager",
                            architectures=["ModernBertForSequenceClassification"])
    modern = ModernBertForSequenceClassification(mcfg).eval()
    modernbert_init_weights(modern, torch.Generator().manual_seed(RERANK_SEED + 2))
    assert all(k.startswith(("model.", "head.", "classifier.")) for k in modern.state_dict())
    mdir = _folder("modernbert-reranker", modern, FIXTURES / "modernbert" / "tiny-st",
                   ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"])

    expected = {
        "query": QUERY,
        "pairs": [list(p) for p in PAIRS],
        "texts": TEXTS,
        "bert-reranker": _expected(bdir, BertForSequenceClassification, 64),
        "xlmr-classifier": _expected(xdir, XLMRobertaForSequenceClassification, 38),
        "modernbert-reranker": _expected(mdir, ModernBertForSequenceClassification, 40),
    }
    expected["xlmr-classifier"]["id2label"] = {str(k): v for k, v in XLMR_LABELS.items()}
    _write_json(RERANK_OUT / "expected.json", expected)
    _write_json(RERANK_OUT / "documents.json", DOCUMENTS)
    readme = "# Reranking / text-classification fixtures\n\nMade by `scripts/make_fixtures.py rerank` " \
        "(`scripts/rerank_fixtures.py`), read by `tests/rerank.rs`.\n\n"
    (RERANK_OUT / "README.md").write_text(readme + __doc__.split("\n\n", 1)[1].replace("``", "`"),
                                          encoding="utf-8")
    size = sum(p.stat().st_size for p in RERANK_OUT.rglob("*") if p.is_file())
    assert size < 900_000, size
    print(f"rerank: {RERANK_OUT.relative_to(ROOT)}: {size} bytes")
    for name in ("bert-reranker", "xlmr-classifier", "modernbert-reranker"):
        e = expected[name]
        print(f"  {name}: activation {e['activation']}, scores {e['scores']}")
        for p in e["pairs"]:
            print(f"    {len(p['input_ids']):>3} truncated={p['truncated']}")
