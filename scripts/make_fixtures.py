#!/usr/bin/env python3
"""Generate the model-family fixtures used by the torchless encoder tests.

Dev-only helper; the Rust tests never run it, they only read what it wrote.
Paths are relative to this file: everything lands under ``tests/fixtures/``
of the repository this script lives in.  One function per model family
(``make_bert()`` for now); ``main()`` calls them all.

``make_bert()`` writes ``tests/fixtures/bert/`` (about 1 MB in all):

* a tiny WordPiece tokenizer (``tokenizers`` library model, BERT normalizer,
  pre-tokenizer and post-processor) whose 1200-token vocabulary is learnt on a
  seeded English corpus kept in this file plus the test sentences
  (``tokenizer.json``, ``vocab.txt``, ``tokenizer_config.json``,
  ``special_tokens_map.json``).  The vocabulary is learnt by a small
  deterministic copy of the library's ``WordPieceTrainer`` algorithm, because
  the library trainer breaks ties in a randomly seeded order (see
  ``bert_learn_wordpiece_vocab``),
* ``tiny-st/`` -- a sentence-transformers folder (Transformer with
  max_seq_length 24, mean Pooling, Normalize) around a randomly initialised
  2-layer, 32-wide ``BertModel``; weights as ``pytorch_model.bin`` only,
* ``tiny-bert-prefixed/`` -- the same encoder weights as a
  ``BertForMaskedLM`` checkpoint (``bert.``-prefixed keys plus the ``cls.``
  MLM head), no sentence-transformers files,
* ``sentences.json`` and ``expected.json`` -- the test sentences and what
  real PyTorch + sentence-transformers compute for them (token ids, last
  hidden states single and padded-batch, pooled outputs, embeddings),
* ``README.md`` -- every file and the JSON schema.

Usage (needs torch, transformers 5, sentence-transformers 6, tokenizers,
numpy)::

    /work/venv/bin/python scripts/make_fixtures.py            # all families
    /work/venv/bin/python scripts/make_fixtures.py bert       # just one
    /work/venv/bin/python scripts/make_fixtures.py decoders qwen3  # one decoder, merged in

Everything is seeded and computed on CPU with one thread; the output folder is
deleted and rewritten on each run, and a re-run with the same library versions
gives byte-identical files.  The script asserts its own invariants (tokenizer
files agree with each other, the saved folders load back through
sentence-transformers / transformers and reproduce the in-memory outputs,
single and padded-batch hidden states agree) and fails loudly otherwise.
"""

import json
import os
import random
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------


def write_json(path: Path, obj, indent=None) -> None:
    """Deterministic JSON: UTF-8, non-ASCII kept verbatim, trailing newline."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    path.write_text(text + "\n", encoding="utf-8")


def floats(t) -> list:
    """A float32 tensor / array as nested lists of Python floats.

    ``float(np.float32)`` is the exact value of the float32 widened to f64, so
    its repr parses back (as f64, or straight to f32) to the very same float32.
    """
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    assert a.dtype == np.float32, a.dtype
    return a.astype(np.float64).tolist()


def ints(t) -> list:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return a.astype(np.int64).tolist()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------
# BERT / sentence-transformers
# --------------------------------------------------------------------------

BERT_OUT = FIXTURES / "bert"
BERT_SEED = 20240601
BERT_VOCAB_SIZE = 1200  # trainer target (reached); also written to expected.json
BERT_MAX_SEQ_LENGTH = 24  # sentence-transformers max_seq_length (sentence_bert_config.json)
BERT_TOKENIZER_MAX_LENGTH = 64  # tokenizer.json truncation + tokenizer_config model_max_length
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    type_vocab_size=2,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
)

BERT_SENTENCES = [
    "",
    "Hello world",
    "Café naïve résumé à l'été",
    "你好，世界。東京は晴れ",
    "I love 🦀 and 🐍!",
    "  The QUICK Fox -- (jumps)?!\tIt's 3.14 @home\n",
    "In the early morning light the old lighthouse keeper climbed the narrow spiral "
    "staircase once again, counting every worn stone step as he went, listening to the "
    "restless waves crashing against the black rocks far below, and quietly wondering "
    "whether the supply ship from the mainland would finally arrive before the bitter "
    "winter storms closed the little harbour for another long, dark and unbelievably "
    "lonely season of waiting, mending nets and reading old letters by candlelight.",
    "Unbelievably, xylophones split into ##pieces.",
]

# Characters kept out of the tokenizer's training text so they map to [UNK].
BERT_UNSEEN = "🐍"

BERT_CORPUS = """
The weather was cold and grey when we left the city, but by noon the sun had come out.
A small boat drifted slowly across the lake while children played on the sandy shore.
She opened the window, looked at the garden and decided to plant tomatoes this year.
Programming languages such as Rust, Python and C help people build reliable software.
The compiler checks every borrow, every lifetime and every type before the program runs.
Neural networks learn patterns from data by adjusting millions of small numbers.
A transformer model reads a sentence, splits it into tokens and computes embeddings.
Attention lets each token look at every other token and decide what matters most.
Sentence embeddings map similar meanings to nearby points in a vector space.
The library loads weights from a checkpoint file and runs the model on the processor.
Tests compare the output of the new implementation against the reference values.
My grandmother baked fresh bread every Sunday morning and the whole house smelled wonderful.
The train to the mountains leaves at seven, so we should pack our bags tonight.
He bought apples, oranges, bananas, grapes and a large watermelon at the market.
The museum displays ancient pottery, golden jewellery and paintings from many centuries.
During the storm the power went out and we told stories by the light of a candle.
Scientists measured the temperature of the ocean at different depths for ten years.
The doctor listened carefully, wrote a prescription and told him to rest for a week.
Students gathered in the library to prepare for the final examination in mathematics.
The river flows through the valley, past the old mill and into the quiet village.
Our team won the championship after a long season of hard work and practice.
Please remember to water the plants, feed the cat and lock the door when you leave.
Music filled the hall as the orchestra played a famous symphony by a German composer.
The engineer designed a bridge strong enough to carry heavy trucks across the canyon.
Farmers harvest wheat in late summer when the fields turn a deep golden colour.
A curious fox crept through the forest, sniffing the ground for something to eat.
The quick brown fox jumps over the lazy dog, and the dog does not seem to mind.
Hello to everyone who joined the meeting today; we have a lot to discuss.
Thank you for your patience while we fix the problem with the network connection.
The café on the corner serves excellent coffee, croissants and a delicious cake.
Travelling abroad teaches you new languages, new foods and new ways of thinking.
In Tokyo the streets are busy, the trains are punctual and the food is wonderful.
The children built a snowman with a carrot nose, two buttons and an old scarf.
Every good story has a beginning, a middle and an end that surprises the reader.
The astronaut looked back at the blue planet and felt small and grateful at once.
Our neighbours are painting their house yellow, which makes the whole street brighter.
The recipe asks for two cups of flour, three eggs, some sugar and a pinch of salt.
When the lights went down, the audience fell silent and the performance began.
Good documentation explains what the code does, why it exists and how to use it.
The mechanic repaired the engine, replaced the brakes and checked the tyres.
Birds migrate south for the winter, flying thousands of kilometres without rest.
The painter mixed blue and yellow to create a bright green for the spring meadow.
Memory safety and speed are the main reasons many developers choose systems languages.
A matrix multiplication combines rows and columns to produce a new matrix of numbers.
The layer normalization rescales each vector using its mean and its variance.
Pooling averages the token vectors so that every sentence gets one fixed embedding.
Tokenizers lowercase the text, strip accents and split words into smaller pieces.
Unbelievable results require careful checking, honest reporting and independent review.
The lighthouse keeper climbed the stairs, lit the lamp and watched the ships pass.
Letters from the mainland arrived once a month, carried by a small supply boat.
The harbour was quiet in winter, with only a few fishermen mending their nets.
Rare words are split into pieces, and unknown symbols become a special token.
Résumé writing is a skill: keep it short, clear and honest about your experience.
The naïve approach works for small inputs but becomes slow for large problems.
Summer evenings on the terrace, with friends, music and a glass of lemonade, are the best.
She counted the steps: one, two, three, four, five, and then she stopped to rest.
Crabs walk sideways along the beach, and snakes hide under warm stones in the desert.
I love reading books about history, especially stories of explorers and inventors.
Early mornings are peaceful, before the noise of traffic fills the streets again.
The storm closed the roads, so the village waited for the snow ploughs to arrive.
A season of waiting can feel endless, yet spring always comes back in the end.
""".strip().splitlines()


def bert_training_text() -> list[str]:
    """The seeded training corpus: the prose above, reshuffled word salads of it
    (to vary the pair frequencies deterministically), and the test sentences with
    BERT_UNSEEN removed."""
    rng = random.Random(BERT_SEED)
    lines = list(BERT_CORPUS)
    words = " ".join(BERT_CORPUS).split()
    for _ in range(400):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(6, 16))))
    for s in BERT_SENTENCES:
        lines.append("".join(c for c in s if c not in BERT_UNSEEN))
    rng.shuffle(lines)
    return lines


def bert_learn_wordpiece_vocab(normalizer, pre_tokenizer, lines, vocab_size, min_frequency) -> list[str]:
    """The WordPiece vocabulary ``tokenizers.trainers.WordPieceTrainer`` learns, but deterministic.

    The library trainer is BPE with a ``##`` continuation prefix: start from every character
    (word-initial form ``c`` and, for characters seen inside words, ``##c``), then repeatedly add
    the most frequent adjacent pair (count >= min_frequency) as a new token ``a + b[2:]``. It
    breaks count ties by internal ids that depend on Rust ``HashMap`` iteration order, which is
    randomly seeded per process, so its vocabulary differs from run to run (symmetric difference
    of 24-30 of ~1200 tokens in practice). This does the same, with ties broken as the library does (the pair of older
    tokens first: specials, characters in code-point order, ``##`` characters in code-point
    order -- the library's random part --, then merges in creation order).
    Words are normalised and pre-tokenised by the library's own BERT normalizer / pre-tokenizer.
    """
    counts: dict[str, int] = {}
    for line in lines:
        for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)):
            counts[w] = counts.get(w, 0) + 1
    words = [([w[0]] + ["##" + c for c in w[1:]], n) for w, n in sorted(counts.items())]
    vocab = list(BERT_SPECIAL)
    vocab += sorted({c for w in counts for c in w})
    vocab += sorted({"##" + c for w in counts for c in w[1:]})
    ids = {t: i for i, t in enumerate(vocab)}
    while len(vocab) < vocab_size:
        pairs: dict[tuple[str, str], int] = {}
        for syms, n in words:
            for pair in zip(syms, syms[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], ids[p[0]], ids[p[1]]))
        if pairs[best] < min_frequency:
            break
        a, b = best
        merged = a + b[2:]
        if merged not in ids:
            ids[merged] = len(vocab)
            vocab.append(merged)
        for syms, _ in words:
            i = 0
            while i < len(syms) - 1:
                if syms[i] == a and syms[i + 1] == b:
                    syms[i:i + 2] = [merged]
                i += 1
    return vocab


def bert_train_tokenizer():
    """A tokenizers-library WordPiece tokenizer with the standard BERT pipeline, its
    vocabulary learnt by ``bert_learn_wordpiece_vocab`` from ``bert_training_text()``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = bert_learn_wordpiece_vocab(normalizer, pre_tokenizer, bert_training_text(),
                                       BERT_VOCAB_SIZE, min_frequency=2)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                     continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.add_special_tokens(BERT_SPECIAL)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep_id), ("[CLS]", cls_id))
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.enable_truncation(max_length=BERT_TOKENIZER_MAX_LENGTH)
    got = tok.get_vocab()
    assert got == {t: i for i, t in enumerate(vocab)}, "vocab changed when building the tokenizer"
    assert [got[t] for t in BERT_SPECIAL] == [0, 1, 2, 3, 4]
    assert BERT_UNSEEN not in got and "##" + BERT_UNSEEN not in got
    return tok


