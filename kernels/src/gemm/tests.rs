use super::*;
use crate::testing::seeded;

/// Every family this CPU runs.
fn families() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| i.available())
        .collect()
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    seeded(&[len], seed, -1.0, 1.0, DType::F32, &Device::Cpu)
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap_or_else(|e| panic!("seeded values: {e}"))
}

/// `act(a · b + bias + row_bias + residual)` in f64, `a` `(i, p)` at `a[i*ars + p*acs]`, `b`
/// `(p, j)` at `b[p*brs + j*bcs]`; with the bound `Σ|a||b|` per element for the tolerance.
#[allow(clippy::too_many_arguments)]
fn naive(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
    epi: &Epilogue,
) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut g) = (0f64, 0f64);
            for p in 0..k {
                let x = f64::from(a[i * ars + p * acs]) * f64::from(b[p * brs + j * bcs]);
                s += x;
                g += x.abs();
            }
            s += epi.bias.map_or(0.0, |b| f64::from(b[j]));
            s += epi.row_bias.map_or(0.0, |b| f64::from(b[i]));
            s += epi.residual.map_or(0.0, |r| f64::from(r[i * n + j]));
            let mut v = s as f32;
            if let Some(act) = epi.act {
                let mut one = [v];
                act.row_fn()(&mut one);
                v = one[0];
            }
            out[i * n + j] = v;
            mag[i * n + j] = g as f32 + 1.0;
        }
    }
    (out, mag)
}

fn assert_close(got: &[f32], want: &[f32], mag: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((g, w), m)) in got.iter().zip(want).zip(mag).enumerate() {
        // f32 accumulation over K terms: a few ulps of the magnitude sum.
        let tol = 4e-6 * m;
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// Shapes with every odd size (1, 7, 17, 255, 1025) in every position, `K` across several
/// `KC` blocks, `M` and `N` across several tiles and partial micro-tiles.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1025, 255),
    (7, 255, 1025),
    (17, 1025, 17),
    (255, 17, 255),
    (1025, 7, 17),
    (1025, 255, 7),
    (1, 7, 1),
    (17, 17, 1025),
    (255, 1, 7),
];

#[test]
fn matches_the_naive_product_at_odd_shapes_for_every_family() {
    for isa in families() {
        for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = values(m * k, 10 + s as u64);
            let w = values(k * n, 20 + s as u64);
            let b = PackedB::pack_for(isa, &w, k, n, n, 1).unwrap_or_else(|e| panic!("{e}"));
            let mut c = vec![f32::NAN; m * n];
            let ar = MatRef::new(&a, m, k, k, 1).unwrap_or_else(|e| panic!("{e}"));
            gemm(&ar, &b, &mut c, n, &Epilogue::default()).unwrap_or_else(|e| panic!("{e}"));
            let (want, mag) = naive((m, k, n), &a, (k, 1), &w, (n, 1), &Epilogue::default());
            assert_close(&c, &want, &mag, &format!("{} {m}x{k}x{n}", isa.name()));
        }
    }
}

#[test]
fn strided_operands_and_every_epilogue() {
    let (m, k, n) = (37, 300, 45);
    for isa in families() {
        // A transposed (column-major) and B given as an `[N, K]` nn.Linear weight.
        let a = values(m * k, 1);
        let w = values(n * k, 2);
        let bias = values(n, 3);
        let row_bias = values(m, 4);
        let residual = values(m * n, 5);
        let b = PackedB::pack_for(isa, &w, k, n, 1, k).unwrap_or_else(|e| panic!("{e}"));
        for act in [
            None,
            Some(Activation::GeluErf),
            Some(Activation::GeluTanh),
            Some(Activation::Relu),
            Some(Activation::Silu),
        ] {
            let epi = Epilogue {
                bias: Some(&bias),
                row_bias: Some(&row_bias),
                residual: Some(&residual),
                act,
            };
            let mut c = vec![f32::NAN; m * n];
            let ar = MatRef::new(&a, m, k, 1, m).unwrap_or_else(|e| panic!("{e}"));
            gemm(&ar, &b, &mut c, n, &epi).unwrap_or_else(|e| panic!("{e}"));
            let (want, mag) = naive((m, k, n), &a, (1, m), &w, (1, k), &epi);
            assert_close(&c, &want, &mag, &format!("{} {act:?}", isa.name()));
        }
    }
}

