//! `torch.export` programs run without Python: [`Program::load`] reads a `.pt2` archive
//! (never executing anything in it), refuses every op the interpreter lacks in one message,
//! and compiles the graph once; [`Program::run`] checks the inputs against the exported
//! signature (dtypes, static sizes, symbol ranges) and returns the user outputs in
//! flattened order.
//!
//! ```no_run
//! use torchless::{LoadOptions, Program};
//! let program = Program::load("model.pt2".as_ref(), &LoadOptions::default())?;
//! let x = candle_core::Tensor::zeros((2, 16), candle_core::DType::F32, program.device())?;
//! let outputs = program.run(&[x])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use torchless_convert::DType as TorchDType;
use torchless_models::graph::{Dt, GraphModel, GraphSummary, InputDecl, Tv};

use crate::error::{Error, Result};
use crate::registry::LoadOptions;

/// A tensor and its PyTorch dtype (which tells a bool from a `uint8`, an `int32` from an
/// `int64`).
#[derive(Debug, Clone)]
pub struct TypedTensor {
    /// The values (candle dtype: see [`Program::run`]).
    pub tensor: Tensor,
    /// The PyTorch dtype.
    pub dtype: TorchDType,
}

/// What `torchless inspect` shows of a program: its signature, ops, the fusions the compile
/// step applies and every op it cannot run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramReport {
    /// The program's name in the archive.
    pub name: String,
    /// The torch version that exported it.
    pub torch_version: String,
    /// `major.minor` of the export schema.
    pub schema_version: String,
    /// The dialect (`TRAINING`, `ATEN`).
    pub verifiers: Vec<String>,
    /// User inputs: name, dtype, sizes (symbolic ones as expressions).
    pub inputs: Vec<ProgramInput>,
    /// User outputs' names, in flattened order.
    pub outputs: Vec<String>,
    /// Size symbols and their ranges (`s0: [2, 64]`).
    pub ranges: std::collections::BTreeMap<String, String>,
    /// Ops by target with counts.
    pub ops: std::collections::BTreeMap<String, usize>,
    /// Nodes this interpreter cannot run (empty when the program runs).
    pub unsupported: Vec<String>,
    /// Fusions applied at load (when it loads).
    pub fusions: std::collections::BTreeMap<String, usize>,
    /// Steps left after the compile passes (0 when it does not load).
    pub steps: usize,
    /// Why it does not load, when it does not.
    pub load_error: Option<String>,
}

/// One user input of a program.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramInput {
    /// Placeholder name.
    pub name: String,
    /// Declared dtype.
    pub dtype: String,
    /// Sizes: numbers, or the symbolic expression.
    pub sizes: Vec<String>,
}