def bert_write_tokenizer_files(tok, folder: Path, raw_tokenizer_json: bool) -> None:
    """Tokenizer files as a transformers ``BertTokenizerFast`` save leaves them.

    transformers 5 (where ``BertTokenizerFast`` is an alias of ``BertTokenizer``)
    only writes ``tokenizer.json`` + ``tokenizer_config.json`` and rebuilds the
    post-processor as a ``TemplateProcessing``; ``vocab.txt`` and
    ``special_tokens_map.json`` are written here in the transformers 4 format.
    With ``raw_tokenizer_json`` the ``tokenizer.json`` is instead the
    tokenizers-library save of ``tok`` itself (``BertProcessing`` post-processor).
    """
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    fast = BertTokenizerFast(
        tokenizer_object=tok, do_lower_case=True, unk_token="[UNK]", sep_token="[SEP]",
        pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
        model_max_length=BERT_TOKENIZER_MAX_LENGTH)
    with tempfile.TemporaryDirectory() as tmp:
        saved = sorted(Path(p).name for p in fast.save_pretrained(tmp))
        assert saved == ["tokenizer.json", "tokenizer_config.json"], saved
        shutil.copy(Path(tmp) / "tokenizer_config.json", folder / "tokenizer_config.json")
        if raw_tokenizer_json:
            tok.save(str(folder / "tokenizer.json"), pretty=True)
        else:
            shutil.copy(Path(tmp) / "tokenizer.json", folder / "tokenizer.json")
    vocab = tok.get_vocab()
    by_id = sorted(vocab, key=vocab.get)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in by_id), encoding="utf-8")
    write_json(folder / "special_tokens_map.json",
               {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]",
                "sep_token": "[SEP]", "unk_token": "[UNK]"}, indent=2)


