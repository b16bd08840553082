//! `torchless run`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::DType;
use torchless::convert::DType as TorchDType;
use torchless::npy::{read_npy_typed, write_npy_typed};
use torchless::{DeviceSpec, LoadOptions, Program, TypedTensor};

use crate::output::{device_name, print_json};

/// Run any model exported with `torch.export` from its `.pt2` archive, with no Python.
///
/// The archive is what `torch.export.save(torch.export.export(model, args), "model.pt2")`
/// writes (torch 2.8 or later; the exported program as exported, or after
/// `run_decompositions()`). Nothing in it is executed: the graph is read from its JSON and run
/// by torchless's interpreter on candle tensors, with the weights it carries. Every op the
/// interpreter lacks, custom ops (`torch.library`) and control flow (`torch.cond`,
/// `while_loop`) are refused at load, all named in one message.
///
/// Inputs are `.npy` files, one per user input of the program, in the order of the exported
/// function's arguments (`--input A.npy --input B.npy`). Each must have the dtype the program
/// was exported with (numpy cannot hold bfloat16: give a float32 array for a bfloat16 input)
/// and sizes within the exported `Dim` ranges. Outputs are written as `DIR/out_0.npy`,
/// `out_1.npy`, ... in flattened order (a bfloat16 output is written as float32), each file
/// atomically, and only after the whole program ran. --json also prints each output's name,
/// dtype and shape. Example (a tiny BERT exported with dynamic batch and length):
///   torchless run tests/fixtures/graph/bert_tiny/program.pt2 \
///     --input tests/fixtures/graph/bert_tiny/in_0.npy \
///     --input tests/fixtures/graph/bert_tiny/in_1.npy \
///     --input tests/fixtures/graph/bert_tiny/in_2.npy --out-dir /tmp/out --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `torch.export` archive (`.pt2`).
    #[arg(value_name = "PROGRAM.pt2")]
    program: PathBuf,
    /// An input array (`.npy`), repeatable, in the order of the program's user inputs.
    #[arg(long = "input", value_name = "NPY")]
    inputs: Vec<PathBuf>,
    /// Where `out_0.npy`, `out_1.npy`, ... are written (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: String,
    /// Print the inputs and outputs (names, dtypes, shapes) as JSON.
    #[arg(long)]
    json: bool,
}

fn load_input(path: &Path, declared: TorchDType) -> anyhow::Result<TypedTensor> {
    let npy = read_npy_typed(path)?;
    let t = TypedTensor::from_le_bytes(npy.dtype, &npy.shape, &npy.data)?;
    if declared == TorchDType::BF16 && npy.dtype == TorchDType::F32 {
        return Ok(TypedTensor {
            tensor: t.tensor.to_dtype(DType::BF16)?,
            dtype: TorchDType::BF16,
        });
    }
    Ok(t)
}

/// The bytes and numpy dtype an output is written with (numpy has no bfloat16: float32).
fn output_bytes(t: &TypedTensor) -> anyhow::Result<(TorchDType, Vec<u8>)> {
    if t.dtype == TorchDType::BF16 {
        let f = TypedTensor {
            tensor: t.tensor.to_dtype(DType::F32)?,
            dtype: TorchDType::F32,
        };
        return Ok((TorchDType::F32, f.to_le_bytes()?));
    }
    Ok((t.dtype, t.to_le_bytes()?))
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = LoadOptions {
        device: args.device.parse::<DeviceSpec>()?,
        ..LoadOptions::default()
    };
    let program = Program::load(&args.program, &options)?;
    let decls = program.inputs().to_vec();
    if args.inputs.len() != decls.len() {
        anyhow::bail!(
            "{} takes {} input(s) ({}), got {} --input",
            args.program.display(),
            decls.len(),
            decls
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            args.inputs.len()
        );
    }
    let inputs = args
        .inputs
        .iter()
        .zip(&decls)
        .map(|(p, d)| load_input(p, d.dtype.to_torch()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outputs = program.run_typed(&inputs)?;
    let encoded = outputs
        .iter()
        .map(output_bytes)
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let names = program.output_names();
    let mut report = Vec::new();
    for (i, (out, (dtype, bytes))) in outputs.iter().zip(&encoded).enumerate() {
        let path = args.out_dir.join(format!("out_{i}.npy"));
        let npy = write_npy_typed(out.tensor.dims(), *dtype, bytes)
            .ok_or_else(|| anyhow::anyhow!("output {i}: dtype {dtype} has no .npy form"))?;
        write_atomic(&path, &npy)?;
        report.push(serde_json::json!({
            "name": names.get(i),
            "file": path.display().to_string(),
            "dtype": out.dtype.torch_name(),
            "saved_as": dtype.torch_name(),
            "shape": out.tensor.dims(),
        }));
    }
    if args.json {
        print_json(&serde_json::json!({
            "program": args.program.display().to_string(),
            "device": device_name(program.device()),
            "inputs": decls.iter().zip(&inputs).map(|(d, t)| serde_json::json!({
                "name": d.name,
                "dtype": d.dtype.name(),
                "shape": t.tensor.dims(),
            })).collect::<Vec<_>>(),
            "outputs": report,
        }))?;
    } else {
        for r in &report {
            println!(
                "{}  {} {}  {}",
                r["name"].as_str().unwrap_or(""),
                r["dtype"].as_str().unwrap_or(""),
                r["shape"],
                r["file"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