/// Describes the program of a `.pt2` archive on the CPU: never fails for an unsupported op
/// (they are listed), only for an unreadable archive.
pub fn describe_program(path: &Path) -> Result<ProgramReport> {
    use torchless_convert::program::{Argument, InputSpec, SymInt};
    let program = torchless_convert::program::open_program(
        path,
        &torchless_convert::OpenOptions::default(),
        None,
    )?;
    let (ops, unsupported) = torchless_models::graph::check_ops(&program);
    let inputs = program
        .inputs
        .iter()
        .filter_map(|s| match s {
            InputSpec::User(Argument::Tensor(n)) => Some(n),
            _ => None,
        })
        .map(|n| {
            let meta = program.graph.tensor_values.get(n);
            ProgramInput {
                name: n.clone(),
                dtype: meta
                    .map(|m| m.dtype.torch_name().to_string())
                    .unwrap_or_default(),
                sizes: meta
                    .map(|m| {
                        m.sizes
                            .iter()
                            .map(|s| match s {
                                SymInt::Int(i) => i.to_string(),
                                SymInt::Expr { expr, .. } => expr.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let ranges = program
        .range_constraints
        .iter()
        .map(|(k, r)| {
            let max = r.max.map_or("inf".to_string(), |m| m.to_string());
            (k.clone(), format!("[{}, {max}]", r.min))
        })
        .collect();
    let (fusions, steps, load_error) = if unsupported.is_empty() {
        match GraphModel::load(&program, &Device::Cpu) {
            Ok(g) => (g.summary().fusions.clone(), g.summary().steps, None),
            Err(e) => (Default::default(), 0, Some(e.to_string())),
        }
    } else {
        (Default::default(), 0, None)
    };
    let outputs = program
        .outputs
        .iter()
        .zip(&program.graph.outputs)
        .filter(|(s, _)| matches!(s, torchless_convert::program::OutputSpec::User(_)))
        .map(|(_, a)| match a {
            Argument::Tensor(n) => n.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    Ok(ProgramReport {
        name: program.name.clone(),
        torch_version: program.torch_version.clone(),
        schema_version: format!("{}.{}", program.schema_version.0, program.schema_version.1),
        verifiers: program.verifiers.clone(),
        inputs,
        outputs,
        ranges,
        ops,
        unsupported,
        fusions,
        steps,
        load_error,
    })
}

impl TypedTensor {
    /// A CPU tensor from little-endian C-order bytes (any alignment) of `dtype`: what the C
    /// ABI, `.npy` files and `/v1/run` carry. `int8` is widened to `I64`, its storage.
    pub fn from_le_bytes(dtype: TorchDType, shape: &[usize], b: &[u8]) -> Result<TypedTensor> {
        let numel: usize = shape.iter().product();
        if Some(b.len()) != numel.checked_mul(dtype.size()) {
            return Err(Error::Option(format!(
                "a {} tensor of shape {shape:?} has {} bytes, not {}",
                dtype.torch_name(),
                numel.saturating_mul(dtype.size()),
                b.len()
            )));
        }
        let cpu = &Device::Cpu;
        let dims = shape.to_vec();
        let t = match dtype {
            TorchDType::F32 => Tensor::from_vec(decode(b, f32::from_le_bytes), dims, cpu),
            TorchDType::F16 => Tensor::from_vec(decode(b, half::f16::from_le_bytes), dims, cpu),
            TorchDType::BF16 => Tensor::from_vec(decode(b, half::bf16::from_le_bytes), dims, cpu),
            TorchDType::F64 => Tensor::from_vec(decode(b, f64::from_le_bytes), dims, cpu),
            TorchDType::I64 => Tensor::from_vec(decode(b, i64::from_le_bytes), dims, cpu),
            TorchDType::I32 => Tensor::from_vec(decode(b, i32::from_le_bytes), dims, cpu),
            TorchDType::I16 => Tensor::from_vec(decode(b, i16::from_le_bytes), dims, cpu),
            TorchDType::I8 => Tensor::from_vec(
                b.iter().map(|&x| i64::from(x as i8)).collect::<Vec<_>>(),
                dims,
                cpu,
            ),
            TorchDType::Bool | TorchDType::U8 => Tensor::from_vec(b.to_vec(), dims, cpu),
            other => {
                return Err(Error::Option(format!(
                    "dtype {} is not supported for program inputs",
                    other.torch_name()
                )))
            }
        }?;
        Ok(TypedTensor { tensor: t, dtype })
    }

    /// The values as little-endian C-order bytes of [`TypedTensor::dtype`] (copied to the
    /// host).
    pub fn to_le_bytes(&self) -> Result<Vec<u8>> {
        let x = self.tensor.flatten_all()?.to_device(&Device::Cpu)?;
        let le = |v: Vec<[u8; 8]>| v.concat();
        Ok(match self.dtype {
            TorchDType::F32 => {
                let v: Vec<f32> = x.to_dtype(DType::F32)?.to_vec1()?;
                v.iter().flat_map(|f| f.to_le_bytes()).collect()
            }
            TorchDType::F16 => {
                let v: Vec<half::f16> = x.to_dtype(DType::F16)?.to_vec1()?;
                v.iter().flat_map(|f| f.to_le_bytes()).collect()
            }
            TorchDType::BF16 => {
                let v: Vec<half::bf16> = x.to_dtype(DType::BF16)?.to_vec1()?;
                v.iter().flat_map(|f| f.to_le_bytes()).collect()
            }
            TorchDType::F64 => {
                let v: Vec<f64> = x.to_dtype(DType::F64)?.to_vec1()?;
                le(v.iter().map(|f| f.to_le_bytes()).collect())
            }
            TorchDType::Bool | TorchDType::U8 => x.to_dtype(DType::U8)?.to_vec1()?,
            // Integers come back in their storage (int8 as int64): narrow to the width.
            d => {
                let w = d.size();
                let v: Vec<i64> = x.to_dtype(DType::I64)?.to_vec1()?;
                v.iter()
                    .flat_map(|i| i.to_le_bytes().into_iter().take(w))
                    .collect()
            }
        })
    }
}

/// Little-endian bytes as values, whatever their alignment.
fn decode<T, const N: usize>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    b.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// A loaded `torch.export` program. `Send + Sync`: one program serves many threads.
#[derive(Debug)]
pub struct Program {
    graph: GraphModel,
    schema: (i64, i64),
    torch_version: String,
}

impl Program {
    /// Loads the program of a `.pt2` archive onto `options.device` (weights keep their own
    /// dtypes: `options.dtype` does not apply to a program, whose dtypes are part of it).
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Program> {
        options.refuse_quantize("a torch.export program")?;
        let meta = std::fs::metadata(path).map_err(|cause| Error::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        if !meta.is_file() {
            return Err(Error::NotRegularFile {
                path: path.to_path_buf(),
                kind: crate::folder::kind_of(meta.file_type()),
            });
        }
        let device = options.device.open()?;
        let program = torchless_convert::program::open_program(
            path,
            &torchless_convert::OpenOptions::default(),
            None,
        )?;
        let graph = GraphModel::load(&program, &device)?;
        Ok(Program {
            graph,
            schema: program.schema_version,
            torch_version: program.torch_version,
        })
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        self.graph.device()
    }

    /// The user inputs, in call order.
    pub fn inputs(&self) -> &[InputDecl] {
        self.graph.inputs()
    }

    /// The user outputs' names, in flattened order.
    pub fn output_names(&self) -> Vec<String> {
        self.graph.output_names()
    }

    /// The op histogram, the fusions that fired and the step count.
    pub fn summary(&self) -> &GraphSummary {
        self.graph.summary()
    }

    /// The archive's schema version and the torch that wrote it.
    pub fn written_by(&self) -> (String, (i64, i64)) {
        (self.torch_version.clone(), self.schema)
    }

    /// Runs the program. Inputs use candle's dtype for each PyTorch dtype (float types as
    /// themselves, `int64` as `I64`, `int32` as `I32`, `int16` as `I16`, `bool` and `uint8` as
    /// `U8`, told apart by the declared dtype); outputs come back the same way (`int8` as
    /// `I64`). Use [`Program::run_typed`] to keep the PyTorch dtypes.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let typed = inputs
            .iter()
            .zip(
                self.graph
                    .inputs()
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|(t, decl)| {
                let dtype = match (t.dtype(), decl.map(|d| d.dtype)) {
                    (DType::U8, Some(Dt::Bool)) => TorchDType::Bool,
                    (DType::I64, Some(d)) if d.is_int() => d.to_torch(),
                    (d, _) => candle_to_torch(d)?,
                };
                Ok(TypedTensor {
                    tensor: t.clone(),
                    dtype,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .run_typed(&typed)?
            .into_iter()
            .map(|t| t.tensor)
            .collect())
    }

    /// Runs the program on inputs with their PyTorch dtypes.
    pub fn run_typed(&self, inputs: &[TypedTensor]) -> Result<Vec<TypedTensor>> {
        let tvs = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let dt = Dt::from_torch(t.dtype).ok_or_else(|| {
                    Error::Option(format!("input {i}: dtype {} is not supported", t.dtype))
                })?;
                let v = if dt == Dt::Bool {
                    t.tensor.ne(&t.tensor.zeros_like()?)?
                } else {
                    t.tensor.to_dtype(dt.storage())?
                };
                Ok(Tv::new(v, dt))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self.graph.run(&tvs)?;
        out.into_iter()
            .map(|tv| {
                let tensor = match tv.dt {
                    Dt::I32 => tv.t.to_dtype(DType::I32)?,
                    Dt::I16 => tv.t.to_dtype(DType::I16)?,
                    Dt::U8 => tv.t.to_dtype(DType::U8)?,
                    _ => tv.t,
                };
                Ok(TypedTensor {
                    tensor,
                    dtype: tv.dt.to_torch(),
                })
            })
            .collect()
    }
}

fn candle_to_torch(d: DType) -> Result<TorchDType> {
    Ok(match d {
        DType::F32 => TorchDType::F32,
        DType::F16 => TorchDType::F16,
        DType::BF16 => TorchDType::BF16,
        DType::F64 => TorchDType::F64,
        DType::I64 => TorchDType::I64,
        DType::I32 => TorchDType::I32,
        DType::I16 => TorchDType::I16,
        DType::U8 => TorchDType::U8,
        DType::U32 => TorchDType::U32,
        other => {
            return Err(Error::Option(format!(
                "candle dtype {other:?} is not supported as a program input"
            )))
        }
    })
}
