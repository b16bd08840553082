//! `torchless_run` on `torch.export` programs (`tests/fixtures/graph/<case>/program.pt2`):
//! every output of `ops_int` (int64, bool, float16, a 0-dim float32 in; int64, int32, bool,
//! float16, bfloat16, float32 out) and of `ops_elementwise` against PyTorch's `out_*.npy`
//! (integers and bools exact, floats within the case's `rtol` of the largest value), the
//! two-call pattern (size query, then the kept result; other inputs are run afresh), and the
//! refusals: input count, dtype, sizes, dynamic-size range, descriptor mistakes, NULLs and the
//! wrong model kind both ways.

use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use serde_json::Value;
use torchless::capi::*;
use torchless::convert::DType as TD;
use torchless::npy::{read_npy_typed, NpyTyped};

use super::common::{info, last_error, Model};

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/graph")
        .join(case)
}

fn case_json(case: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir(case).join("case.json")).unwrap()).unwrap()
}

fn load_path(path: &Path) -> (TorchlessStatus, Model) {
    let p = CString::new(path.to_str().unwrap()).unwrap();
    let cpu = CString::new("cpu").unwrap();
    let mut m = null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe { torchless_model_load(p.as_ptr(), cpu.as_ptr(), null(), &mut m) };
    (s, Model(m))
}

fn load(case: &str) -> Model {
    let (s, m) = load_path(&dir(case).join("program.pt2"));
    assert_eq!(s, TorchlessStatus::Ok, "{case}");
    m
}

fn code(d: TD) -> i32 {
    (match d {
        TD::F32 => TorchlessDtype::F32,
        TD::F16 => TorchlessDtype::F16,
        TD::BF16 => TorchlessDtype::Bf16,
        TD::F64 => TorchlessDtype::F64,
        TD::I64 => TorchlessDtype::I64,
        TD::I32 => TorchlessDtype::I32,
        TD::I16 => TorchlessDtype::I16,
        TD::I8 => TorchlessDtype::I8,
        TD::U8 => TorchlessDtype::U8,
        TD::Bool => TorchlessDtype::Bool,
        other => panic!("dtype {other}"),
    }) as i32
}

fn torch_dtype(name: &str) -> TD {
    match name {
        "float32" => TD::F32,
        "float16" => TD::F16,
        "bfloat16" => TD::BF16,
        "float64" => TD::F64,
        "int64" => TD::I64,
        "int32" => TD::I32,
        "bool" => TD::Bool,
        "uint8" => TD::U8,
        other => panic!("dtype {other} in case.json"),
    }
}

/// The input arrays of one set (`in_0.npy`, ... as the case declares them).
fn arrays(set: &Path, n: usize) -> Vec<NpyTyped> {
    (0..n)
        .map(|i| read_npy_typed(&set.join(format!("in_{i}.npy"))).unwrap())
        .collect()
}

/// Owned inputs: the shapes the descriptors point into.
struct Inputs {
    arrays: Vec<NpyTyped>,
    shapes: Vec<Vec<i64>>,
}

impl Inputs {
    fn new(arrays: Vec<NpyTyped>) -> Inputs {
        let shapes = arrays
            .iter()
            .map(|a| a.shape.iter().map(|&d| d as i64).collect())
            .collect();
        Inputs { arrays, shapes }
    }

    fn descs(&self) -> Vec<TorchlessTensor> {
        self.arrays
            .iter()
            .zip(&self.shapes)
            .map(|(a, s)| TorchlessTensor {
                dtype: code(a.dtype),
                ndim: s.len(),
                shape: s.as_ptr(),
                data: a.data.as_ptr().cast::<c_void>(),
                data_bytes: a.data.len(),
            })
            .collect()
    }
}

/// Output buffers of the given capacities and their descriptors.
struct Outputs {
    shapes: Vec<Vec<i64>>,
    data: Vec<Vec<u8>>,
    descs: Vec<TorchlessTensorOut>,
}

impl Outputs {
    fn new(n: usize, shape_cap: usize, data_cap: usize) -> Outputs {
        Outputs::sized(&vec![(shape_cap, data_cap); n])
    }