def bert_init_weights(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial values everywhere, in ``named_parameters`` order: matrices
    (and embedding tables) N(0, 0.2), biases N(0, 0.1), LayerNorm weights
    U(0.5, 1.5) and LayerNorm biases N(0, 0.2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif "LayerNorm" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def bert_check_tokenizers(sentences, reference: list[dict], paths: list[Path]) -> None:
    """Every saved tokenizer file set encodes the sentences to the same ids."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, BertTokenizerFast

    def cut(enc: dict) -> dict:
        return {k: enc[k][:BERT_MAX_SEQ_LENGTH - 1] + enc[k][-1:] if len(enc[k]) > BERT_MAX_SEQ_LENGTH
                else enc[k] for k in enc}

    for folder in paths:
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        raw.no_truncation()
        auto = AutoTokenizer.from_pretrained(str(folder))
        assert auto.model_max_length == BERT_TOKENIZER_MAX_LENGTH, (folder, auto.model_max_length)
        from_vocab = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
        for s, ref in zip(sentences, reference):
            e = raw.encode(s)
            full = {"input_ids": e.ids, "token_type_ids": e.type_ids, "attention_mask": e.attention_mask}
            assert cut(full) == ref, (folder, s, full, ref)
            for hf in (auto, from_vocab):
                got = hf(s, truncation=True, max_length=BERT_MAX_SEQ_LENGTH)
                got = {k: got[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
                assert got == ref, (folder, s, got, ref)


def make_bert() -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertForMaskedLM, BertModel

    out = BERT_OUT
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(BERT_SEED)
    random.seed(BERT_SEED)
    np.random.seed(BERT_SEED)
    sentences = BERT_SENTENCES
    write_json(out / "sentences.json", sentences, indent=2)

    # ---- tokenizer --------------------------------------------------------
    tok = bert_train_tokenizer()
    vocab_size = tok.get_vocab_size()
    bert_write_tokenizer_files(tok, out, raw_tokenizer_json=True)

    # ---- model ------------------------------------------------------------
    config = BertConfig(vocab_size=vocab_size, pad_token_id=0, **BERT_CONFIG)
    torch.manual_seed(BERT_SEED)
    bert = BertModel(config).eval()
    bert_init_weights(bert, torch.Generator().manual_seed(BERT_SEED))
    state = {k: v.clone().contiguous() for k, v in bert.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in state.values())
    assert list(state) == [k for k, _ in bert.named_parameters()], "state_dict is not just parameters"
    assert "pooler.dense.weight" in state and "embeddings.word_embeddings.weight" in state
    assert bert.config._attn_implementation == "sdpa", bert.config._attn_implementation

    # ---- tiny-st ----------------------------------------------------------
    st_dir = out / "tiny-st"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        bert.save_pretrained(str(base))
        bert_write_tokenizer_files(tok, base, raw_tokenizer_json=False)
        transformer = Transformer(str(base), max_seq_length=BERT_MAX_SEQ_LENGTH)
        # The ST copy must carry exactly our weights.
        st_sd = transformer.auto_model.state_dict()
        assert st_sd.keys() == state.keys()
        assert all(torch.equal(st_sd[k], state[k]) for k in state)
        st = SentenceTransformer(modules=[transformer, Pooling(config.hidden_size, pooling_mode="mean"),
                                          Normalize()], device="cpu").eval()
        st.save(str(st_dir))
    st_native = {p.relative_to(st_dir).as_posix(): p.stat().st_size
                 for p in sorted(st_dir.rglob("*")) if p.is_file()}
    # What sentence-transformers wrote, then the edits: weights as pytorch_model.bin only,
    # no model card, tokenizer files as for the other folders, max_seq_length in
    # sentence_bert_config.json (the classic key; ST 6 itself only puts it in
    # tokenizer_config.json's model_max_length, which we set to 64 instead).
    st_tok_cfg = json.loads((st_dir / "tokenizer_config.json").read_text())
    assert st_tok_cfg["model_max_length"] == BERT_MAX_SEQ_LENGTH, st_tok_cfg
    assert "max_seq_length" not in json.loads((st_dir / "sentence_bert_config.json").read_text())
    assert (st_dir / "2_Normalize" / "config.json").is_file()  # ST 6 writes a config there
    (st_dir / "model.safetensors").unlink()
    (st_dir / "README.md").unlink(missing_ok=True)
    torch.save(state, st_dir / "pytorch_model.bin")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (st_dir / f).unlink()
    bert_write_tokenizer_files(tok, st_dir, raw_tokenizer_json=False)
    sb_path = st_dir / "sentence_bert_config.json"
    sb = json.loads(sb_path.read_text())
    sb = {"max_seq_length": BERT_MAX_SEQ_LENGTH, "do_lower_case": False, **sb}
    sb_path.write_text(json.dumps(sb, indent=4) + "\n")

    # ---- tiny-bert-prefixed ------------------------------------------------
    pre_dir = out / "tiny-bert-prefixed"
    pre_dir.mkdir()
    mlm_config = BertConfig(vocab_size=vocab_size, pad_token_id=0, architectures=["BertForMaskedLM"],
                            **BERT_CONFIG)
    mlm = BertForMaskedLM(mlm_config).eval()
    bert_init_weights(mlm.cls, torch.Generator().manual_seed(BERT_SEED + 1))
    missing, unexpected = mlm.bert.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("pooler.")}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    mlm_state = mlm.state_dict()
    # decoder.weight is tied to the word embeddings (torch.save stores that storage once).
    assert mlm_state["cls.predictions.decoder.weight"].data_ptr() == \
        mlm_state["bert.embeddings.word_embeddings.weight"].data_ptr()
    assert mlm_state["cls.predictions.decoder.bias"].data_ptr() == \
        mlm_state["cls.predictions.bias"].data_ptr()
    assert not any(k.startswith("bert.pooler") for k in mlm_state)
    torch.save(mlm_state, pre_dir / "pytorch_model.bin")
    mlm_config.save_pretrained(str(pre_dir))
    bert_write_tokenizer_files(tok, pre_dir, raw_tokenizer_json=False)

    # ---- load everything back ---------------------------------------------
    for folder, sd in ((st_dir, state), (pre_dir, mlm_state)):
        loaded = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        assert list(loaded) == list(sd), folder
        assert all(torch.equal(loaded[k], sd[k]) for k in sd), folder
    st_loaded = SentenceTransformer(str(st_dir), device="cpu").eval()
    assert [type(m).__name__ for m in st_loaded] == ["Transformer", "Pooling", "Normalize"]
    assert st_loaded.max_seq_length == BERT_MAX_SEQ_LENGTH, st_loaded.max_seq_length
    ld = st_loaded[0].auto_model.state_dict()
    assert all(torch.equal(ld[k], state[k]) for k in state), "tiny-st weights did not round-trip"
    plain_loaded = SentenceTransformer(str(pre_dir), device="cpu").eval()
    assert [type(m).__name__ for m in plain_loaded] == ["Transformer", "Pooling"], list(plain_loaded)
    assert plain_loaded[1].pooling_mode == "mean"
    assert plain_loaded.max_seq_length == BERT_TOKENIZER_MAX_LENGTH, plain_loaded.max_seq_length
    mlm_loaded = BertForMaskedLM.from_pretrained(str(pre_dir)).eval()
    ld = mlm_loaded.state_dict()
    assert all(torch.equal(ld[k], mlm_state[k]) for k in mlm_state), "prefixed weights did not round-trip"

    # ---- expected values ----------------------------------------------------
    pools = {m: Pooling(config.hidden_size, pooling_mode=m) for m in ("mean", "cls", "max")}
    per_sentence = []
    single_hidden = []
    pooled_all = {k: [] for k in ("mean", "cls", "max", "mean_normalized")}
    with torch.inference_mode():
        for s in sentences:
            feats = st.preprocess([s])
            tokens = {k: ints(feats[k][0]) for k in ("input_ids", "token_type_ids", "attention_mask")}
            assert len(tokens["input_ids"]) <= BERT_MAX_SEQ_LENGTH and all(tokens["attention_mask"])
            hidden = st[0](dict(feats))["token_embeddings"]
            # same thing straight through the in-memory BertModel and the reloaded folders
            direct = bert(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                          token_type_ids=feats["token_type_ids"]).last_hidden_state
            assert torch.equal(hidden, direct), s
            for m in (st_loaded[0].auto_model, mlm_loaded.bert):
                again = m(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                          token_type_ids=feats["token_type_ids"]).last_hidden_state
                assert max_abs(again, hidden) <= 1e-6, (s, max_abs(again, hidden))
            pooled = {}
            for mode, pool in pools.items():
                pooled[mode] = pool({"token_embeddings": hidden,
                                     "attention_mask": feats["attention_mask"]})["sentence_embedding"][0]
            # the pooling semantics the README documents
            assert max_abs(pooled["mean"], hidden[0].mean(0)) <= 1e-6
            assert torch.equal(pooled["cls"], hidden[0, 0])
            assert torch.equal(pooled["max"], hidden[0].max(0).values)
            pooled["mean_normalized"] = F.normalize(pooled["mean"], p=2, dim=-1)
            single_hidden.append(hidden[0])
            for k, v in pooled.items():
                pooled_all[k].append(v)
            per_sentence.append({
                "text": s,
                "tokens": tokens,
                "token_strings": [tok.id_to_token(i) for i in tokens["input_ids"]],
                "last_hidden_state": floats(hidden[0]),
            })

        batch = st.preprocess(sentences)
        batch_loaded = st_loaded.preprocess(sentences)
        for k in ("input_ids", "token_type_ids", "attention_mask"):
            assert torch.equal(batch[k], batch_loaded[k]), k
        b_hidden = st[0](dict(batch))["token_embeddings"]
        assert b_hidden.shape[0] == len(sentences) and b_hidden.dtype == torch.float32
        batch_diff = 0.0
        for i, h in enumerate(single_hidden):
            n = h.shape[0]
            assert int(batch["attention_mask"][i].sum()) == n
            assert ints(batch["input_ids"][i][:n]) == per_sentence[i]["tokens"]["input_ids"]
            batch_diff = max(batch_diff, max_abs(b_hidden[i, :n], h))
        assert batch_diff < 1e-5, batch_diff

        embeddings = st.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                               normalize_embeddings=False)
        assert embeddings.dtype == np.float32 and embeddings.shape == (len(sentences), config.hidden_size)
        loaded_emb = st_loaded.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                                      normalize_embeddings=False)
        reload_diff = float(np.abs(loaded_emb.astype(np.float64) - embeddings).max())
        assert reload_diff <= 1e-6, reload_diff
        norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
        assert np.all(np.abs(norms - 1) < 1e-5), norms
        emb_vs_single = max(max_abs(torch.from_numpy(embeddings[i]), pooled_all["mean_normalized"][i])
                            for i in range(len(sentences)))
        assert emb_vs_single < 1e-5, emb_vs_single

        # The prefixed folder through sentence-transformers' defaults for a plain model:
        # tokenizer max length (64), mean pooling, no Normalize.
        plain_tokens = plain_loaded.preprocess(sentences)
        plain_emb = plain_loaded.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                                        normalize_embeddings=False)
        assert plain_emb.dtype == np.float32
        assert int(plain_tokens["attention_mask"].sum(1).max()) == BERT_TOKENIZER_MAX_LENGTH
        for i, p in enumerate(per_sentence):
            n = int(plain_tokens["attention_mask"][i].sum())
            if n <= BERT_MAX_SEQ_LENGTH:  # untruncated either way: same as tiny-st's mean pooling
                assert ints(plain_tokens["input_ids"][i][:n]) == p["tokens"]["input_ids"]
                d = max_abs(torch.from_numpy(plain_emb[i]), pooled_all["mean"][i])
                assert d < 1e-5, (i, d)

    expected = {
        "max_seq_length": BERT_MAX_SEQ_LENGTH,
        "hidden_size": config.hidden_size,
        "vocab_size": vocab_size,
        "tokenizer_max_length": BERT_TOKENIZER_MAX_LENGTH,
        "sentences": per_sentence,
        "batch": {
            "input_ids": ints(batch["input_ids"]),
            "token_type_ids": ints(batch["token_type_ids"]),
            "attention_mask": ints(batch["attention_mask"]),
            "last_hidden_state": floats(b_hidden),
        },
        "single_vs_batch_max_abs_diff": batch_diff,
        "pooled": {k: floats(torch.stack(v)) for k, v in pooled_all.items()},
        "embeddings": floats(embeddings),
        "plain_folder": {
            "folder": "tiny-bert-prefixed",
            "max_seq_length": BERT_TOKENIZER_MAX_LENGTH,
            "pooling": "mean",
            "normalize": False,
            "input_ids": ints(plain_tokens["input_ids"]),
            "attention_mask": ints(plain_tokens["attention_mask"]),
            "embeddings": floats(plain_emb),
        },
    }
    write_json(out / "expected.json", expected)

    # ---- the tokenizer files agree with each other and with ST ---------------
    raw_json = json.loads((out / "tokenizer.json").read_text())
    for folder in (st_dir, pre_dir):
        hf_json = json.loads((folder / "tokenizer.json").read_text())
        assert raw_json["post_processor"]["type"] == "BertProcessing"
        assert hf_json["post_processor"]["type"] == "TemplateProcessing"
        assert {k: v for k, v in raw_json.items() if k != "post_processor"} == \
            {k: v for k, v in hf_json.items() if k != "post_processor"}, folder
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        assert (st_dir / f).read_bytes() == (pre_dir / f).read_bytes(), f
    bert_check_tokenizers(sentences, [p["tokens"] for p in per_sentence], [out, st_dir, pre_dir])

    (out / "README.md").write_text(bert_readme(expected, st_native, state, mlm_state), encoding="utf-8")
    size = folder_size(out)
    assert size < 1_500_000, size
    print(f"bert: {out.relative_to(ROOT)}: {size} bytes, vocab {vocab_size}, "
          f"single-vs-batch max |diff| {batch_diff:.3g}, reload max |diff| {reload_diff:.3g}")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"  {p.stat().st_size:>8}  {p.relative_to(out).as_posix()}")


def bert_readme(expected: dict, st_native: dict, state: dict, mlm_state: dict) -> str:
    e = expected
    L, H, V, T64 = e["max_seq_length"], e["hidden_size"], e["vocab_size"], e["tokenizer_max_length"]
    B = len(e["sentences"])
    Tb = len(e["batch"]["input_ids"][0])

    def shape(t):
        return "[" + ", ".join(str(d) for d in t.shape) + "]"

    def key_table(sd):
        rows = [f"| `{k}` | {shape(v)} |" for k, v in sd.items() if ".layer.1." not in k]
        return "\n".join(["| key | shape |", "|---|---|", *rows])

    sentence_rows = []
    for i, snt in enumerate(e["sentences"]):
        n = len(snt["tokens"]["input_ids"])
        full = sum(e["plain_folder"]["attention_mask"][i])
        shown = " ".join(snt["token_strings"])
        note = f"{n}" + (f" (truncated; {full} at max length {T64})" if full > n else "")
        sentence_rows.append(f"| {i} | {json.dumps(snt['text'], ensure_ascii=False)} | {note} | `{shown}` |")
    native = "\n".join(f"  - `{k}`" for k in st_native)
    cfg = ", ".join(f"{k}={v!r}" for k, v in BERT_CONFIG.items())

    return f"""# BERT / sentence-transformers fixtures

Generated by `scripts/make_fixtures.py` (`make_bert()`); do not edit by hand, re-run
`/work/venv/bin/python scripts/make_fixtures.py bert` instead (seeded, CPU, one thread: the
output is byte-identical for the same torch / transformers / sentence-transformers /
tokenizers versions; the versions used are in `tiny-st/config_sentence_transformers.json`).
Everything is float32. The script asserts every consistency claim made below.

## Files

| path | what |
|---|---|
| `sentences.json` | JSON array of the {B} test sentences (strings), in the order used everywhere below |
| `expected.json` | reference outputs, schema below |
| `tokenizer.json` | the trained tokenizer as the `tokenizers` library saves it (`Tokenizer.save`, pretty-printed): `BertProcessing` post-processor |
| `vocab.txt` | the same vocabulary, one token per line, line number = id (0-based), `\\n`-terminated |
| `tokenizer_config.json` | as transformers 5 `BertTokenizerFast.save_pretrained` writes it (`model_max_length` {T64}) |
| `special_tokens_map.json` | `[CLS]` `[SEP]` `[PAD]` `[UNK]` `[MASK]`, transformers 4 format |
| `tiny-st/` | sentence-transformers model folder (details below) |
| `tiny-bert-prefixed/` | the same encoder as a `BertForMaskedLM` checkpoint (details below) |

## Tokenizer

A `tokenizers` `WordPiece` model (continuing-subword prefix `##`, unk `[UNK]`) with the BERT
normalizer / pre-tokenizer / post-processor. Its {V}-token vocabulary is learnt on the seeded
English corpus in the script plus the test sentences (with `🐍` removed from the training text so
that it stays unknown) by the algorithm of `tokenizers.trainers.WordPieceTrainer` (vocab_size
{V}, reached; min_frequency 2), re-implemented in the script (`bert_learn_wordpiece_vocab`)
because the library trainer breaks count ties in an order that changes from process to process
(Rust `HashMap` seeding), which made its vocabulary differ by 24-30 tokens (symmetric
difference) between runs. The result differs from a library run by a few dozen rarely used
tokens (38-54 in five runs checked), and every test sentence tokenizes exactly as with each of
those library runs.

* ids 0..4 are `[PAD]` `[UNK]` `[CLS]` `[SEP]` `[MASK]` (also listed in `added_tokens`, `special: true`,
  `normalized: false`); ids are contiguous 0..{V - 1}; `model.max_input_chars_per_word` = 100.
* normalizer `BertNormalizer {{clean_text: true, handle_chinese_chars: true, strip_accents: true,
  lowercase: true}}`: control chars dropped, whitespace (incl. `\\t`, `\\n`) -> space, spaces put
  around CJK ideographs (so `你` `好` `東` `京` `晴` are words of their own; the hiragana `は` `れ`
  are not ideographs but end up alone because their neighbours are), lowercased, NFD + combining
  marks removed (`Café naïve résumé à l'été` -> `cafe naive resume a l'ete`).
* pre-tokenizer `BertPreTokenizer`: split on whitespace, and every punctuation char
  (ASCII punctuation like `#` `@` `-` `'` plus Unicode P* like `，` `。`) is its own word.
* a word containing a character not in the vocabulary becomes a single `[UNK]` (`🐍`).
* post-processor: `[CLS] A [SEP]`, token_type_ids all 0 for a single sentence. The top-level
  `tokenizer.json` spells this `BertProcessing`; the copies inside `tiny-st/` and
  `tiny-bert-prefixed/` are what transformers 5 writes back, which replaces it by the equivalent
  `TemplateProcessing` (single `[CLS]:0 $A:0 [SEP]:0`, pair `... $B:1 [SEP]:1`). Otherwise the
  three `tokenizer.json` files are the same. All three file sets (raw `tokenizers`, transformers
  `AutoTokenizer`, and `BertTokenizerFast(vocab=vocab.txt)`) give the ids in `expected.json`.
* `tokenizer.json` has `truncation: {{max_length: {T64}, strategy: LongestFirst, direction: Right,
  stride: 0}}` and `padding: null`. This is deliberately NOT the sentence-transformers max length:
  `tiny-st` must be truncated at {L} (from `sentence_bert_config.json`). Truncation drops word pieces
  from the end and keeps the closing `[SEP]`.
* the empty string encodes to `[CLS] [SEP]` (2 tokens).

| # | text (JSON) | tokens (max {L}) | word pieces |
|---|---|---|---|
{chr(10).join(sentence_rows)}

## `tiny-st/` (sentence-transformers)

A randomly initialised `transformers.BertModel(BertConfig(vocab_size={V}, {cfg}))`
(dropout irrelevant: eval mode), wrapped as `Transformer(max_seq_length={L})` ->
`Pooling({H}, pooling_mode="mean")` -> `Normalize()` and saved with sentence-transformers 6.2
`SentenceTransformer.save`, which wrote:

{native}

then edited: `model.safetensors` deleted and replaced by `pytorch_model.bin`; the model card
`README.md` deleted; `tokenizer.json` / `tokenizer_config.json` replaced by the canonical ones
(ST had rewritten `model_max_length` to {L} and added `is_local` / `local_files_only`), plus
`vocab.txt` and `special_tokens_map.json`; `"max_seq_length": {L}, "do_lower_case": false`
added to `sentence_bert_config.json`. Files:

* `modules.json` -- as written by ST 6.2. Note the **new module type paths**:
  `sentence_transformers.base.modules.transformer.Transformer` (path `""`),
  `sentence_transformers.sentence_transformer.modules.pooling.Pooling` (path `1_Pooling`),
  `sentence_transformers.base.modules.normalize.Normalize` (path `2_Normalize`). Hub models saved
  by older versions say `sentence_transformers.models.Transformer` / `.Pooling` / `.Normalize`;
  match on the last component.
* `sentence_bert_config.json` -- `max_seq_length` {L} (the classic key, as on the Hub) and
  `do_lower_case` false, followed by what ST 6.2 writes itself (`transformer_task`,
  `modality_config`, `module_output_name`). ST 6.2 no longer writes `max_seq_length` here (it
  keeps it only as the tokenizer's `model_max_length`) but still reads it, and it wins over
  `tokenizer_config.json`: `SentenceTransformer("tiny-st").max_seq_length == {L}`.
* `1_Pooling/config.json` -- as written by ST 6.2, **new format**:
  `{{"embedding_dimension": {H}, "pooling_mode": "mean", "include_prompt": true}}`. The legacy format
  found on the Hub (also read by ST 6.2) is `{{"word_embedding_dimension": {H},
  "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens":
  false, "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
  "pooling_mode_lasttoken": false, "include_prompt": true}}`.
* `2_Normalize/config.json` -- as written by ST 6.2:
  `{{"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}}`
  (older versions leave `2_Normalize/` empty).
* `config.json` -- transformers `BertConfig` (`architectures: ["BertModel"]`, `model_type: bert`,
  `hidden_act: gelu`, `layer_norm_eps: 1e-12`, `pad_token_id: 0`, `vocab_size: {V}`).
* `config_sentence_transformers.json` -- as written (library versions, prompts, cosine similarity).
* `pytorch_model.bin` -- `torch.save(BertModel.state_dict())`, zip format, all float32, no
  buffers, {len(state)} tensors (keys in this order; `encoder.layer.1.*` as layer 0):

{key_table(state)}

* `tokenizer.json`, `tokenizer_config.json`, `vocab.txt`, `special_tokens_map.json` -- see above.

Weights (`torch.Generator` seeded {BERT_SEED}, in `named_parameters` order): every matrix and
embedding table N(0, 0.2), every non-LayerNorm bias N(0, 0.1), LayerNorm weights U(0.5, 1.5),
LayerNorm biases N(0, 0.2) -- so a missing bias, a LayerNorm without affine terms, a swapped
LayerNorm or a wrong eps placement all show. The word-embedding row of `[PAD]` is random too.
Linear weights are `[out, in]` (`y = x W^T + b`), as in `torch.nn.Linear`. Attention: 4 heads
of 8 (query/key/value columns split head-major), scale 1/sqrt(8), padded keys masked; GELU is
the exact (erf) one; post-LayerNorm residual blocks as in `BertLayer`.

Loading back with `SentenceTransformer("tiny-st")` (which reads `pytorch_model.bin`) gives the
same weights bit for bit and the same embeddings as the in-memory model.

## `tiny-bert-prefixed/` (plain BERT checkpoint)

The same encoder weights as a `BertForMaskedLM`: `config.json` (`architectures:
["BertForMaskedLM"]`, otherwise as above), the four tokenizer files (as in `tiny-st/`), and
`pytorch_model.bin` = `torch.save(BertForMaskedLM.state_dict())`. Keys are the `tiny-st` keys with a
`bert.` prefix, **without the pooler** (`BertForMaskedLM` has no pooling layer), plus the MLM head
(random, seeded {BERT_SEED + 1}). `cls.predictions.decoder.weight` is tied to (the same storage as)
`bert.embeddings.word_embeddings.weight`, and `cls.predictions.decoder.bias` to
`cls.predictions.bias`; torch.save stores each shared storage once. {len(mlm_state)} keys:

{key_table(mlm_state)}

No sentence-transformers files, so the defaults apply, as sentence-transformers does when it
wraps a plain transformers model: **mean pooling, no normalisation**, max length =
min(`tokenizer_config.json` `model_max_length`, `max_position_embeddings`) = {T64}. Its last
hidden states equal `tiny-st`'s for the same input ids (the encoder weights are identical; the
`cls.*` head and the missing pooler play no part). `expected.json` `plain_folder` holds what
`SentenceTransformer("tiny-bert-prefixed").encode` gives.

## `expected.json` schema

One JSON object; floats are float32 values written as the shortest repr of their exact f64
widening (parse as f64 and cast, or straight to f32: same value). Nested lists are row-major.

```
{{
  "max_seq_length": {L},              // sentence-transformers truncation length of tiny-st
  "hidden_size": {H},
  "vocab_size": {V},
  "tokenizer_max_length": {T64},       // tokenizer.json truncation / tokenizer_config model_max_length
  "sentences": [                    // one per sentences.json entry, same order ({B})
    {{
      "text": str,                  // the sentence, as in sentences.json
      "tokens": {{                   // what tiny-st's tokenizer gives for this sentence alone
        "input_ids": [int; T_i],    // T_i <= {L}, no padding, [CLS] first, [SEP] last
        "token_type_ids": [int; T_i],   // all 0
        "attention_mask": [int; T_i]    // all 1
      }},
      "token_strings": [str; T_i],  // the vocabulary strings of input_ids (for reading only)
      "last_hidden_state": [[float; {H}]; T_i]   // BertModel output for the unpadded single input
    }}
  ],
  "batch": {{                        // all sentences tokenized together, as encode() does it:
                                    // SentenceTransformer.preprocess(sentences), padded on the
                                    // right with [PAD]=0 to the longest, T = {Tb}
    "input_ids": [[int; T]; {B}],
    "token_type_ids": [[int; T]; {B}],   // 0, padding included
    "attention_mask": [[int; T]; {B}],   // 1 for tokens, 0 for padding
    "last_hidden_state": [[[float; {H}]; T]; {B}]   // padded batch forward; rows at padded
                                    // positions are whatever BERT computes there (not used)
  }},
  "single_vs_batch_max_abs_diff": float,  // max |single - batch| over unpadded positions (< 1e-5)
  "pooled": {{                       // from each sentence's single-input last_hidden_state,
                                    // with sentence-transformers' Pooling module
    "mean": [[float; {H}]; {B}],        // mean over the tokens ([CLS] and [SEP] included)
    "cls": [[float; {H}]; {B}],         // the first token ([CLS])
    "max": [[float; {H}]; {B}],         // elementwise max over the tokens
    "mean_normalized": [[float; {H}]; {B}]   // "mean" / its L2 norm
  }},
  "embeddings": [[float; {H}]; {B}],    // SentenceTransformer("tiny-st").encode(sentences,
                                    // batch_size={B}, convert_to_numpy=True,
                                    // normalize_embeddings=False): the whole pipeline, padded
                                    // batch, mean pooling over attention_mask, Normalize module;
                                    // unit L2 norm; equals pooled.mean_normalized within 1e-5
  "plain_folder": {{                 // SentenceTransformer("tiny-bert-prefixed") defaults
    "folder": "tiny-bert-prefixed",
    "max_seq_length": {T64},
    "pooling": "mean",
    "normalize": false,
    "input_ids": [[int; T']; {B}],     // its padded batch (T' = longest, at most {T64})
    "attention_mask": [[int; T']; {B}],
    "embeddings": [[float; {H}]; {B}]   // encode(sentences, batch_size={B}): mean pooled, not
                                    // normalised; equal to pooled.mean for every sentence
                                    // that is not truncated at {L}
  }}
}}
```

Pooling semantics (sentence-transformers `Pooling`, padded path): with mask m (attention_mask),
mean = sum_t m_t h_t / max(sum_t m_t, 1e-9); cls = h_0; max = max over t with m_t = 1. The
pooled values above come from the unpadded single inputs, so every position counts.

Tolerances: the values come from PyTorch CPU float32 (SDPA attention); a float32 Rust
implementation should match within about 1e-5 absolute (single vs batch in PyTorch itself
already differ by `single_vs_batch_max_abs_diff`).
"""


# --------------------------------------------------------------------------
# decoders: GPT-2 and Llama-style (llama with GQA + llama3 rope, qwen2 with
# biases, tied embeddings and linear rope scaling)
# --------------------------------------------------------------------------

DEC_OUT = FIXTURES / "decoders"
DEC_SEED = 20241126
DEC_VOCAB = 384
DEC_NEW_TOKENS = 20
DEC_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Backend engineers were handed a checkpoint and a latency budget.",
    "A converter turns PyTorch checkpoints into safetensors without running pickle code.",
    "Tokens stream out one at a time while the cache grows in place.",
    "Café, naïve, résumé, jalapeño: accents survive byte-level encoding.",
    "日本語のテキストと絵文字 🚀✨ も扱えます。",
    "def forward(self, x): return self.linear(x).relu()",
    "Numbers like 3.14159, 2718 and 1e-5 appear in logs.",
    "Generation stops at the end-of-sequence token or after the maximum length.",
    "Rotary embeddings rotate pairs of query and key features by position.",
] * 4
DEC_TEXT_PROMPTS = [
    "The quick brown fox",
    "Café 🚀 naïve",
]
DEC_ID_PROMPTS = [
    [5, 17, 42, 99, 250, 7, 300, 12],
    [301, 2, 88],
    [64],
]
# Extra id prompts per kind, for phi3 (original_max_position_embeddings 32): a 36-id prompt
# that runs with the longrope long factors from the start, and a 20-id prompt whose 20 new
# tokens cross 32 (transformers' Phi3ForCausalLM then drops its cache and runs the whole
# sequence again with the long factors; torchless's generation loop does the same).
DEC_EXTRA_ID_PROMPTS = {
    "phi3": [[(7 * i + 3) % DEC_VOCAB for i in range(36)],
             [(11 * i + 6) % DEC_VOCAB for i in range(20)]],
    # gemma2 / gemma3 (sliding_window 8): prompts, and prompt + 20 new tokens, past the window.
    "gemma2": [[(7 * i + 3) % DEC_VOCAB for i in range(36)],
               [(11 * i + 6) % DEC_VOCAB for i in range(20)]],
    "gemma3": [[(13 * i + 5) % DEC_VOCAB for i in range(36)],
               [(5 * i + 9) % DEC_VOCAB for i in range(20)]],
}


def dec_tokenizer(bos: bool):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on DEC_CORPUS.

    With ``bos`` the post-processor prepends ``<s>`` (as Llama tokenizers do)
    and ``</s>`` is the end-of-sequence token; without it (GPT-2) the only
    special token is ``<|endoftext|>`` and nothing is added.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<s>", "</s>"] if bos else ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=DEC_VOCAB,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(DEC_CORPUS, trainer=trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.get_vocab_size() == DEC_VOCAB, tok.get_vocab_size()
    return tok


def dec_randomise_norms(model, gen) -> None:
    """Non-trivial norm weights/biases so a wrong norm cannot pass."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def dec_greedy(model, ids: list, eos) -> list:
    out = model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=DEC_NEW_TOKENS,
        do_sample=False,
        use_cache=True,
        eos_token_id=eos,
        pad_token_id=eos if eos is not None else 0,
    )
    return ints(out[0, len(ids):])


def dec_model(kind: str):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
    from transformers import Phi3Config, Phi3ForCausalLM

    common = dict(vocab_size=DEC_VOCAB, initializer_range=0.1)
    if kind == "gpt2":
        cfg = GPT2Config(n_positions=64, n_embd=64, n_layer=2, n_head=4, **common)
        return GPT2LMHeadModel(cfg)
    if kind == "llama":
        cfg = LlamaConfig(
            hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16},
            rms_norm_eps=1e-5, tie_word_embeddings=False, **common)
        return LlamaForCausalLM(cfg)
    if kind == "qwen2":
        cfg = Qwen2Config(
            hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=80,
            rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
            tie_word_embeddings=True, **common)
        return Qwen2ForCausalLM(cfg)
    if kind == "qwen3":
        # head_dim 24 != hidden / heads (16): the explicit head_dim is exercised.
        cfg = Qwen3Config(
            hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=24,
            max_position_embeddings=80,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            use_sliding_window=False, tie_word_embeddings=True, **common)
        return Qwen3ForCausalLM(cfg)
    if kind == "phi3":
        # Fused qkv_proj / gate_up_proj, longrope with one short and one long factor per rotary
        # frequency (head_dim 16: 8), original_max_position_embeddings 32 < 64 positions.
        half = 8
        cfg = Phi3Config(
            hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            original_max_position_embeddings=32,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                             "original_max_position_embeddings": 32,
                             "short_factor": [1.0 + 0.05 * i for i in range(half)],
                             "long_factor": [1.0 + 1.5 * i for i in range(half)]},
            rms_norm_eps=1e-5, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, **common)
        return Phi3ForCausalLM(cfg)
    if kind == "gemma2":
        # Soft-capping on both the attention scores (50) and the final logits (30); layers
        # alternate sliding (window 8) / global; query_pre_attn_scalar 24 != head_dim 16.
        from transformers import Gemma2Config, Gemma2ForCausalLM
        cfg = Gemma2Config(
            hidden_size=64, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=96, query_pre_attn_scalar=24, sliding_window=8,
            attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True, attn_implementation="eager", pad_token_id=0,
            bos_token_id=1, eos_token_id=2,
            # 0.2: with 0.1 the first prompt's continuation repeats one token (no eos to pick).
            **{**common, "initializer_range": 0.2})
        return Gemma2ForCausalLM(cfg)
    if kind == "gemma3":
        # Text-only Gemma 3: q_norm / k_norm, local rope base 10000 on sliding layers, linear
        # rope scaling (factor 2, base 1e6) on global ones, window 8, soft-capping of the
        # final logits (30) only.
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig
        cfg = Gemma3TextConfig(
            hidden_size=64, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=96, query_pre_attn_scalar=24, sliding_window=8,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            final_logit_softcapping=30.0,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0,
                                   "rope_theta": 1000000.0}},
            tie_word_embeddings=True, attn_implementation="eager", pad_token_id=0,
            bos_token_id=1, eos_token_id=2, **common)
        return Gemma3ForCausalLM(cfg)
    raise ValueError(kind)


