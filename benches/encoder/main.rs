//! CPU benchmark of BERT encoders (all-MiniLM-L6-v2-sized and bert-base-sized, random weights):
//! forward latency at batch 1 × 128 and 32 × 128 tokens, model load time (mmap + prepare), and
//! `SentenceEncoder::embed` of 256 mixed-length texts (5–400 tokens, truncated at 256) at batch
//! size 32 through a MiniLM-sized sentence-transformers folder (the fixture tokenizer of
//! `tests/fixtures/bert`). `benches/encoder_vs_torch.py` runs this next to PyTorch eager and
//! `SentenceTransformer.encode` with the same thread count and prints the ratios; it sets
//! `TORCHLESS_BENCH_EMBED_DIR` so that the folder, the texts (`texts.json`) and our embeddings
//! (`ours.json`) stay for its side. Run alone: `cargo bench -p torchless-benches --bench encoder`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless::{DeviceSpec, LoadOptions, SentenceEncoder, Weights};
use torchless_kernels::testing::seeded;
use torchless_models::bert::{BertModel, RawBertConfig};

/// (name, hidden, layers, heads, intermediate)
const MODELS: &[(&str, usize, usize, usize, usize)] = &[
    ("minilm-l6", 384, 6, 12, 1536),
    ("bert-base", 768, 12, 12, 3072),
];
const VOCAB: usize = 30522;

fn config_json(h: usize, l: usize, heads: usize, inter: usize) -> serde_json::Value {
    serde_json::json!({
        "vocab_size": VOCAB, "hidden_size": h, "num_hidden_layers": l,
        "num_attention_heads": heads, "intermediate_size": inter,
        "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "model_type": "bert"
    })
}

fn config(h: usize, l: usize, heads: usize, inter: usize) -> RawBertConfig {
    serde_json::from_value(config_json(h, l, heads, inter)).expect("valid config")
}

/// Writes random BertModel weights with Hugging Face names.
fn write_weights(path: &Path, h: usize, l: usize, inter: usize) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut seed = 0u64;
    let mut add = |name: String, shape: &[usize]| -> candle_core::Result<()> {
        seed += 1;
        t.insert(name, seeded(shape, seed, -0.05, 0.05, DType::F32, &dev)?);
        Ok(())
    };
    add("embeddings.word_embeddings.weight".into(), &[VOCAB, h])?;
    add("embeddings.position_embeddings.weight".into(), &[512, h])?;
    add("embeddings.token_type_embeddings.weight".into(), &[2, h])?;
    add("embeddings.LayerNorm.weight".into(), &[h])?;
    add("embeddings.LayerNorm.bias".into(), &[h])?;
    for i in 0..l {
        let p = format!("encoder.layer.{i}.");
        for n in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(format!("{p}{n}.weight"), &[h, h])?;
            add(format!("{p}{n}.bias"), &[h])?;
        }
        add(format!("{p}intermediate.dense.weight"), &[inter, h])?;
        add(format!("{p}intermediate.dense.bias"), &[inter])?;
        add(format!("{p}output.dense.weight"), &[h, inter])?;
        add(format!("{p}output.dense.bias"), &[h])?;
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{p}{n}.weight"), &[h])?;
            add(format!("{p}{n}.bias"), &[h])?;
        }
    }
    candle_core::safetensors::save(&t, path)
}

fn load(path: &Path, raw: &RawBertConfig) -> BertModel {
    let w = Arc::new(Weights::open(path).expect("open weights"));
    let cfg = raw.clone().into_config().expect("config");
    BertModel::load(w.var_builder(DType::F32, &Device::Cpu), cfg).expect("load")
}

fn encoder(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("torchless-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for &(name, h, l, heads, inter) in MODELS {
        let path = dir.join(format!("{name}.safetensors"));
        write_weights(&path, h, l, inter).expect("write weights");
        let raw = config(h, l, heads, inter);
        let model = load(&path, &raw);
        let mut g = c.benchmark_group(format!("encoder {name}"));
        g.sample_size(10);
        for batch in [1usize, 32] {
            let ids: Vec<u32> = (0..batch * 128)
                .map(|i| (i * 7919 % VOCAB) as u32)
                .collect();
            let ids = Tensor::from_vec(ids, (batch, 128), &Device::Cpu).expect("ids");
            let lengths = vec![128u32; batch];
            g.bench_function(format!("forward {batch}x128"), |b| {
                b.iter(|| model.forward(&ids, None, &lengths).expect("forward"))
            });
        }
        if name == "minilm-l6" {
            g.bench_function("load", |b| b.iter(|| load(&path, &raw)));
            let keep = std::env::var_os("TORCHLESS_BENCH_EMBED_DIR").map(std::path::PathBuf::from);
            let folder = keep.clone().unwrap_or_else(|| dir.join("st"));
            let texts = write_st_folder(&folder, &path, h, l, heads, inter).expect("st folder");
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let opts = LoadOptions {
                device: DeviceSpec::Cpu,
                ..Default::default()
            };
            let enc = SentenceEncoder::load(&folder, &opts).expect("load the folder");
            let ours = enc.embed(&refs, 32).expect("embed");
            if keep.is_some() {
                let json = serde_json::to_string(&ours).expect("json");
                std::fs::write(folder.join("ours.json"), json).expect("write ours.json");
            }
            g.bench_function("embed 256 mixed b32", |b| {
                b.iter(|| enc.embed(&refs, 32).expect("embed"))
            });
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fixture folder whose tokenizer the mixed-length texts use.
fn fixture_folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bert/tiny-st")
}

/// A sentence-transformers folder (mean pooling, normalised, `max_seq_length` 256) around the
/// random `weights` of an encoder of these sizes, with the fixture's tokenizer; returns 256
/// texts of 5–400 tokens (uniform, seeded) built from whole-word vocabulary entries, one token
/// per word. Written to `folder/texts.json` too.
fn write_st_folder(
    folder: &Path,
    weights: &Path,
    h: usize,
    l: usize,
    heads: usize,
    inter: usize,
) -> std::io::Result<Vec<String>> {
    let fx = fixture_folder();
    std::fs::create_dir_all(folder.join("1_Pooling"))?;
    std::fs::create_dir_all(folder.join("2_Normalize"))?;
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "modules.json",
        "2_Normalize/config.json",
    ] {
        std::fs::copy(fx.join(f), folder.join(f))?;
    }
    std::fs::copy(weights, folder.join("model.safetensors"))?;
    let mut cfg = config_json(h, l, heads, inter);
    cfg["architectures"] = serde_json::json!(["BertModel"]);
    let write = |name: &str, v: serde_json::Value| std::fs::write(folder.join(name), v.to_string());
    write("config.json", cfg)?;
    write(
        "sentence_bert_config.json",
        serde_json::json!({"max_seq_length": 256, "do_lower_case": false}),
    )?;
    write(
        "1_Pooling/config.json",
        serde_json::json!({"embedding_dimension": h, "pooling_mode": "mean", "include_prompt": true}),
    )?;
    let vocab = std::fs::read_to_string(fx.join("vocab.txt"))?;
    let words: Vec<&str> = vocab
        .lines()
        .filter(|w| w.len() >= 2 && w.bytes().all(|b| b.is_ascii_lowercase()))
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let texts: Vec<String> = (0..256)
        .map(|_| {
            let tokens = 5 + next() % 396; // [CLS] + words + [SEP]
            (0..tokens - 2)
                .map(|_| words[next() % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    write("texts.json", serde_json::json!(texts))?;
    Ok(texts)
}

criterion_group!(benches, encoder);
criterion_main!(benches);