    fn sized(caps: &[(usize, usize)]) -> Outputs {
        let mut shapes: Vec<Vec<i64>> = caps.iter().map(|&(s, _)| vec![-1; s]).collect();
        let mut data: Vec<Vec<u8>> = caps.iter().map(|&(_, d)| vec![0xAA; d]).collect();
        let descs = shapes
            .iter_mut()
            .zip(&mut data)
            .map(|(s, d)| TorchlessTensorOut {
                dtype: 0,
                ndim: usize::MAX,
                shape: if s.is_empty() {
                    null_mut()
                } else {
                    s.as_mut_ptr()
                },
                shape_capacity: s.len(),
                data: if d.is_empty() {
                    null_mut()
                } else {
                    d.as_mut_ptr().cast()
                },
                data_capacity: d.len(),
                data_bytes: usize::MAX,
            })
            .collect();
        Outputs {
            shapes,
            data,
            descs,
        }
    }
}

fn run(m: &Model, inputs: &[TorchlessTensor], outs: &mut Outputs) -> TorchlessStatus {
    // SAFETY: descriptors point into live buffers of the stated sizes.
    unsafe {
        torchless_run(
            m.0,
            inputs.as_ptr(),
            inputs.len(),
            outs.descs.as_mut_ptr(),
            outs.descs.len(),
        )
    }
}

fn signature(m: &Model) -> (TorchlessStatus, usize, usize) {
    let (mut i, mut o) = (0usize, 0usize);
    // SAFETY: a live handle and writable out-parameters.
    let s = unsafe { torchless_program_signature(m.0, &mut i, &mut o) };
    (s, i, o)
}