# (kind, tokenizer): every decoder fixture, in expected.json's order.
DEC_KINDS = [("gpt2", "gpt2"), ("llama", "llama"), ("qwen2", None), ("qwen3", None),
             ("phi3", None), ("gemma2", None), ("gemma3", None)]


def make_decoders(kinds: list[str] | None = None) -> None:
    """All decoder fixtures, or with ``kinds`` only those folders: the others and their
    ``expected.json`` entries are kept as they are (byte-identical) and the new entries merged
    in, in ``DEC_KINDS`` order.  Each kind is seeded on its own, so both ways give the same
    files."""
    out = DEC_OUT
    known = [k for k, _ in DEC_KINDS]
    for k in kinds or []:
        if k not in known:
            sys.exit(f"unknown decoder kind {k!r}; known: {', '.join(known)}")
    if kinds:
        expected = json.loads((out / "expected.json").read_text(encoding="utf-8"))
        assert expected["new_tokens"] == DEC_NEW_TOKENS
        for k in kinds:
            if (out / k).exists():
                shutil.rmtree(out / k)
    else:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        expected = {"new_tokens": DEC_NEW_TOKENS, "models": {}}
    for kind, tokenizer in DEC_KINDS:
        if kinds and kind not in kinds:
            continue
        torch.manual_seed(DEC_SEED)
        gen = torch.Generator().manual_seed(DEC_SEED)
        model = dec_model(kind).eval()
        dec_randomise_norms(model, gen)
        folder = out / kind
        folder.mkdir()
        tok = dec_tokenizer(bos=(tokenizer == "llama")) if tokenizer else None

        # Greedy continuations without an end-of-sequence id, then pick one that appears
        # mid-way in the first prompt's continuation and nowhere in the second one: the
        # folder's eos, so one case stops early and one runs to the full length.
        prompts = DEC_ID_PROMPTS + DEC_EXTRA_ID_PROMPTS.get(kind, [])
        free = [dec_greedy(model, p, None) for p in prompts]
        eos = next(t for i, t in enumerate(free[0])
                   if i >= 3 and t not in free[0][:i] and t not in free[1])
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = eos
        model.config.eos_token_id = eos
        model.config.save_pretrained(folder)
        model.generation_config.save_pretrained(folder)
        sd = model.state_dict()
        torch.save(sd, folder / "pytorch_model.bin")
        if kind == "gpt2":
            # Hugging Face's own safetensors layout: tied weights saved once, under one name.
            hf = out / "gpt2-safetensors"
            model.save_pretrained(hf)
            hf_keys = sorted(k for k in
                             __import__("safetensors").safe_open(str(hf / "model.safetensors"), "pt").keys())
            assert "lm_head.weight" not in hf_keys or "transformer.wte.weight" not in hf_keys, hf_keys
        if tok is not None:
            tok.save(str(folder / "tokenizer.json"))

        cases = []
        with torch.no_grad():
            for ids, unstopped in zip(prompts, free):
                logits = model(torch.tensor([ids]), use_cache=False).logits[0].float()
                new = dec_greedy(model, ids, eos)
                assert new == (unstopped[: new.index(eos) + 1] if eos in new else unstopped)
                cases.append({"prompt_ids": ids, "prompt_logits": floats(logits),
                              "greedy_new_ids": new,
                              "stop": "eos" if new and new[-1] == eos else "max_tokens"})
        assert cases[0]["stop"] == "eos" and cases[1]["stop"] == "max_tokens"
        text_cases = []
        if tok is not None:
            from transformers import PreTrainedTokenizerFast

            fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
            for text in DEC_TEXT_PROMPTS:
                ids = fast(text)["input_ids"]
                assert ids == tok.encode(text).ids
                new = dec_greedy(model, ids, eos)
                text_cases.append({"text": text, "prompt_ids": ids, "greedy_new_ids": new,
                                   "greedy_text": fast.decode(new, skip_special_tokens=True)})
        # The reloaded checkpoint gives the same logits (the files are what was tested).
        reloaded = dec_model(kind).eval()
        reloaded.load_state_dict(torch.load(folder / "pytorch_model.bin", weights_only=True))
        with torch.no_grad():
            a = reloaded(torch.tensor([DEC_ID_PROMPTS[0]])).logits[0]
        assert max_abs(a, torch.tensor(cases[0]["prompt_logits"])) < 1e-5
        expected["models"][kind] = {
            "folder": kind,
            "model_type": model.config.model_type,
            "eos_token_id": eos,
            "tied": bool(model.config.tie_word_embeddings),
            "state_dict_keys": sorted(sd.keys()),
            "cases": cases,
            "text_cases": text_cases,
        }
        print(f"decoders/{kind}: {folder_size(folder)} bytes, eos {eos}")
    models = expected["models"]
    expected["models"] = {k: models[k] for k in known if k in models}
    write_json(out / "expected.json", expected)
    (out / "README.md").write_text(DEC_README, encoding="utf-8")


