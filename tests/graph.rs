//! `torch.export` programs through the graph interpreter against PyTorch: every fixture of
//! `scripts/graph_fixtures.py` (`tests/fixtures/graph/<case>/`), as exported (training IR,
//! `program.pt2`) and after `run_decompositions()` (core ATen, `program_core.pt2`), at the
//! export's sizes and at other dynamic sizes (`dyn/`); and every refusal.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use torchless::convert::DType as TorchDType;
use torchless::npy::{read_npy_typed, NpyTyped};
use torchless::{LoadOptions, Program, TypedTensor};

use crate::common::{s, torchless};

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/graph")
        .join(case)
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: torchless::DeviceSpec::Cpu,
        ..LoadOptions::default()
    }
}

fn case_json(case: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir(case).join("case.json")).unwrap()).unwrap()
}

fn torch_dtype(name: &str) -> TorchDType {
    match name {
        "float32" => TorchDType::F32,
        "float16" => TorchDType::F16,
        "bfloat16" => TorchDType::BF16,
        "float64" => TorchDType::F64,
        "int64" => TorchDType::I64,
        "int32" => TorchDType::I32,
        "bool" => TorchDType::Bool,
        "uint8" => TorchDType::U8,
        other => panic!("dtype {other} in case.json"),
    }
}

fn candle_of(d: TorchDType) -> DType {
    match d {
        TorchDType::F32 => DType::F32,
        TorchDType::F16 => DType::F16,
        TorchDType::BF16 => DType::BF16,
        TorchDType::F64 => DType::F64,
        TorchDType::I64 => DType::I64,
        TorchDType::I32 => DType::I32,
        TorchDType::I16 => DType::I16,
        TorchDType::Bool | TorchDType::U8 => DType::U8,
        other => panic!("dtype {other}"),
    }
}