/// The values of `bytes` of C dtype `code` as f64 (exact for every integer here).
fn values(code: i32, bytes: &[u8]) -> Vec<f64> {
    let w = |n: usize| bytes.chunks_exact(n);
    match code {
        c if c == TorchlessDtype::F32 as i32 => w(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        c if c == TorchlessDtype::F16 as i32 => w(2)
            .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f64())
            .collect(),
        c if c == TorchlessDtype::Bf16 as i32 => w(2)
            .map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f64())
            .collect(),
        c if c == TorchlessDtype::F64 as i32 => w(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        c if c == TorchlessDtype::I64 as i32 => w(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        c if c == TorchlessDtype::I32 as i32 => w(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        c if c == TorchlessDtype::I16 as i32 => w(2)
            .map(|c| f64::from(i16::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        c if c == TorchlessDtype::I8 as i32 => bytes.iter().map(|&b| f64::from(b as i8)).collect(),
        _ => bytes.iter().map(|&b| f64::from(b)).collect(),
    }
}

/// Every output of a successful run against the set's `out_*.npy`.
fn compare(case: &str, set: &Path, outs: &Outputs, json: &Value) {
    let rtol = json["rtol"].as_f64().unwrap_or(1e-4);
    let specs = json["outputs"].as_array().unwrap();
    assert_eq!(outs.descs.len(), specs.len());
    for (i, (o, spec)) in outs.descs.iter().zip(specs).enumerate() {
        let label = format!("{case} output {i} ({})", spec["op"].as_str().unwrap_or(""));
        let want = read_npy_typed(&set.join(format!("out_{i}.npy"))).unwrap();
        let dtype = torch_dtype(spec["dtype"].as_str().unwrap());
        assert_eq!(o.dtype, code(dtype), "{label}: dtype");
        let shape: Vec<usize> = outs.shapes[i][..o.ndim]
            .iter()
            .map(|&d| d as usize)
            .collect();
        assert_eq!(shape, want.shape, "{label}: shape");
        let n: usize = shape.iter().product();
        assert_eq!(o.data_bytes, n * dtype.size(), "{label}: data_bytes");
        let got = values(o.dtype, &outs.data[i][..o.data_bytes]);
        let w = values(code(want.dtype), &want.data);
        if !matches!(dtype, TD::F32 | TD::F16 | TD::BF16 | TD::F64) {
            assert_eq!(got, w, "{label}: values");
            continue;
        }
        let scale = w
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f64, |m, x| m.max(x.abs()))
            .max(1e-6);
        for (a, b) in got.iter().zip(&w) {
            if b.is_nan() {
                assert!(a.is_nan(), "{label}: {a} where PyTorch has NaN");
            } else if b.is_infinite() {
                assert_eq!(a, b, "{label}: infinities differ");
            } else {
                // f16 outputs: within 1e-3 of the largest value (one f16 rounding).
                let tol = if dtype == TD::F16 {
                    rtol.max(1e-3)
                } else {
                    rtol
                };
                assert!(
                    (a - b).abs() / scale <= tol,
                    "{label}: {a} vs PyTorch's {b}"
                );
            }
        }
    }
}

/// Runs one set with exact-size buffers (after a size query) and compares every output.
fn run_and_compare(case: &str, m: &Model, set: &Path) {
    let json = case_json(case);
    let n_in = json["inputs"].as_array().unwrap().len();
    let inputs = Inputs::new(arrays(set, n_in));
    let descs = inputs.descs();
    let (_, _, n_out) = signature(m);
    let mut query = Outputs::new(n_out, 0, 0);
    assert_eq!(run(m, &descs, &mut query), TorchlessStatus::BufferTooSmall);
    let caps: Vec<(usize, usize)> = query.descs.iter().map(|d| (d.ndim, d.data_bytes)).collect();
    let mut outs = Outputs::sized(&caps);
    assert_eq!(run(m, &descs, &mut outs), TorchlessStatus::Ok, "{case}");
    compare(case, set, &outs, &json);
}

#[test]
fn ops_int_runs_as_pytorch_through_the_two_call_pattern() {
    let m = load("ops_int");
    let (kind, dim, arch, name) = info(&m);
    assert_eq!(kind, TorchlessModelKind::Program);
    assert_eq!(
        (dim, arch.as_str(), name.as_str()),
        (27, "torch.export", "program.pt2")
    );
    assert_eq!(signature(&m), (TorchlessStatus::Ok, 5, 27));

    let json = case_json("ops_int");
    let inputs = Inputs::new(arrays(&dir("ops_int"), 5));
    let descs = inputs.descs();
    // The size query writes dtype, ndim and data_bytes of every output and nothing else.
    let mut outs = Outputs::new(27, 0, 0);
    assert_eq!(run(&m, &descs, &mut outs), TorchlessStatus::BufferTooSmall);
    assert!(last_error()
        .starts_with("outputs[0] needs 2 shape entries (shape_capacity 0) and 80 data bytes"));
    let specs = json["outputs"].as_array().unwrap();
    for (o, spec) in outs.descs.iter().zip(specs) {
        let dtype = torch_dtype(spec["dtype"].as_str().unwrap());
        let shape = spec["shape"].as_array().unwrap();
        let n: usize = shape.iter().map(|d| d.as_u64().unwrap() as usize).product();
        assert_eq!(
            (o.dtype, o.ndim, o.data_bytes),
            (code(dtype), shape.len(), n * dtype.size())
        );
    }
    // Shapes that fit are written; data never is on BUFFER_TOO_SMALL.
    let mut partial = Outputs::new(27, 2, 8);
    assert_eq!(
        run(&m, &descs, &mut partial),
        TorchlessStatus::BufferTooSmall
    );
    assert_eq!(partial.shapes[0], vec![2, 5]);
    assert_eq!(partial.shapes[20], vec![5, -1], "max over dim 0: [5]");
    assert!(partial.data.iter().all(|d| d.iter().all(|&b| b == 0xAA)));

    // Second call, buffers grown: the result of the first call (kept for this thread).
    let caps: Vec<(usize, usize)> = outs.descs.iter().map(|d| (d.ndim, d.data_bytes)).collect();
    let mut outs = Outputs::sized(&caps);
    assert_eq!(run(&m, &descs, &mut outs), TorchlessStatus::Ok);
    compare("ops_int", &dir("ops_int"), &outs, &json);
    // Large buffers straight away: one call.
    let mut big = Outputs::new(27, 4, 1024);
    assert_eq!(run(&m, &descs, &mut big), TorchlessStatus::Ok);
    compare("ops_int", &dir("ops_int"), &big, &json);
}

#[test]
fn a_kept_result_is_not_reused_for_other_inputs() {
    let m = load("ops_int");
    let small = Inputs::new(arrays(&dir("ops_int"), 5));
    let mut query = Outputs::new(27, 0, 0);
    assert_eq!(
        run(&m, &small.descs(), &mut query),
        TorchlessStatus::BufferTooSmall
    );
    // The dynamic-batch set (batch 4 instead of 2) after the query on batch 2.
    let set = dir("ops_int").join("dyn");
    let dyn_inputs = Inputs::new(arrays(&set, 5));
    let mut outs = Outputs::new(27, 4, 1024);
    assert_eq!(run(&m, &dyn_inputs.descs(), &mut outs), TorchlessStatus::Ok);
    let mut json = case_json("ops_int");
    json["outputs"] = json["dyn"]["outputs"].clone();
    for (o, spec) in json["outputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(case_json("ops_int")["outputs"].as_array().unwrap())
    {
        o["op"] = spec["op"].clone();
    }
    compare("ops_int dyn", &set, &outs, &json);
    // Same inputs with a different byte: recomputed, not the kept batch-2 result.
    let mut changed = Inputs::new(arrays(&dir("ops_int"), 5));
    let mut query = Outputs::new(27, 0, 0);
    assert_eq!(
        run(&m, &changed.descs(), &mut query),
        TorchlessStatus::BufferTooSmall
    );
    changed.arrays[0].data[0] = changed.arrays[0].data[0].wrapping_add(1);
    let mut outs = Outputs::new(27, 4, 1024);
    assert_eq!(run(&m, &changed.descs(), &mut outs), TorchlessStatus::Ok);
    let a0 = i64::from_le_bytes(changed.arrays[0].data[..8].try_into().unwrap());
    let b0 = i64::from_le_bytes(changed.arrays[1].data[..8].try_into().unwrap());
    let sum0 = i64::from_le_bytes(outs.data[0][..8].try_into().unwrap());
    assert_eq!(sum0, a0 + b0, "output 0 is a + b of the changed inputs");
}

#[test]
fn ops_elementwise_float_outputs_match_pytorch() {
    let m = load("ops_elementwise");
    run_and_compare("ops_elementwise", &m, &dir("ops_elementwise"));
}

#[test]
fn bad_inputs_are_refused_with_the_programs_message() {
    let m = load("ops_int");
    let inputs = Inputs::new(arrays(&dir("ops_int"), 5));
    let good = inputs.descs();
    let mut outs = Outputs::new(27, 4, 1024);

    // Input count.
    assert_eq!(
        run(&m, &good[..4], &mut outs),
        TorchlessStatus::InvalidArgument
    );
    let e = last_error();
    assert!(
        e.ends_with("the program takes 5 input(s) (a, b, m, h, s0), got 4"),
        "{e}"
    );

    // Dtype: int64 data declared float64 (same size, so the program's check speaks).
    let mut bad = good.clone();
    bad[0].dtype = TorchlessDtype::F64 as i32;
    assert_eq!(run(&m, &bad, &mut outs), TorchlessStatus::InvalidArgument);
    let e = last_error();
    assert!(
        e.contains("input `a` is") && e.contains("exported for"),
        "{e}"
    );

    // Unknown dtype code; data_bytes that do not match the shape; a negative size.
    let mut bad = good.clone();
    bad[1].dtype = 42;
    assert_eq!(run(&m, &bad, &mut outs), TorchlessStatus::InvalidArgument);
    assert_eq!(
        last_error(),
        "inputs[1].dtype 42 is not a TorchlessDtype (1 to 10)"
    );
    let mut bad = good.clone();
    bad[3].data_bytes -= 1;
    assert_eq!(run(&m, &bad, &mut outs), TorchlessStatus::InvalidArgument);
    assert_eq!(
        last_error(),
        "inputs[3].data_bytes is 19, but shape [2, 5] of F16 needs 20"
    );
    let neg = [-2i64, 5];
    let mut bad = good.clone();
    bad[0].shape = neg.as_ptr();
    assert_eq!(run(&m, &bad, &mut outs), TorchlessStatus::InvalidArgument);
    assert_eq!(last_error(), "inputs[0].shape [-2, 5] has a negative size");

    // A static size: the fixed dim 1 (5) given as 10.
    let wide: Vec<NpyTyped> = inputs
        .arrays
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if a.shape.len() == 2 {
                a.shape[1] *= 2;
                a.data = [a.data.clone(), a.data.clone()].concat();
            }
            a
        })
        .collect();
    let wide = Inputs::new(wide);
    assert_eq!(
        run(&m, &wide.descs(), &mut outs),
        TorchlessStatus::InvalidArgument
    );
    let e = last_error();
    assert!(
        e.contains("input `a` dim 1 is 10") && e.contains("fixed at 5"),
        "{e}"
    );

    // The dynamic batch's range is [1, 16]: 17 is refused.
    let tall: Vec<NpyTyped> = inputs
        .arrays
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if a.shape.len() == 2 {
                let row = a.data.len() / a.shape[0];
                a.shape[0] = 17;
                a.data = a.data[..row].repeat(17);
            }
            a
        })
        .collect();
    let tall = Inputs::new(tall);
    assert_eq!(
        run(&m, &tall.descs(), &mut outs),
        TorchlessStatus::InvalidArgument
    );
    let e = last_error();
    assert!(e.contains("is 17, outside the range [1, 16]"), "{e}");

    // Output count and NULLs.
    let mut few = Outputs::new(26, 4, 1024);
    assert_eq!(run(&m, &good, &mut few), TorchlessStatus::InvalidArgument);
    assert_eq!(
        last_error(),
        "n_outputs is 26, the program has 27 output(s)"
    );
    // SAFETY: NULL output array and a NULL model are refused before anything is touched.
    unsafe {
        assert_eq!(
            torchless_run(m.0, good.as_ptr(), 5, null_mut(), 27),
            TorchlessStatus::NullPointer
        );
        assert_eq!(last_error(), "outputs is NULL");
        assert_eq!(
            torchless_run(m.0, null(), 5, outs.descs.as_mut_ptr(), 27),
            TorchlessStatus::NullPointer
        );
        assert_eq!(last_error(), "inputs is NULL");
        assert_eq!(
            torchless_run(null(), good.as_ptr(), 5, outs.descs.as_mut_ptr(), 27),
            TorchlessStatus::NullPointer
        );
        assert_eq!(
            torchless_program_signature(m.0, null_mut(), null_mut()),
            TorchlessStatus::NullPointer
        );
    }
    let mut bad = good.clone();
    bad[2].data = null();
    assert_eq!(run(&m, &bad, &mut outs), TorchlessStatus::NullPointer);
    assert_eq!(last_error(), "inputs[2].data is NULL");
    // A data buffer whose capacity is claimed but whose pointer is NULL.
    let mut nul = Outputs::new(27, 4, 1024);
    nul.descs[3].data = null_mut();
    assert_eq!(run(&m, &good, &mut nul), TorchlessStatus::NullPointer);
    assert_eq!(last_error(), "outputs[3].data is NULL");
    // After all that, the model still runs.
    assert_eq!(run(&m, &good, &mut outs), TorchlessStatus::Ok);
}