DEC_README = """# Decoder fixtures

Written by `scripts/make_fixtures.py decoders` (torch + transformers 5, CPU, seeded; `decoders
qwen3` rewrites just that folder and merges its entry into `expected.json`). Small,
randomly initialised causal language models, each a Hugging Face folder whose weights are a
`torch.save(model.state_dict())` `pytorch_model.bin`:

| folder | model | exercises |
|---|---|---|
| `gpt2/` | `GPT2LMHeadModel`, 2 layers, 64 wide, 4 heads, 64 positions | Conv1D weights, learned positions, tied `lm_head`/`wte` (both names in the state_dict, one storage), byte-level BPE `tokenizer.json` |
| `llama/` | `LlamaForCausalLM`, 2 layers, 64 wide, 4 query / 2 key-value heads | GQA, RMSNorm, rotary `llama3` scaling (`rope_parameters`), untied `lm_head`, a tokenizer adding `<s>` |
| `gpt2-safetensors/` | the same GPT-2, written by `save_pretrained` | Hugging Face's safetensors layout: the tied weight stored under one name only |
| `qwen2/` | `Qwen2ForCausalLM`, 2 layers, 48 wide, 6 query / 2 key-value heads | q/k/v biases, tied embeddings (both names, one storage), `linear` rope scaling; no tokenizer (ids only) |
| `qwen3/` | `Qwen3ForCausalLM`, 2 layers, 64 wide, 4 query / 2 key-value heads, `head_dim` 24 | an explicit `head_dim` (not 64 / 4), randomised `q_norm` / `k_norm` per-head RMSNorms before the rotation, no attention biases, tied embeddings, default rope (theta 10000); no tokenizer (ids only) |
| `phi3/` | `Phi3ForCausalLM`, 2 layers, 64 wide, 4 query / 2 key-value heads, 64 positions | fused `qkv_proj` and `gate_up_proj` in the checkpoint, `longrope` rotary scaling (`short_factor` / `long_factor`, `original_max_position_embeddings` 32, attention scaling of cos/sin), untied `lm_head`; the three short prompts stay within 32 with their continuations (short factors), a fourth, 36-id prompt is longer (long factors), and a fifth, 20-id prompt's 20 new tokens cross 32 (transformers drops its cache and reruns the sequence with the long factors); no tokenizer (ids only) |
| `gemma2/` | `Gemma2ForCausalLM`, 3 layers (sliding / global / sliding), 64 wide, 4 query / 2 key-value heads, `head_dim` 16 | `(1 + w)` RMSNorms before and after attention and the MLP, GeGLU, `sqrt(hidden)`-scaled tied embeddings, `query_pre_attn_scalar` 24, attention (50) and final (30) logit soft-capping, `sliding_window` 8: a 36-id and a 20-id prompt are longer than it, and every continuation runs past it; no tokenizer (ids only) |
| `gemma3/` | `Gemma3ForCausalLM` (`Gemma3TextConfig`), 3 layers (sliding / global / sliding), 64 wide, 4 query / 2 key-value heads, `head_dim` 16 | as gemma2 plus per-head `q_norm` / `k_norm`, a local rotary table (theta 10000) on sliding layers and `linear` scaling (factor 2, theta 1e6) on the global one, final soft-capping (30) only; prompts as gemma2; no tokenizer (ids only) |

Norm weights and biases are randomised so a wrong norm cannot pass. Each folder's
`generation_config.json` / `config.json` `eos_token_id` is chosen from the model's own greedy
continuation so that the first id prompt stops at it (`stop: "eos"`) and the second runs the full
`new_tokens`.

`expected.json`: `{"new_tokens": 20, "models": {KIND: {"folder", "model_type", "eos_token_id",
"tied", "state_dict_keys", "cases": [{"prompt_ids", "prompt_logits" ([T][vocab] f32, PyTorch
`model(ids).logits[0]`), "greedy_new_ids" (`generate(max_new_tokens=20, do_sample=False,
use_cache=True)`), "stop"}], "text_cases": [{"text", "prompt_ids" (`tokenizer(text)`),
"greedy_new_ids", "greedy_text" (`decode(new, skip_special_tokens=True)`)}]}}}`.
"""


