//! CPU benchmark of torchvision ResNets (resnet18 and resnet50 with random weights, BatchNorm
//! statistics included): forward latency at batch 1 and 8 on 3 × 224 × 224 inputs, through the
//! public `Classifier` (BN folded at load). `benches/resnet_vs_torch.py` runs this next to
//! PyTorch eager with the same thread count and prints the ratios. Run alone:
//! `cargo bench -p torchless-benches --bench resnet`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless::{Classifier, DeviceSpec, LoadOptions, ResNetArch};
use torchless_kernels::testing::seeded;

const CLASSES: usize = 1000;

/// Writes a random torchvision state_dict of `arch` (running variances kept positive).
fn write_weights(path: &Path, arch: ResNetArch) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for (seed, (name, shape)) in arch.state_dict_shapes(CLASSES).into_iter().enumerate() {
        let seed = seed as u64 + 1;
        let v = if name.ends_with("num_batches_tracked") {
            Tensor::zeros((), DType::I64, &dev)?
        } else if shape.len() == 4 || name == "fc.weight" {
            let fan_in: usize = shape[1..].iter().product();
            let a = (3.0 / fan_in as f32).sqrt();
            seeded(&shape, seed, -a, a, DType::F32, &dev)?
        } else if name.ends_with("running_var") || name.ends_with(".weight") {
            seeded(&shape, seed, 0.5, 1.5, DType::F32, &dev)?
        } else {
            seeded(&shape, seed, -0.1, 0.1, DType::F32, &dev)?
        };
        t.insert(name, v);
    }
    candle_core::safetensors::save(&t, path)
}

fn resnet(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("torchless-bench-resnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    };
    for arch in [ResNetArch::ResNet18, ResNetArch::ResNet50] {
        let path = dir.join(format!("{arch}.safetensors"));
        write_weights(&path, arch).expect("write weights");
        let model = Classifier::load(&path, arch, &opts).expect("load");
        let mut g = c.benchmark_group(format!("resnet {arch}"));
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(5));
        for batch in [1usize, 8] {
            let x: Vec<f32> = (0..batch * 3 * 224 * 224)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            g.bench_function(format!("forward {batch}x3x224x224"), |b| {
                b.iter(|| model.classify(&x, batch).expect("forward"))
            });
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, resnet);
criterion_main!(benches);