#[test]
fn wrong_kind_both_ways() {
    let m = load("ops_int");
    let text = CString::new("hello").unwrap();
    let texts: [*const c_char; 1] = [text.as_ptr()];
    let mut out = [0f32; 64];
    let (mut rows, mut dim) = (0usize, 0usize);
    // SAFETY: live buffers of the stated sizes.
    let s = unsafe {
        torchless_embed(
            m.0,
            texts.as_ptr(),
            1,
            out.as_mut_ptr(),
            64,
            &mut rows,
            &mut dim,
        )
    };
    assert_eq!(s, TorchlessStatus::WrongModelKind);
    assert!(last_error().ends_with("is a torch.export program: use torchless_run)"));

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert/tiny-st");
    let (s, enc) = load_path(&fixtures);
    assert_eq!(s, TorchlessStatus::Ok);
    let mut outs = Outputs::new(1, 4, 64);
    assert_eq!(run(&enc, &[], &mut outs), TorchlessStatus::WrongModelKind);
    assert!(last_error().starts_with("torchless_run: this model is not a torch.export program"));
    assert_eq!(signature(&enc).0, TorchlessStatus::WrongModelKind);

    // A missing .pt2 file is an I/O error naming it.
    let (s, missing) = load_path(&dir("ops_int").join("nope.pt2"));
    assert_eq!(s, TorchlessStatus::Io);
    assert!(missing.0.is_null());
    assert!(last_error().contains("nope.pt2"));
}