# --------------------------------------------------------------------------
# XLM-RoBERTa / sentence-transformers
# --------------------------------------------------------------------------

XLMR_OUT = FIXTURES / "xlmr"
XLMR_SEED = 20250301
XLMR_MAX_SEQ_LENGTH = 24  # sentence-transformers max_seq_length (sentence_bert_config.json)
XLMR_PAD = 1  # pad_token_id: positions start at XLMR_PAD + 1
XLMR_MAX_POSITIONS = 40  # max_position_embeddings, offset included
XLMR_TOKENIZER_MAX_LENGTH = XLMR_MAX_POSITIONS - XLMR_PAD - 1  # 38 usable positions
XLMR_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3 (fairseq order); <mask> is last
XLMR_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=XLMR_MAX_POSITIONS,
    type_vocab_size=1,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    pad_token_id=XLMR_PAD,
    bos_token_id=0,
    eos_token_id=2,
)
XLMR_SENTENCES = [
    "",
    "Hello world",
    "Café naïve résumé à l'été",
    "你好，世界。東京は晴れ",
    "Привет, мир! Как дела?",
    "I love 🦀 and 🐍!",
    "  The QUICK Fox -- (jumps)?!\tIt's 3.14 @home\n",
    BERT_SENTENCES[6],  # the lighthouse keeper: truncated at 24 tokens
]
XLMR_WORDS = 200  # whole words (frequency >= 2) in the vocabulary
XLMR_SUBWORDS = 200  # most frequent 2..5-character pieces


XLMR_README = """# XLM-RoBERTa / sentence-transformers fixtures

Generated by `scripts/make_fixtures.py` (`make_xlmr()`); do not edit by hand, re-run
`/tmp/tvenv/bin/python scripts/make_fixtures.py xlmr` (seeded, CPU, one thread; a re-run with
the same torch 2.15 / transformers 5.24 / sentence-transformers 6.2 / tokenizers 0.23 gives
byte-identical files). Everything is float32. The script asserts the claims below.

## Tokenizer

A `tokenizers` `Unigram` model (SentencePiece-style, as XLM-R's), no normalizer, pre-tokenizer
`WhitespaceSplit` + `Metaspace("▁", prepend_scheme="always")` (the pipeline transformers 5's
`XLMRobertaTokenizer` rebuilds on load whatever `tokenizer.json` says -- with a normalizer in
the file, transformers and the raw file would disagree), post-processor `<s> $A </s>`.
Vocabulary (486 pieces) built deterministically from piece counts over the BERT fixture's
training text plus the test sentences, `🐍` kept out so it is `<unk>`: ids 0..3 are `<s>`
`<pad>` `</s>` `<unk>` (fairseq order), `<mask>` is the last id; scores are log(count/total).
`tokenizer.json` truncates at 38 (= the usable positions), `tokenizer_config.json`
(`XLMRobertaTokenizer`) has `model_max_length` 38; `AutoTokenizer` gives the same ids as the
raw file for every test sentence.

## `tiny-st/`

A random `XLMRobertaModel(XLMRobertaConfig(hidden_size=32, num_hidden_layers=2,
num_attention_heads=4, intermediate_size=64, max_position_embeddings=40, type_vocab_size=1,
pad_token_id=1, layer_norm_eps=1e-5, hidden_act="gelu"))`, weights initialised as the BERT
fixture's (`bert_init_weights`, seed 20250301; the pooler is kept in the state_dict but unused),
wrapped as `Transformer(max_seq_length=24)` -> `Pooling(mean)` -> `Normalize()` and saved by
sentence-transformers, then `model.safetensors` replaced by `pytorch_model.bin`
(`torch.save(state_dict)`), the model card removed, `"max_seq_length": 24` added to
`sentence_bert_config.json`. Position ids are `pad_token_id + 1 + cumsum(mask)`: real tokens use
rows 2..=T+1 of the 40-row position table; 38 positions are usable.

## `tiny-roberta-prefixed/`

The same encoder as an `XLMRobertaForMaskedLM` (`roberta.`-prefixed keys, no pooler, random
`lm_head.*` seeded 20250302, decoder tied to the word embeddings), `config.json` +
`pytorch_model.bin` + tokenizer files, no sentence-transformers files (so: mean pooling, no
normalisation, 38 tokens). Its hidden states equal `tiny-st`'s.

## `expected.json`

```
{
  "max_seq_length": 24, "hidden_size": 32, "vocab_size": 486, "pad_token_id": 1,
  "max_position_embeddings": 40,
  "sentences": [{                    // 8 sentences: empty, ASCII, accents, CJK (fullwidth
                                     // punctuation), Cyrillic, emoji (one <unk>), whitespace and
                                     // punctuation, a long one (truncated at 24)
    "text": str,
    "input_ids": [int; T_i],         // SentenceTransformer.preprocess([text]): <s> ... </s>
    "token_strings": [str; T_i],
    "untruncated_length": int        // tokens without truncation at 24
  }],
  "batch": {                         // preprocess(all 8), right-padded with <pad> = 1
    "input_ids": [[int; T]; 8], "attention_mask": [[int; T]; 8],
    "last_hidden_state": [[[float; 32]; T]; 8]   // XLMRobertaModel on the padded batch;
                                     // rows at padded positions are not meaningful
  },
  "single_vs_batch_max_abs_diff": float,   // PyTorch itself, unpadded vs padded (< 1e-5)
  "embeddings": [[float; 32]; 8]     // SentenceTransformer("tiny-st").encode(batch_size=8)
}
```
"""