/// An `.npy` array as a tensor of the declared dtype (bf16 is saved as f32: cast).
fn input(npy: &NpyTyped, declared: TorchDType) -> TypedTensor {
    let t =
        Tensor::from_raw_buffer(&npy.data, candle_of(npy.dtype), &npy.shape, &Device::Cpu).unwrap();
    let t = if npy.dtype != declared {
        assert_eq!(
            (npy.dtype, declared),
            (TorchDType::F32, TorchDType::BF16),
            "only bf16 is saved as another dtype"
        );
        t.to_dtype(DType::BF16).unwrap()
    } else {
        t
    };
    TypedTensor {
        tensor: t,
        dtype: declared,
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Compares one output: integers and bools exactly, floats within `rtol * max|want|`.
fn compare(label: &str, got: &TypedTensor, want: &NpyTyped, want_dtype: TorchDType, rtol: f64) {
    assert_eq!(got.dtype, want_dtype, "{label}: dtype");
    assert_eq!(got.tensor.dims(), want.shape.as_slice(), "{label}: shape");
    let w = values(
        &Tensor::from_raw_buffer(&want.data, candle_of(want.dtype), &want.shape, &Device::Cpu)
            .unwrap(),
    );
    let g = values(&got.tensor);
    let is_float = matches!(
        want_dtype,
        TorchDType::F32 | TorchDType::F16 | TorchDType::BF16 | TorchDType::F64
    );
    if !is_float {
        assert_eq!(g, w, "{label}: values");
        return;
    }
    let scale = w
        .iter()
        .filter(|x| x.is_finite())
        .fold(0f64, |m, x| m.max(x.abs()))
        .max(1e-6);
    let mut worst = 0f64;
    for (a, b) in g.iter().zip(&w) {
        if b.is_nan() {
            assert!(a.is_nan(), "{label}: {a} where PyTorch has NaN");
            continue;
        }
        if b.is_infinite() {
            assert_eq!(a, b, "{label}: infinities differ");
            continue;
        }
        worst = worst.max((a - b).abs() / scale);
    }
    assert!(
        worst <= rtol,
        "{label}: max |got - want| / max|want| = {worst:.3e} > {rtol:.1e}"
    );
}

/// Runs one program file on one input set and compares every output.
fn run_set(case: &str, file: &str, set: &Path, json: &Value) {
    let program = Program::load(&dir(case).join(file), &cpu())
        .unwrap_or_else(|e| panic!("{case}/{file}: {e}"));
    let decls = json["inputs"].as_array().unwrap();
    let inputs: Vec<TypedTensor> = decls
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let npy = read_npy_typed(&set.join(format!("in_{i}.npy"))).unwrap();
            input(&npy, torch_dtype(d["dtype"].as_str().unwrap()))
        })
        .collect();
    let outs = program
        .run_typed(&inputs)
        .unwrap_or_else(|e| panic!("{case}/{file} on {}: {e}", set.display()));
    // case.json's rtol is 2x PyTorch's own half-precision deviation from f32 at the export
    // size; at the dyn size of mlp_f16 PyTorch's f16 softmax is 1.9e-3 off the f32 reference
    // (ours 9.2e-4), so half-precision outputs get at least 4e-3.
    let rtol = json["rtol"].as_f64().unwrap_or(1e-4);
    let specs = json["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), specs.len(), "{case}/{file}: output count");
    for (i, (got, spec)) in outs.iter().zip(specs).enumerate() {
        let want = read_npy_typed(&set.join(format!("out_{i}.npy"))).unwrap();
        let label = format!(
            "{case}/{file} {} output {i} ({})",
            set.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            spec["op"].as_str().unwrap_or("")
        );
        let dt = torch_dtype(spec["dtype"].as_str().unwrap());
        let rtol = if matches!(dt, TorchDType::F16 | TorchDType::BF16) {
            rtol.max(4e-3)
        } else {
            rtol
        };
        compare(&label, got, &want, dt, rtol);
    }
}

fn check(case: &str) {
    let json = case_json(case);
    for file in ["program.pt2", "program_core.pt2"] {
        run_set(case, file, &dir(case), &json);
        if dir(case).join("dyn").is_dir() {
            run_set(case, file, &dir(case).join("dyn"), &json);
        }
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

cases!(
    mlp_acts,
    resnet_small,
    mobilenet_block,
    convnext_block,
    vit_tiny,
    transformer_encoder,
    transformer_encoder_gelu_prenorm,
    bert_tiny,
    llama_tiny,
    unet_tiny,
    ops_elementwise,
    ops_reduce,
    ops_shape,
    ops_index,
    ops_nn,
    ops_create,
    ops_int,
    mlp_f16,
    cnn_bf16,
    mixed_cast,
);

fn load_err(path: &Path) -> String {
    Program::load(path, &cpu()).unwrap_err().to_string()
}

#[test]
fn refuses_control_flow_and_custom_ops_by_name() {
    let e = load_err(&dir("refuse_custom_op").join("program.pt2"));
    assert!(e.contains("mylib.twice") && e.contains("custom op"), "{e}");
    let e = load_err(&dir("refuse_cond").join("program.pt2"));
    assert!(
        e.contains("higher_order.cond") && e.contains("torch.cond"),
        "{e}"
    );
    let e = load_err(&dir("refuse_while").join("program.pt2"));
    assert!(e.contains("while_loop"), "{e}");
}

/// Rewrites one member of a fixture archive (stored, uncompressed) into a temp copy.
fn patched(case: &str, member_suffix: &str, edit: impl Fn(Vec<u8>) -> Option<Vec<u8>>) -> PathBuf {
    let src = dir(case).join("program.pt2");
    let mut zin = zip::ZipArchive::new(std::fs::File::open(&src).unwrap()).unwrap();
    let out = std::env::temp_dir().join(format!(
        "torchless-graph-{}-{case}-{}.pt2",
        std::process::id(),
        member_suffix.replace('/', "_")
    ));
    let mut zout = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().map(|n| n.to_string()).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        let data = if name.ends_with(member_suffix) {
            match edit(data) {
                Some(d) => d,
                None => continue,
            }
        } else {
            data
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zout.start_file(name, opts).unwrap();
        std::io::Write::write_all(&mut zout, &data).unwrap();
    }
    zout.finish().unwrap();
    out
}

fn edit_json(data: Vec<u8>, f: impl Fn(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&data).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn refuses_malformed_archives() {
    // A newer major schema.
    let p = patched("mlp_acts", "models/model.json", |d| {
        Some(edit_json(d, |v| v["schema_version"]["major"] = 99.into()))
    });
    let e = load_err(&p);
    assert!(e.contains("schema_version 99"), "{e}");
    // A newer minor is read.
    let p = patched("mlp_acts", "models/model.json", |d| {
        Some(edit_json(d, |v| v["schema_version"]["minor"] = 999.into()))
    });
    assert!(Program::load(&p, &cpu()).is_ok());
    // Broken JSON.
    let p = patched("mlp_acts", "models/model.json", |d| {
        Some(d[..d.len() / 2].to_vec())
    });
    let e = load_err(&p);
    assert!(e.contains("not JSON"), "{e}");
    // A weight shorter than its meta.
    let p = patched("mlp_acts", "data/weights/weight_0", |d| {
        Some(d[..d.len() - 4].to_vec())
    });
    let e = load_err(&p);
    assert!(e.contains("fc1.weight") && e.contains("storage"), "{e}");
    // A missing weight record.
    let p = patched("mlp_acts", "data/weights/weight_0", |_| None);
    let e = load_err(&p);
    assert!(e.contains("weight_0"), "{e}");
    // An op the interpreter lacks, named with its node, all at once.
    let p = patched("mlp_acts", "models/model.json", |d| {
        Some(edit_json(d, |v| {
            let nodes = v["graph_module"]["graph"]["nodes"].as_array_mut().unwrap();
            nodes[0]["target"] = "torch.ops.aten.frobnicate.default".into();
            nodes[1]["target"] = "torch.ops.aten.frobnicate2.default".into();
        }))
    });
    let e = load_err(&p);
    assert!(
        e.contains("2 unsupported op(s)") && e.contains("aten.frobnicate.default (node"),
        "{e}"
    );
    // A truncated archive.
    let bytes = std::fs::read(dir("mlp_acts").join("program.pt2")).unwrap();
    let t = std::env::temp_dir().join(format!("torchless-graph-{}-trunc.pt2", std::process::id()));
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Program::load(&t, &cpu()).is_err());
}

#[test]
fn refuses_wrong_inputs() {
    let program = Program::load(&dir("bert_tiny").join("program.pt2"), &cpu()).unwrap();
    let ids = |shape: (usize, usize)| Tensor::zeros(shape, DType::I64, &Device::Cpu).unwrap();
    // Count.
    let e = program.run(&[ids((2, 8))]).unwrap_err().to_string();
    assert!(e.contains("takes 3 input(s)") && e.contains("got 1"), "{e}");
    // Dtype.
    let f = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
    let e = program
        .run(&[f, ids((2, 8)), ids((2, 8))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input_ids") && e.contains("float32") && e.contains("int64"),
        "{e}"
    );
    // A range constraint (seq in [2, 64]).
    let e = program
        .run(&[ids((2, 65)), ids((2, 65)), ids((2, 65))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("65") && e.contains("outside the range"), "{e}");
    // Inconsistent sizes of one symbol.
    let e = program
        .run(&[ids((2, 8)), ids((2, 9)), ids((2, 8))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("attention_mask") && e.contains("dim 1"), "{e}");
    // A static size (ops_shape has dim 1 fixed).
    let p = Program::load(&dir("ops_shape").join("program.pt2"), &cpu()).unwrap();
    let decl = &p.inputs()[0];
    let mut shape: Vec<usize> = case_json("ops_shape")["inputs"][0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    shape[1] += 1;
    let x = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let e = p.run(&[x]).unwrap_err().to_string();
    assert!(e.contains(&decl.name) && e.contains("fixed"), "{e}");
}

#[test]
fn cli_runs_a_program_and_writes_npy_outputs() {
    let out = std::env::temp_dir().join(format!("torchless-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let d = dir("bert_tiny");
    let r = torchless(&[
        "run",
        s(&d.join("program.pt2")),
        "--input",
        s(&d.join("dyn/in_0.npy")),
        "--input",
        s(&d.join("dyn/in_1.npy")),
        "--input",
        s(&d.join("dyn/in_2.npy")),
        "--out-dir",
        s(&out),
        "--device",
        "cpu",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(report["outputs"][0]["dtype"], "float32");
    assert_eq!(
        report["outputs"][0]["shape"],
        serde_json::json!([3, 13, 32])
    );
    let got = read_npy_typed(&out.join("out_0.npy")).unwrap();
    let want = read_npy_typed(&d.join("dyn/out_0.npy")).unwrap();
    let g = TypedTensor {
        tensor: Tensor::from_raw_buffer(&got.data, DType::F32, &got.shape, &Device::Cpu).unwrap(),
        dtype: got.dtype,
    };
    compare("cli out_0", &g, &want, TorchDType::F32, 1e-4);
    // A wrong input: non-zero exit, a message, no outputs.
    let bad = std::env::temp_dir().join(format!("torchless-run-bad-{}", std::process::id()));
    let r = torchless(&[
        "run",
        s(&d.join("program.pt2")),
        "--input",
        s(&d.join("dyn/in_0.npy")),
        "--out-dir",
        s(&bad),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("takes 3 input(s)"));
    assert!(!bad.join("out_0.npy").exists());
}