#[test]
fn thread_counts_and_row_strides_of_c() {
    let (m, k, n) = (130, 70, 200);
    let a = values(m * k, 7);
    let w = values(k * n, 8);
    let (want, mag) = naive((m, k, n), &a, (k, 1), &w, (n, 1), &Epilogue::default());
    let b = PackedB::pack(&w, k, n, n, 1).unwrap_or_else(|e| panic!("{e}"));
    for threads in [1, 2, 3, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // C inside a wider buffer: the columns past `n` must stay untouched.
        let ldc = n + 3;
        let mut c = vec![-7f32; m * ldc];
        pool.install(|| {
            let ar = MatRef::new(&a, m, k, k, 1).unwrap_or_else(|e| panic!("{e}"));
            gemm(&ar, &b, &mut c, ldc, &Epilogue::default())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<f32> = c.chunks(ldc).flat_map(|r| r[..n].to_vec()).collect();
        assert_close(&got, &want, &mag, &format!("{threads} threads"));
        assert!(
            c.chunks(ldc).all(|r| r[n..] == [-7.0; 3]),
            "{threads} threads"
        );
    }
}

#[test]
fn empty_depth_gives_the_epilogue_of_zero() {
    let b = PackedB::pack(&[], 0, 3, 3, 1).unwrap_or_else(|e| panic!("{e}"));
    let a = MatRef::new(&[], 2, 0, 0, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut c = vec![f32::NAN; 6];
    let bias = [1.0, -2.0, 3.0];
    let epi = Epilogue {
        bias: Some(&bias),
        act: Some(Activation::Relu),
        ..Epilogue::default()
    };
    gemm(&a, &b, &mut c, 3, &epi).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, [1.0, 0.0, 3.0, 1.0, 0.0, 3.0]);
}

#[test]
fn unpack_round_trips_and_bad_shapes_are_errors() {
    for isa in families() {
        let (k, n) = (300, 33);
        let w = values(k * n, 9);
        let b = PackedB::pack_for(isa, &w, k, n, n, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.unpack(), w, "{}", isa.name());
        let a = values(5 * 299, 1);
        let ar = MatRef::new(&a, 5, 299, 299, 1).unwrap_or_else(|e| panic!("{e}"));
        let mut c = vec![0f32; 5 * n];
        let err = gemm(&ar, &b, &mut c, n, &Epilogue::default());
        assert!(err.is_err_and(|e| e.to_string().contains("299 columns")));
    }
    assert!(PackedB::pack(&[0.0; 5], 2, 3, 3, 1).is_err());
    assert!(MatRef::new(&[0.0; 5], 2, 3, 3, 1).is_err());
    let b = PackedB::pack(&[0.0; 6], 2, 3, 3, 1).unwrap_or_else(|e| panic!("{e}"));
    let ar = MatRef::new(&[0.0; 4], 2, 2, 2, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut c = vec![0f32; 5];
    assert!(gemm(&ar, &b, &mut c, 3, &Epilogue::default()).is_err());
}

#[test]
fn tensor_entry_point_reads_views_in_place() -> Result<()> {
    // The input is a transposed, narrowed view; the weight an `[N, K]` tensor's transpose.
    let (m, k, n) = (9, 40, 21);
    let xt = seeded(&[k + 2, m], 31, -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let x = xt.narrow(0, 1, k)?.t()?;
    assert!(!x.is_contiguous());
    let w = seeded(&[n, k], 32, -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let bias = seeded(&[n], 33, -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let res = seeded(&[m, n], 34, -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let b = PackedB::from_tensor(&w.t()?)?;
    let got = matmul(&x, &b, Some(&bias), Some(&res), Some(Activation::Silu))?;
    let want = crate::activation::bias_act_reference(
        &(x.matmul(&w.t()?)? + &res)?,
        Some(&bias),
        Activation::Silu,
    )?;
    let diff = (got - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    assert!(diff < 1e-4, "max |difference| {diff}");
    assert_eq!(b.to_tensor()?.to_vec2::<f32>()?, w.t()?.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn packed_left_operand_with_a_strided_right_one() {
    for isa in families() {
        for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
            let w = values(m * k, 40 + s as u64);
            let x = values(k * n, 50 + s as u64);
            let row_bias = values(m, 60 + s as u64);
            let a = PackedA::pack_for(isa, &w, m, k, k, 1).unwrap_or_else(|e| panic!("{e}"));
            // The right operand column-major (row stride 1) to exercise the strided packing.
            let b = MatRef::new(&x, k, n, 1, k).unwrap_or_else(|e| panic!("{e}"));
            let epi = Epilogue {
                row_bias: Some(&row_bias),
                act: Some(Activation::Relu),
                ..Epilogue::default()
            };
            let mut c = vec![f32::NAN; m * n];
            gemm_packed_a(&a, &b, &mut c, n, &epi).unwrap_or_else(|e| panic!("{e}"));
            let (want, mag) = naive((m, k, n), &w, (k, 1), &x, (1, k), &epi);
            assert_close(&c, &want, &mag, &format!("{} {m}x{k}x{n}", isa.name()));
        }
    }
}

#[test]
fn half_precision_weights_are_widened_exactly() -> Result<()> {
    for isa in families() {
        for dtype in [DType::BF16, DType::F16] {
            for (s, &(m, k, n)) in SHAPES.iter().enumerate().take(6) {
                let w = seeded(&[n, k], 70 + s as u64, -1.0, 1.0, dtype, &Device::Cpu)?;
                // The weight as the f32 values it holds: the reference's operand.
                let wf = w.to_dtype(DType::F32)?.t()?.contiguous()?;
                let b = PackedB::from_tensor_for(isa, &w.t()?)?;
                assert_eq!(b.dtype(), dtype);
                assert_eq!(
                    b.to_tensor()?.to_dtype(DType::F32)?.to_vec2::<f32>()?,
                    wf.to_vec2::<f32>()?
                );
                let a = values(m * k, 80 + s as u64);
                let ar = MatRef::new(&a, m, k, k, 1)?;
                let mut c = vec![f32::NAN; m * n];
                gemm(&ar, &b, &mut c, n, &Epilogue::default())?;
                let wv = wf.flatten_all()?.to_vec1::<f32>()?;
                let (want, mag) = naive((m, k, n), &a, (k, 1), &wv, (n, 1), &Epilogue::default());
                assert_close(
                    &c,
                    &want,
                    &mag,
                    &format!("{} {dtype:?} {m}x{k}x{n}", isa.name()),
                );
            }
        }
    }
    Ok(())
}