def xlmr_train_tokenizer():
    """A SentencePiece-style ``tokenizers`` Unigram tokenizer (Metaspace ``▁``, XLM-R's
    ``<s> A </s>`` template). The vocabulary is built deterministically from piece counts over
    ``bert_training_text()`` plus the test sentences (``🐍`` kept out, so it is ``<unk>``): every
    character, the most frequent whole words and 2..5-character pieces, each scored
    log(count / total)."""
    import math
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    # No normalizer and WhitespaceSplit + Metaspace: the pipeline transformers 5's
    # XLMRobertaTokenizer rebuilds on load whatever tokenizer.json says, so that the raw
    # tokenizer.json, AutoTokenizer and sentence-transformers all give the same ids.
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    lines = bert_training_text() + ["".join(c for c in s if c not in BERT_UNSEEN) for s in XLMR_SENTENCES]
    words = Counter()
    for line in lines:
        for w, _ in pre.pre_tokenize_str(line):
            words[w] += 1
    chars, subs = Counter(), Counter()
    for w, n in words.items():
        for c in w:
            chars[c] += n
        for k in range(2, 6):
            for i in range(len(w) - k + 1):
                subs[w[i:i + k]] += n
    whole = [w for w, n in sorted(words.items(), key=lambda x: (-x[1], x[0])) if n >= 2 and len(w) > 1]
    whole = whole[:XLMR_WORDS]
    pieces = {c: chars[c] for c in sorted(chars)}
    for p, n in sorted(subs.items(), key=lambda x: (-x[1], x[0])):
        if len([q for q in pieces if len(q) > 1]) >= XLMR_SUBWORDS:
            break
        pieces.setdefault(p, n)
    for w in whole:
        pieces.setdefault(w, words[w])
    total = sum(pieces.values())
    vocab = [(t, 0.0) for t in XLMR_SPECIAL]
    vocab += [(p, math.log(n / total)) for p, n in pieces.items() if p not in XLMR_SPECIAL]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre
    tok.add_special_tokens(XLMR_SPECIAL + ["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.enable_truncation(max_length=XLMR_TOKENIZER_MAX_LENGTH)
    got = tok.get_vocab()
    assert [got[t] for t in XLMR_SPECIAL] == [0, 1, 2, 3] and got["<mask>"] == len(vocab) - 1
    assert len(got) == len(vocab), "duplicate pieces"
    assert BERT_UNSEEN not in got
    return tok


def xlmr_write_tokenizer_files(tok, folder: Path) -> None:
    """``tokenizer.json`` + ``tokenizer_config.json`` as transformers 5 saves an
    ``XLMRobertaTokenizerFast`` wrapping ``tok``."""
    from transformers import XLMRobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=XLMR_TOKENIZER_MAX_LENGTH)
    with tempfile.TemporaryDirectory() as tmp:
        saved = sorted(Path(p).name for p in fast.save_pretrained(tmp))
        for f in ("tokenizer.json", "tokenizer_config.json"):
            assert f in saved, saved
            shutil.copy(Path(tmp) / f, folder / f)


def make_xlmr() -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

    out = XLMR_OUT
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(XLMR_SEED)
    sentences = XLMR_SENTENCES

    tok = xlmr_train_tokenizer()
    vocab_size = tok.get_vocab_size()

    config = XLMRobertaConfig(vocab_size=vocab_size, **XLMR_CONFIG)
    model = XLMRobertaModel(config).eval()
    bert_init_weights(model, torch.Generator().manual_seed(XLMR_SEED))
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    assert list(state) == [k for k, _ in model.named_parameters()], "state_dict is not just parameters"
    assert state["embeddings.position_embeddings.weight"].shape[0] == XLMR_MAX_POSITIONS

    # ---- tiny-st ----------------------------------------------------------
    st_dir = out / "tiny-st"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        model.save_pretrained(str(base))
        xlmr_write_tokenizer_files(tok, base)
        transformer = Transformer(str(base), max_seq_length=XLMR_MAX_SEQ_LENGTH)
        st_sd = transformer.auto_model.state_dict()
        assert st_sd.keys() == state.keys(), (st_sd.keys() ^ state.keys())
        assert all(torch.equal(st_sd[k], state[k]) for k in state)
        st = SentenceTransformer(modules=[transformer, Pooling(config.hidden_size, pooling_mode="mean"),
                                          Normalize()], device="cpu").eval()
        st.save(str(st_dir))
    (st_dir / "model.safetensors").unlink()
    (st_dir / "README.md").unlink(missing_ok=True)
    torch.save(state, st_dir / "pytorch_model.bin")
    sb_path = st_dir / "sentence_bert_config.json"
    sb = json.loads(sb_path.read_text())
    sb = {"max_seq_length": XLMR_MAX_SEQ_LENGTH, "do_lower_case": False, **sb}
    sb_path.write_text(json.dumps(sb, indent=4) + "\n")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (st_dir / f).unlink()
    xlmr_write_tokenizer_files(tok, st_dir)

    # ---- tiny-roberta-prefixed: the same encoder under `roberta.` ----------
    pre_dir = out / "tiny-roberta-prefixed"
    pre_dir.mkdir()
    mlm_config = XLMRobertaConfig(vocab_size=vocab_size, architectures=["XLMRobertaForMaskedLM"], **XLMR_CONFIG)
    mlm = XLMRobertaForMaskedLM(mlm_config).eval()
    bert_init_weights(mlm.lm_head, torch.Generator().manual_seed(XLMR_SEED + 1))
    missing, unexpected = mlm.roberta.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("pooler.")}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    mlm_state = mlm.state_dict()
    assert all(k.startswith(("roberta.", "lm_head.")) for k in mlm_state), list(mlm_state)
    torch.save(mlm_state, pre_dir / "pytorch_model.bin")
    mlm_config.save_pretrained(str(pre_dir))
    xlmr_write_tokenizer_files(tok, pre_dir)

    # ---- load back, expected values -----------------------------------------
    st_loaded = SentenceTransformer(str(st_dir), device="cpu").eval()
    assert [type(m).__name__ for m in st_loaded] == ["Transformer", "Pooling", "Normalize"]
    assert st_loaded.max_seq_length == XLMR_MAX_SEQ_LENGTH, st_loaded.max_seq_length
    ld = st_loaded[0].auto_model.state_dict()
    assert all(torch.equal(ld[k], state[k]) for k in state), "tiny-st weights did not round-trip"
    mlm_loaded = XLMRobertaForMaskedLM.from_pretrained(str(pre_dir)).eval()
    per_sentence, single_hidden = [], []
    with torch.inference_mode():
        for s in sentences:
            feats = st_loaded.preprocess([s])
            ids = feats["input_ids"]
            assert ids.shape[1] <= XLMR_MAX_SEQ_LENGTH and int(ids[0, 0]) == 0 and int(ids[0, -1]) == 2
            raw = tok.encode(s)
            auto = AutoTokenizer.from_pretrained(str(st_dir))(
                s, truncation=True, max_length=XLMR_TOKENIZER_MAX_LENGTH)["input_ids"]
            assert auto == raw.ids, (s, auto, raw.ids)
            hidden = model(input_ids=ids, attention_mask=feats["attention_mask"]).last_hidden_state
            again = mlm_loaded.roberta(input_ids=ids, attention_mask=feats["attention_mask"]).last_hidden_state
            assert max_abs(again, hidden) <= 1e-6
            single_hidden.append(hidden[0])
            per_sentence.append({
                "text": s,
                "input_ids": ints(ids[0]),
                "token_strings": [tok.id_to_token(i) for i in ints(ids[0])],
                "untruncated_length": len(raw.ids),
            })
        assert any(p["untruncated_length"] > XLMR_MAX_SEQ_LENGTH for p in per_sentence)
        assert any(3 in p["input_ids"] for p in per_sentence), "no <unk> in the test sentences"
        batch = st_loaded.preprocess(sentences)
        assert int(batch["input_ids"][0, -1]) == XLMR_PAD  # right-padded with <pad>
        b_hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        batch_diff = 0.0
        for i, h in enumerate(single_hidden):
            n = h.shape[0]
            assert int(batch["attention_mask"][i].sum()) == n
            batch_diff = max(batch_diff, max_abs(b_hidden[i, :n], h))
        assert batch_diff < 1e-5, batch_diff
        embeddings = st_loaded.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                                      normalize_embeddings=False)
        in_memory = st.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                              normalize_embeddings=False)
        assert float(np.abs(embeddings - in_memory).max()) <= 1e-6
        for i, h in enumerate(single_hidden):
            d = max_abs(torch.from_numpy(embeddings[i]), F.normalize(h.mean(0), dim=-1))
            assert d < 1e-5, (i, d)

    expected = {
        "max_seq_length": XLMR_MAX_SEQ_LENGTH,
        "hidden_size": config.hidden_size,
        "vocab_size": vocab_size,
        "pad_token_id": XLMR_PAD,
        "max_position_embeddings": XLMR_MAX_POSITIONS,
        "sentences": per_sentence,
        "batch": {
            "input_ids": ints(batch["input_ids"]),
            "attention_mask": ints(batch["attention_mask"]),
            "last_hidden_state": floats(b_hidden),
        },
        "single_vs_batch_max_abs_diff": batch_diff,
        "embeddings": floats(embeddings),
    }
    write_json(out / "expected.json", expected)
    assert vocab_size == 486, vocab_size  # the README says so
    (out / "README.md").write_text(XLMR_README, encoding="utf-8")
    size = folder_size(out)
    assert size < 600_000, size
    print(f"xlmr: {out.relative_to(ROOT)}: {size} bytes, vocab {vocab_size}, "
          f"single-vs-batch max |diff| {batch_diff:.3g}")
    for p in per_sentence:
        print(f"  {len(p['input_ids']):>3} ({p['untruncated_length']:>3})  {' '.join(p['token_strings'])}")


# --------------------------------------------------------------------------
# DistilBERT / sentence-transformers
# --------------------------------------------------------------------------

DISTILBERT_OUT = FIXTURES / "distilbert"
DISTILBERT_SEED = 20250401
DISTILBERT_MAX_SEQ_LENGTH = 24  # sentence-transformers max_seq_length (sentence_bert_config.json)
DISTILBERT_MAX_POSITIONS = 40  # max_position_embeddings (= tokenizer truncation)
DISTILBERT_CONFIG = dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, activation="gelu",
                         max_position_embeddings=DISTILBERT_MAX_POSITIONS, sinusoidal_pos_embds=False,
                         pad_token_id=0)
DISTILBERT_SENTENCES = XLMR_SENTENCES  # incl. Cyrillic, [UNK] emoji, one truncated at 24
DISTILBERT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")

