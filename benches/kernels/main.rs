//! CPU criterion benchmarks: every fused op against the unfused candle composition it
//! replaces, at batch-1 inference sizes, f32. Run: `cargo bench -p torchless-benches --bench kernels`.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless_benches::cases::{all, Size};

fn kernels(c: &mut Criterion) {
    let cases = all(&Device::Cpu, Size::Inference).expect("build cases");
    for case in cases.into_iter().filter(|c| c.dtype == DType::F32) {
        let mut g = c.benchmark_group(format!("{} {} {:?}", case.op, case.shape, case.dtype));
        g.throughput(criterion::Throughput::Bytes(case.bytes as u64));
        g.bench_function("fused", |b| b.iter(|| (case.fused)().expect("fused")));
        g.bench_function("unfused", |b| b.iter(|| (case.unfused)().expect("unfused")));
        g.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
