//! CPU benchmark of BERT encoders (all-MiniLM-L6-v2-sized and bert-base-sized, random weights):
//! forward latency at batch 1 × 128 and 32 × 128 tokens, and model load time (mmap + prepare).
//! `benches/encoder_vs_torch.py` runs this next to PyTorch eager with the same thread count and
//! prints the ratios. Run alone: `cargo bench -p torchless-benches --bench encoder`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless::Weights;
use torchless_kernels::testing::seeded;
use torchless_models::bert::{BertModel, RawBertConfig};

/// (name, hidden, layers, heads, intermediate)
const MODELS: &[(&str, usize, usize, usize, usize)] = &[
    ("minilm-l6", 384, 6, 12, 1536),
    ("bert-base", 768, 12, 12, 3072),
];
const VOCAB: usize = 30522;

fn config(h: usize, l: usize, heads: usize, inter: usize) -> RawBertConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": VOCAB, "hidden_size": h, "num_hidden_layers": l,
        "num_attention_heads": heads, "intermediate_size": inter,
        "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "model_type": "bert"
    }))
    .expect("valid config")
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
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, encoder);
criterion_main!(benches);