DISTILBERT_README = """# DistilBERT / sentence-transformers fixtures

Generated by `scripts/make_fixtures.py` (`make_distilbert()`); do not edit by hand, re-run
`/tmp/tvenv/bin/python scripts/make_fixtures.py distilbert` (seeded, CPU, one thread; a re-run
with the same torch 2.15 / transformers 5.24 / sentence-transformers 6.2 gives byte-identical
files). Everything is float32. The script asserts the claims below.

## Tokenizer

The BERT fixture's WordPiece tokenizer (`../bert/tokenizer.json`, `vocab.txt`,
`special_tokens_map.json`; 1200 tokens, lower-casing, `[CLS] $A [SEP]`), DistilBERT using
BERT's tokenizer, with `tokenizer_config.json`'s `tokenizer_class` set to `DistilBertTokenizer`
(no `token_type_ids`) and the truncation / `model_max_length` set to 40 (= the positions).

## `tiny-st/`

A random `DistilBertModel(DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64,
activation="gelu", max_position_embeddings=40, sinusoidal_pos_embds=False))`, vocab 1200, every
parameter redrawn (seed 20250401: matrices N(0, 0.2), biases N(0, 0.1), LayerNorm weights
U(0.5, 1.5), LayerNorm biases N(0, 0.2)), wrapped as `Transformer(max_seq_length=24)` ->
`Pooling(mean)` -> `Normalize()` and saved by sentence-transformers, then `model.safetensors`
replaced by `pytorch_model.bin` (`torch.save(state_dict)`), the model card removed,
`"max_seq_length": 24` added to `sentence_bert_config.json`.

## The `distilbert.` prefix

A `DistilBertForMaskedLM` checkpoint (the encoder's keys under `distilbert.`, plus `vocab_*`)
is not stored (it would double the size): `tests/distilbert.rs` builds one in a temporary folder
from `tiny-st` (keys renamed, `model.safetensors`, `architectures: ["DistilBertForMaskedLM"]`,
no sentence-transformers files). The script asserts that this is `DistilBertForMaskedLM`'s
layout and that its `distilbert` submodule gives `tiny-st`'s hidden states.

## `expected.json`

```
{
  "max_seq_length": 24, "hidden_size": 32, "vocab_size": 1200, "max_position_embeddings": 40,
  "sentences": [{                    // 8 sentences: empty, ASCII, accents, CJK, Cyrillic, emoji
                                     // ([UNK]), whitespace and punctuation, a long one
                                     // (truncated at 24)
    "text": str,
    "input_ids": [int; T_i],         // SentenceTransformer.preprocess([text]): [CLS] ... [SEP]
    "untruncated_length": int        // tokens without truncation at 24
  }],
  "batch": {                         // preprocess(all 8), right-padded with [PAD] = 0
    "input_ids": [[int; T]; 8], "attention_mask": [[int; T]; 8],
    "last_hidden_state": [[[float; 32]; T]; 8]   // DistilBertModel on the padded batch;
                                     // rows at padded positions are not meaningful
  },
  "single_vs_batch_max_abs_diff": float,   // PyTorch itself, unpadded vs padded (< 1e-5)
  "embeddings": [[float; 32]; 8]     // SentenceTransformer("tiny-st").encode(batch_size=8)
}
```
"""


def distilbert_init_weights(model: torch.nn.Module, gen: torch.Generator) -> None:
    """``bert_init_weights`` for DistilBERT's names (``*layer_norm*`` / ``LayerNorm``)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_ln = "LayerNorm" in name or "layer_norm" in name
            if is_ln and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif is_ln or p.dim() < 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.2 if is_ln else 0.1))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def distilbert_write_tokenizer_files(folder: Path) -> None:
    """The BERT fixture's tokenizer files, as a DistilBERT tokenizer truncating at 40."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in DISTILBERT_TOKENIZER_FILES:
        shutil.copy(BERT_OUT / f, folder / f)
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tj["truncation"]["max_length"] = DISTILBERT_MAX_POSITIONS
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    tc = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tc.update(tokenizer_class="DistilBertTokenizer", max_length=DISTILBERT_MAX_POSITIONS,
              model_max_length=DISTILBERT_MAX_POSITIONS)
    write_json(folder / "tokenizer_config.json", tc, indent=2)


def make_distilbert() -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForMaskedLM, DistilBertModel

    out = DISTILBERT_OUT
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(DISTILBERT_SEED)
    sentences = DISTILBERT_SENTENCES
    tok = Tokenizer.from_file(str(BERT_OUT / "tokenizer.json"))
    tok.enable_truncation(DISTILBERT_MAX_POSITIONS)
    vocab_size = tok.get_vocab_size()

    config = DistilBertConfig(vocab_size=vocab_size, **DISTILBERT_CONFIG)
    model = DistilBertModel(config).eval()
    distilbert_init_weights(model, torch.Generator().manual_seed(DISTILBERT_SEED))
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    assert list(state) == [k for k, _ in model.named_parameters()], "state_dict is not just parameters"
    assert not any("token_type" in k for k in state), list(state)

    # ---- tiny-st ----------------------------------------------------------
    st_dir = out / "tiny-st"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        model.save_pretrained(str(base))
        distilbert_write_tokenizer_files(base)
        transformer = Transformer(str(base), max_seq_length=DISTILBERT_MAX_SEQ_LENGTH)
        st_sd = transformer.auto_model.state_dict()
        assert st_sd.keys() == state.keys(), (st_sd.keys() ^ state.keys())
        assert all(torch.equal(st_sd[k], state[k]) for k in state)
        st = SentenceTransformer(modules=[transformer, Pooling(config.dim, pooling_mode="mean"),
                                          Normalize()], device="cpu").eval()
        st.save(str(st_dir))
    (st_dir / "model.safetensors").unlink()
    (st_dir / "README.md").unlink(missing_ok=True)
    torch.save(state, st_dir / "pytorch_model.bin")
    for f in DISTILBERT_TOKENIZER_FILES:
        (st_dir / f).unlink(missing_ok=True)
    distilbert_write_tokenizer_files(st_dir)

    sb_path = st_dir / "sentence_bert_config.json"
    sb = json.loads(sb_path.read_text())
    sb = {"max_seq_length": DISTILBERT_MAX_SEQ_LENGTH, "do_lower_case": False, **sb}
    sb_path.write_text(json.dumps(sb, indent=4) + "\n")

    # ---- the `distilbert.` layout the Rust test builds (not written: 250 KB more) ----
    mlm = DistilBertForMaskedLM(DistilBertConfig(vocab_size=vocab_size, **DISTILBERT_CONFIG)).eval()
    missing, unexpected = mlm.distilbert.load_state_dict(state, strict=True)
    assert not missing and not unexpected, (missing, unexpected)
    mlm_keys = set(mlm.state_dict())
    assert {"distilbert." + k for k in state} <= mlm_keys, mlm_keys
    assert all(k.startswith("vocab_") for k in mlm_keys - {"distilbert." + k for k in state}), mlm_keys

    # ---- load back, expected values -----------------------------------------
    st_loaded = SentenceTransformer(str(st_dir), device="cpu").eval()
    assert [type(m).__name__ for m in st_loaded] == ["Transformer", "Pooling", "Normalize"]
    assert st_loaded.max_seq_length == DISTILBERT_MAX_SEQ_LENGTH, st_loaded.max_seq_length
    ld = st_loaded[0].auto_model.state_dict()
    assert all(torch.equal(ld[k], state[k]) for k in state), "tiny-st weights did not round-trip"
    per_sentence, single_hidden = [], []
    with torch.inference_mode():
        for s in sentences:
            feats = st_loaded.preprocess([s])
            assert "token_type_ids" not in feats, list(feats)
            ids = feats["input_ids"]
            assert ids.shape[1] <= DISTILBERT_MAX_SEQ_LENGTH
            raw = tok.encode(s)
            auto = AutoTokenizer.from_pretrained(str(st_dir))(
                s, truncation=True, max_length=DISTILBERT_MAX_POSITIONS)["input_ids"]
            assert auto == raw.ids, (s, auto, raw.ids)
            hidden = model(input_ids=ids, attention_mask=feats["attention_mask"]).last_hidden_state
            again = mlm.distilbert(input_ids=ids, attention_mask=feats["attention_mask"]).last_hidden_state
            assert max_abs(again, hidden) <= 1e-6
            single_hidden.append(hidden[0])
            per_sentence.append({
                "text": s,
                "input_ids": ints(ids[0]),
                "untruncated_length": len(raw.ids),
            })
        assert any(p["untruncated_length"] > DISTILBERT_MAX_SEQ_LENGTH for p in per_sentence)
        assert any(1 in p["input_ids"] for p in per_sentence), "no [UNK] in the test sentences"
        batch = st_loaded.preprocess(sentences)
        assert int(batch["input_ids"][0, -1]) == 0  # right-padded with [PAD]
        b_hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        batch_diff = 0.0
        for i, h in enumerate(single_hidden):
            n = h.shape[0]
            assert int(batch["attention_mask"][i].sum()) == n
            batch_diff = max(batch_diff, max_abs(b_hidden[i, :n], h))
        assert batch_diff < 1e-5, batch_diff
        embeddings = st_loaded.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                                      normalize_embeddings=False)
        in_memory = st.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                              normalize_embeddings=False)
        assert float(np.abs(embeddings - in_memory).max()) <= 1e-6
        for i, h in enumerate(single_hidden):
            d = max_abs(torch.from_numpy(embeddings[i]), F.normalize(h.mean(0), dim=-1))
            assert d < 1e-5, (i, d)

    expected = {
        "max_seq_length": DISTILBERT_MAX_SEQ_LENGTH,
        "hidden_size": config.dim,
        "vocab_size": vocab_size,
        "max_position_embeddings": DISTILBERT_MAX_POSITIONS,
        "sentences": per_sentence,
        "batch": {
            "input_ids": ints(batch["input_ids"]),
            "attention_mask": ints(batch["attention_mask"]),
            "last_hidden_state": floats(b_hidden),
        },
        "single_vs_batch_max_abs_diff": batch_diff,
        "embeddings": floats(embeddings),
    }
    write_json(out / "expected.json", expected)
    assert vocab_size == 1200, vocab_size  # the README says so
    (out / "README.md").write_text(DISTILBERT_README, encoding="utf-8")
    size = folder_size(out)
    assert size < 500_000, size
    print(f"distilbert: {out.relative_to(ROOT)}: {size} bytes, vocab {vocab_size}, "
          f"single-vs-batch max |diff| {batch_diff:.3g}")


from resnet_fixtures import make_resnet  # noqa: E402  (scripts/resnet_fixtures.py)
from rerank_fixtures import make_rerank  # noqa: E402  (scripts/rerank_fixtures.py)

FAMILIES = {"bert": make_bert, "decoders": make_decoders, "resnet": make_resnet, "xlmr": make_xlmr,
            "distilbert": make_distilbert, "rerank": make_rerank}


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dec_kinds = [k for k, _ in DEC_KINDS]
    if argv[:1] == ["decoders"] and len(argv) > 1 and all(k in dec_kinds for k in argv[1:]):
        # `make_fixtures.py decoders qwen3`: just those decoder folders, merged in.
        make_decoders(argv[1:])
        return
    names = argv or list(FAMILIES)
    for name in names:
        if name not in FAMILIES:
            sys.exit(f"unknown fixture family {name!r}; known: {', '.join(FAMILIES)}")
    for name in names:
        FAMILIES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
