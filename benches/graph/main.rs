//! CPU benchmark of the graph runtime (`torchless run`) next to the hand-written models: an
//! exported `transformers.BertModel` (all-MiniLM-L6-v2 and bert-base shapes) and a torchvision
//! ResNet-50, from the `.pt2` archives and state_dicts `benches/graph_vs_torch.py` writes into
//! `$TORCHLESS_GRAPH_BENCH_DIR` (the script also times PyTorch eager on the same weights and
//! prints the ratios). Groups: `graph <model>` with `graph <shape>`, `hand <shape>` and, for
//! MiniLM, `load` (mmap + compile of the program).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless::{Classifier, DeviceSpec, LoadOptions, Program, ResNetArch, Weights};
use torchless_models::bert::{BertModel, RawBertConfig};

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    }
}

fn bert(c: &mut Criterion, dir: &Path, name: &str) {
    let folder = dir.join(name);
    let program = Program::load(&folder.join("program.pt2"), &cpu()).expect("load program");
    let raw: RawBertConfig = serde_json::from_str(
        &std::fs::read_to_string(folder.join("config.json")).expect("config.json"),
    )
    .expect("config");
    let weights = Arc::new(Weights::open(&folder.join("model.safetensors")).expect("weights"));
    let hand = BertModel::load(
        weights.var_builder(DType::F32, &Device::Cpu),
        raw.into_config().expect("config"),
    )
    .expect("load hand-written");
    let mut g = c.benchmark_group(format!("graph {name}"));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 32] {
        let ids: Vec<i64> = (0..batch * 128)
            .map(|i| (i * 7919 % 30522) as i64)
            .collect();
        let ids64 = Tensor::from_vec(ids.clone(), (batch, 128), &Device::Cpu).expect("ids");
        let mask = Tensor::ones((batch, 128), DType::I64, &Device::Cpu).expect("mask");
        let ids32 = ids64.to_dtype(DType::U32).expect("ids");
        let lengths = vec![128u32; batch];
        g.bench_function(format!("graph {batch}x128"), |b| {
            b.iter(|| program.run(&[ids64.clone(), mask.clone()]).expect("run"))
        });
        g.bench_function(format!("hand {batch}x128"), |b| {
            b.iter(|| hand.forward(&ids32, None, &lengths).expect("forward"))
        });
    }
    if name == "minilm-l6" {
        g.bench_function("load", |b| {
            b.iter(|| Program::load(&folder.join("program.pt2"), &cpu()).expect("load"))
        });
    }
    g.finish();
}

fn resnet(c: &mut Criterion, dir: &Path) {
    let folder = dir.join("resnet50");
    let program = Program::load(&folder.join("program.pt2"), &cpu()).expect("load program");
    let hand = Classifier::load(
        &folder.join("model.safetensors"),
        ResNetArch::ResNet50,
        &cpu(),
    )
    .expect("load hand-written");
    let mut g = c.benchmark_group("graph resnet50");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    for batch in [1usize, 32] {
        let x: Vec<f32> = (0..batch * 3 * 224 * 224)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let t = Tensor::from_vec(x.clone(), (batch, 3, 224, 224), &Device::Cpu).expect("x");
        g.bench_function(format!("graph {batch}x3x224x224"), |b| {
            b.iter(|| program.run(std::slice::from_ref(&t)).expect("run"))
        });
        g.bench_function(format!("hand {batch}x3x224x224"), |b| {
            b.iter(|| hand.classify(&x, batch).expect("forward"))
        });
    }
    g.finish();
}

fn graph(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("TORCHLESS_GRAPH_BENCH_DIR").map(PathBuf::from) else {
        eprintln!(
            "graph bench: set TORCHLESS_GRAPH_BENCH_DIR (benches/graph_vs_torch.py writes it); skipped"
        );
        return;
    };
    for name in ["minilm-l6", "bert-base"] {
        bert(c, &dir, name);
    }
    resnet(c, &dir);
}

criterion_group!(benches, graph);
criterion_main!(benches);
