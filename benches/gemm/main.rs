//! The packed f32 GEMM (`torchless_kernels::gemm`) against candle's matmul at the shapes of the
//! models' linear layers, and the roofline's two roofs: the micro-kernel's peak FLOP/s (a tile
//! whose panels sit in L1) and streaming memory bandwidth with 1 and 2 threads.
//! Run: `RAYON_NUM_THREADS=2 cargo bench -p torchless-benches --bench gemm`;
//! `python benches/gemm_vs_torch.py` puts `torch.matmul` (MKL) next to it.
//!
//! Groups are `gemm MxKxN` (`M` input rows, `K` input features, `N` output features) with
//! `packed` (the process's kernel family), `packed avx2` (forced, where AVX-512 exists) and
//! `candle` (`x.matmul(w)`, `w` a contiguous `[K, N]`, as the models multiplied before).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use torchless_kernels::gemm::{self, microkernel_loop, PackedB};
use torchless_kernels::gemv::vec_mat;
use torchless_kernels::isa::{isa, Isa};
use torchless_kernels::testing::seeded;

/// `(M, K, N)` with where it comes from.
pub const SHAPES: [(usize, usize, usize, &str); 16] = [
    (1, 768, 3072, "gpt2 decode c_fc"),
    (1, 2048, 11264, "llama-1b decode gate_up"),
    (32, 768, 2304, "gpt2 prefill 32 c_attn"),
    (32, 768, 3072, "gpt2 prefill 32 c_fc"),
    (32, 3072, 768, "gpt2 prefill 32 c_proj"),
    (32, 2048, 11264, "llama-1b prefill 32 gate_up"),
    (128, 384, 1152, "minilm 1x128 qkv"),
    (128, 1536, 384, "minilm 1x128 output"),
    (128, 768, 2304, "bert-base 1x128 qkv"),
    (128, 768, 3072, "bert-base 1x128 intermediate"),
    (128, 3072, 768, "bert-base 1x128 output"),
    (512, 2048, 2048, "llama-1b prefill 512 o_proj"),
    (4096, 384, 1536, "minilm 32x128 intermediate"),
    (4096, 1536, 384, "minilm 32x128 output"),
    (4096, 768, 3072, "bert-base 32x128 intermediate"),
    (2048, 2048, 2048, "large square"),
];

fn rand(shape: &[usize], seed: u64) -> Tensor {
    seeded(shape, seed, -1.0, 1.0, DType::F32, &Device::Cpu).expect("random tensor")
}

fn products(c: &mut Criterion) {
    for (m, k, n, _) in SHAPES {
        let x = rand(&[m, k], 1);
        let w = rand(&[k, n], 2);
        let packed = PackedB::from_tensor(&w).expect("pack");
        let wv = w
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("weights");
        let mut g = c.benchmark_group(format!("gemm {m}x{k}x{n}"));
        g.warm_up_time(std::time::Duration::from_secs(1));
        g.measurement_time(std::time::Duration::from_secs(3));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        if m * k * n > 1 << 30 {
            g.sample_size(10);
        }
        g.bench_function("packed", |b| {
            b.iter(|| gemm::matmul(&x, &packed, None, None, None).expect("gemm"))
        });
        if isa() == Isa::Avx512 {
            let p2 = PackedB::pack_for(Isa::Avx2, &wv, k, n, n, 1).expect("pack avx2");
            g.bench_function("packed avx2", |b| {
                b.iter(|| gemm::matmul(&x, &p2, None, None, None).expect("gemm"))
            });
        }
        g.bench_function("candle", |b| b.iter(|| x.matmul(&w).expect("matmul")));
        if m == 1 {
            // The weight-streaming product the decoders used for one row before.
            g.bench_function("vec_mat", |b| b.iter(|| vec_mat(&x, &w).expect("vec_mat")));
        }
        g.finish();
    }
}

/// Sum with sixteen running lanes (vectorises, so the loop is bound by memory, not by one
/// chain of additions).
fn sum16(c: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for x in c.chunks_exact(16) {
        for i in 0..16 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum()
}

/// The roofline's roofs.
fn roofs(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm roof");
    let reps = 4096;
    for fam in [Isa::Avx512, Isa::Avx2] {
        if !fam.available() {
            continue;
        }
        let flops = microkernel_loop(fam, 1).expect("probe");
        g.throughput(Throughput::Elements((flops * reps) as u64));
        g.bench_function(format!("microkernel {} 1 thread", fam.name()), |b| {
            b.iter(|| microkernel_loop(fam, reps).expect("probe"))
        });
        let threads = rayon::current_num_threads();
        g.throughput(Throughput::Elements((flops * reps * threads) as u64));
        g.bench_function(format!("microkernel {} all threads", fam.name()), |b| {
            b.iter(|| {
                (0..threads)
                    .into_par_iter()
                    .map(|_| microkernel_loop(fam, reps).expect("probe"))
                    .sum::<usize>()
            })
        });
    }
    // Streaming: the sum of 1 GiB of f32 (far beyond the caches).
    let data = vec![1f32; 1 << 28];
    g.throughput(Throughput::Bytes((data.len() * 4) as u64));
    g.sample_size(10);
    g.bench_function("stream 1 thread", |b| {
        b.iter(|| data.chunks(1 << 16).map(sum16).sum::<f32>())
    });
    g.bench_function("stream all threads", |b| {
        b.iter(|| data.par_chunks(1 << 16).map(sum16).sum::<f32>())
    });
    g.finish();
}

criterion_group!(benches, roofs, products);
criterion_main!(benches);