#[test]
fn threads_run_one_program_at_once_each_with_its_kept_result() {
    let m = load("ops_int");
    let base = arrays(&dir("ops_int"), 5);
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let (m, base) = (&m, &base);
            s.spawn(move || {
                // Each thread its own first element of `a`, so a mixed-up result shows.
                let mut mine = base.clone();
                mine[0].data[0] = mine[0].data[0].wrapping_add(t);
                let inputs = Inputs::new(mine);
                let descs = inputs.descs();
                let a = values(code(TD::I64), &inputs.arrays[0].data);
                let b = values(code(TD::I64), &inputs.arrays[1].data);
                let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
                for i in 0..4 {
                    let mut query = Outputs::new(27, 0, 0);
                    assert_eq!(
                        run(m, &descs, &mut query),
                        TorchlessStatus::BufferTooSmall,
                        "thread {t} call {i}"
                    );
                    let caps: Vec<(usize, usize)> =
                        query.descs.iter().map(|d| (d.ndim, d.data_bytes)).collect();
                    let mut outs = Outputs::sized(&caps);
                    assert_eq!(
                        run(m, &descs, &mut outs),
                        TorchlessStatus::Ok,
                        "thread {t} call {i}"
                    );
                    assert_eq!(
                        values(outs.descs[0].dtype, &outs.data[0]),
                        want,
                        "thread {t}"
                    );
                }
            });
        }
    });
}
