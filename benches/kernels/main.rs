//! CPU criterion benchmarks: every fused op against the unfused candle composition it
//! replaces, at batch-1 inference sizes, f32. Run: `cargo bench -p torchless-benches --bench kernels`.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use torchless_benches::cases::{all, Size};
use torchless_kernels::gemv::{vec_mat, vec_mat_t};
use torchless_kernels::layout::{transpose_cat, transpose_cat_reference};
use torchless_kernels::quant::{Int8Matrix, Kernel};
use torchless_kernels::testing::seeded;

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

/// The decode-step matrix-vector products and the load-time transpose, against candle.
fn cpu_only(c: &mut Criterion) {
    let dev = Device::Cpu;
    let rand = |shape: &[usize], seed| {
        seeded(shape, seed, -1.0, 1.0, DType::F32, &dev).expect("random tensor")
    };
    // GPT-2-small: c_fc [768, 3072] (Conv1D layout), the tied output projection [50257, 768].
    let x = rand(&[1, 768], 1);
    let w = rand(&[768, 3072], 2);
    let mut g = c.benchmark_group("vec_mat 1x768x3072 F32");
    g.throughput(criterion::Throughput::Bytes((768 * 3072 * 4) as u64));
    g.bench_function("fused", |b| b.iter(|| vec_mat(&x, &w).expect("vec_mat")));
    g.bench_function("unfused", |b| b.iter(|| x.matmul(&w).expect("matmul")));
    g.finish();
    let wte = rand(&[50257, 768], 3);
    let mut g = c.benchmark_group("vec_mat_t 1x768x50257 F32");
    g.throughput(criterion::Throughput::Bytes((768 * 50257 * 4) as u64));
    g.bench_function("fused", |b| {
        b.iter(|| vec_mat_t(&x, &wte).expect("vec_mat_t"))
    });
    g.bench_function("unfused", |b| {
        b.iter(|| x.matmul(&wte.t().expect("t")).expect("matmul"))
    });
    g.finish();
    // BERT-base q/k/v fused at load: three [768, 768] weights into one [768, 2304].
    let parts = [
        rand(&[768, 768], 4),
        rand(&[768, 768], 5),
        rand(&[768, 768], 6),
    ];
    let refs: Vec<&Tensor> = parts.iter().collect();
    let mut g = c.benchmark_group("transpose_cat 3x768x768 F32");
    g.throughput(criterion::Throughput::Bytes((2 * 3 * 768 * 768 * 4) as u64));
    g.bench_function("fused", |b| {
        b.iter(|| transpose_cat(&refs).expect("transpose_cat"))
    });
    g.bench_function("unfused", |b| {
        b.iter(|| transpose_cat_reference(&refs).expect("reference"))
    });
    g.finish();
}

/// int8 weights (`--quantize int8`) against the f32 decode product, at GPT-2-small's `c_fc`
/// (768 → 3072) and TinyLlama's `gate_proj` (2048 → 5632) shapes: one row (a decode step) with
/// every int8 kernel this CPU has, and 32 rows (a short prompt) against candle's matmul.
fn int8(c: &mut Criterion) {
    let dev = Device::Cpu;
    let rand = |shape: &[usize], seed| {
        seeded(shape, seed, -1.0, 1.0, DType::F32, &dev).expect("random tensor")
    };
    for (k, n) in [(768, 3072), (2048, 5632)] {
        let w = rand(&[k, n], 7);
        let q = Int8Matrix::from_in_out(&w).expect("quantize");
        for m in [1usize, 32] {
            let x = rand(&[m, k], 8);
            let xs = x
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values");
            let mut g = c.benchmark_group(format!("int8 {m}x{k}x{n}"));
            // Bytes of int8 weights read per call (the f32 rows read four times as many).
            g.throughput(criterion::Throughput::Bytes((k * n) as u64));
            g.bench_function("f32 vec_mat", |b| {
                b.iter(|| vec_mat(&x, &w).expect("vec_mat"))
            });
            g.bench_function("int8 auto", |b| b.iter(|| q.matmul(&x).expect("int8")));
            for kernel in [Kernel::Vnni, Kernel::Avx512, Kernel::Avx2, Kernel::Portable] {
                if !kernel.supported() || (m > 1 && kernel == Kernel::Portable) {
                    continue;
                }
                g.bench_function(format!("int8 {kernel:?}"), |b| {
                    b.iter(|| q.matmul_with(kernel, &xs, m).expect("int8"))
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, kernels, cpu_only, int8);
criterion_main!(benches);
