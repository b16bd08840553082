//! `torchless_run`: a `torch.export` program (a model loaded from a `.pt2` path) called with
//! typed tensors in caller-owned memory both ways, and `torchless_program_signature` to size the
//! arrays.
//!
//! Output sizes are dynamic, so a run whose output buffers are too small writes every output's
//! dtype, ndim, data size (and shape where it fits), returns `BUFFER_TOO_SMALL`, and keeps the
//! result for the calling thread: its next `torchless_run` on the same model with the same inputs
//! (same dtypes, shapes and bytes) copies it out instead of running again.

use std::ffi::c_void;

use torchless_convert::DType as TorchDType;

use super::args::{self, invalid, null};
use super::ffi::{model_ref, run_error, wrong_kind};
use super::guard::{guard, CallError};
use super::model::{Loaded, PendingRun, TorchlessModel};
use super::status::TorchlessStatus;
use crate::TypedTensor;

/// Element type of a `TorchlessTensor` / `TorchlessTensorOut` (its `dtype` field). Values are
/// little-endian, in C (row-major) order; a bool is one byte, 0 or 1 (any non-zero input byte is
/// true).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchlessDtype {
    /// `torch.float32`
    F32 = 1,
    /// `torch.float16` (IEEE half)
    F16 = 2,
    /// `torch.bfloat16`
    Bf16 = 3,
    /// `torch.float64`
    F64 = 4,
    /// `torch.int64`
    I64 = 5,
    /// `torch.int32`
    I32 = 6,
    /// `torch.int16`
    I16 = 7,
    /// `torch.int8`
    I8 = 8,
    /// `torch.uint8`
    U8 = 9,
    /// `torch.bool` (one byte per element)
    Bool = 10,
}

const DTYPES: [(TorchlessDtype, TorchDType); 10] = [
    (TorchlessDtype::F32, TorchDType::F32),
    (TorchlessDtype::F16, TorchDType::F16),
    (TorchlessDtype::Bf16, TorchDType::BF16),
    (TorchlessDtype::F64, TorchDType::F64),
    (TorchlessDtype::I64, TorchDType::I64),
    (TorchlessDtype::I32, TorchDType::I32),
    (TorchlessDtype::I16, TorchDType::I16),
    (TorchlessDtype::I8, TorchDType::I8),
    (TorchlessDtype::U8, TorchDType::U8),
    (TorchlessDtype::Bool, TorchDType::Bool),
];

fn torch_of(code: i32) -> Option<TorchDType> {
    DTYPES
        .iter()
        .find(|(c, _)| *c as i32 == code)
        .map(|(_, t)| *t)
}

fn code_of(d: TorchDType) -> Option<i32> {
    DTYPES.iter().find(|(_, t)| *t == d).map(|(c, _)| *c as i32)
}

/// An input tensor, borrowed for the duration of `torchless_run`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TorchlessTensor {
    /// A `TorchlessDtype` value.
    pub dtype: i32,
    /// Number of dimensions (0 for a scalar).
    pub ndim: usize,
    /// `ndim` sizes (each >= 0); may be NULL when `ndim` is 0.
    pub shape: *const i64,
    /// The values: `data_bytes` bytes, little-endian, C order, no alignment needed; may be
    /// NULL when `data_bytes` is 0.
    pub data: *const c_void,
    /// Size of `data` in bytes: the product of the shape times the element size.
    pub data_bytes: usize,
}

/// An output tensor: the caller provides the `shape` and `data` buffers and their capacities;
/// `torchless_run` writes `dtype`, `ndim`, `data_bytes` (always, also on
/// `TORCHLESS_STATUS_BUFFER_TOO_SMALL`, then as the sizes needed), and the shape and values
/// (on success).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TorchlessTensorOut {
    /// Written: a `TorchlessDtype` value.
    pub dtype: i32,
    /// Written: the number of dimensions (the entries of `shape` needed).
    pub ndim: usize,
    /// The caller's array of `shape_capacity` sizes (8-byte aligned); may be NULL when
    /// `shape_capacity` is 0.
    pub shape: *mut i64,
    /// Entries `shape` holds.
    pub shape_capacity: usize,
    /// The caller's buffer of `data_capacity` bytes (no alignment needed); may be NULL when
    /// `data_capacity` is 0.
    pub data: *mut c_void,
    /// Bytes `data` holds.
    pub data_capacity: usize,
    /// Written: the bytes of the values (written into `data` on success, needed otherwise).
    pub data_bytes: usize,
}

/// A tensor as the C side sees it: dtype code, shape, little-endian C-order bytes.
type Raw = (i32, Vec<i64>, Vec<u8>);

/// Writes the number of inputs and outputs of a program model (so the caller can size the
/// arrays of `torchless_run`). `TORCHLESS_STATUS_WRONG_MODEL_KIND` for another kind.
///
/// # Safety
/// `model` is NULL or a live handle; `n_inputs`, `n_outputs` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_program_signature(
    model: *const TorchlessModel,
    n_inputs: *mut usize,
    n_outputs: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        let Loaded::Program(p) = &m.model else {
            return Err(wrong_kind(
                m,
                "torchless_program_signature",
                "a torch.export program",
            ));
        };
        if n_inputs.is_null() || n_outputs.is_null() {
            return Err(null(if n_inputs.is_null() {
                "n_inputs"
            } else {
                "n_outputs"
            }));
        }
        // SAFETY: both checked non-NULL; the caller guarantees they are writable.
        unsafe {
            args::write(n_inputs, p.inputs().len(), "n_inputs")?;
            args::write(n_outputs, p.output_names().len(), "n_outputs")
        }
    })
}

/// Runs a program model (loaded from a `.pt2` file) on `n_inputs` tensors, in the order the
/// program declares them, and writes its `n_outputs` outputs (exactly the program's number, see
/// `torchless_program_signature`) into the caller's buffers.
///
/// Output sizes depend on the inputs. When an output's `shape_capacity` or `data_capacity` is
/// too small, every output's `dtype`, `ndim` and `data_bytes` are written (and its shape where
/// it fits), nothing else, and the call returns `TORCHLESS_STATUS_BUFFER_TOO_SMALL`: grow the
/// buffers and call again with the same inputs from the same thread, which copies the result
/// out without running the program again (any other call of `torchless_run` on that model from
/// that thread drops the kept result). Capacity 0 with NULL buffers is the size query.
///
/// Inputs whose count, dtypes, sizes or dynamic-size ranges do not match the exported program
/// give `TORCHLESS_STATUS_INVALID_ARGUMENT` with the program's message; another model kind gives
/// `TORCHLESS_STATUS_WRONG_MODEL_KIND`.
///
/// # Safety
/// `model` is NULL or a live handle; `inputs` is NULL or `n_inputs` readable descriptors whose
/// `shape` and `data` point to `ndim` sizes and `data_bytes` bytes; `outputs` is NULL or
/// `n_outputs` writable descriptors whose `shape` and `data` point to `shape_capacity` writable
/// sizes and `data_capacity` writable bytes, not overlapping each other or any input.
#[no_mangle]
pub unsafe extern "C" fn torchless_run(
    model: *const TorchlessModel,
    inputs: *const TorchlessTensor,
    n_inputs: usize,
    outputs: *mut TorchlessTensorOut,
    n_outputs: usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        let Loaded::Program(program) = &m.model else {
            return Err(wrong_kind(m, "torchless_run", "a torch.export program"));
        };
        // Whatever this thread kept is taken out now: it is used below or dropped.
        let me = std::thread::current().id();
        let kept = m
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&me);
        let want = program.output_names().len();
        if n_outputs != want {
            return Err(invalid(format!(
                "n_outputs is {n_outputs}, the program has {want} output(s)"
            )));
        }
        // SAFETY: the caller guarantees `n_inputs` readable descriptors and their buffers.
        let given = unsafe { read_inputs(inputs, n_inputs) }?;
        let outs: &mut [TorchlessTensorOut] = if n_outputs == 0 {
            &mut []
        } else {
            // SAFETY: the caller guarantees `n_outputs` writable descriptors.
            unsafe { args::out_slice(outputs, n_outputs, n_outputs, "outputs") }?
        };
        let results = match kept {
            Some(k) if same_inputs(&k.inputs, &given) => k.outputs,
            _ => {
                let typed = given
                    .iter()
                    .enumerate()
                    .map(|(i, &(code, shape, bytes))| typed_input(i, code, shape, bytes))
                    .collect::<Result<Vec<_>, _>>()?;
                let out = program.run_typed(&typed).map_err(run_error)?;
                out.iter()
                    .enumerate()
                    .map(|(i, t)| raw_output(i, t))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if results.len() != outs.len() {
            return Err(CallError::new(
                TorchlessStatus::Inference,
                format!(
                    "the program returned {} outputs, its signature has {}",
                    results.len(),
                    outs.len()
                ),
            ));
        }
        let mut short = Vec::new();
        for (i, (o, (code, shape, bytes))) in outs.iter_mut().zip(&results).enumerate() {
            o.dtype = *code;
            o.ndim = shape.len();
            o.data_bytes = bytes.len();
            if o.shape_capacity < shape.len() || o.data_capacity < bytes.len() {
                short.push(format!(
                    "outputs[{i}] needs {} shape entries (shape_capacity {}) and {} data bytes \
                     (data_capacity {})",
                    shape.len(),
                    o.shape_capacity,
                    bytes.len(),
                    o.data_capacity
                ));
            }
            if o.shape_capacity >= shape.len() && !shape.is_empty() {
                // SAFETY: the caller guarantees `shape_capacity` writable sizes at `shape`.
                let dst = unsafe {
                    args::out_slice(
                        o.shape,
                        o.shape_capacity,
                        shape.len(),
                        &format!("outputs[{i}].shape"),
                    )
                }?;
                dst.copy_from_slice(shape);
            }
        }
        if !short.is_empty() {
            let inputs = given
                .iter()
                .map(|&(c, s, b)| (c, s.to_vec(), b.to_vec()))
                .collect();
            m.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(
                me,
                PendingRun {
                    inputs,
                    outputs: results,
                },
            );
            return Err(CallError::new(
                TorchlessStatus::BufferTooSmall,
                format!(
                    "{}; the sizes are written, and this thread's next torchless_run with the \
                     same inputs returns the kept result",
                    short.join("; ")
                ),
            ));
        }
        for (i, (o, (_, _, bytes))) in outs.iter_mut().zip(&results).enumerate() {
            if bytes.is_empty() {
                continue;
            }
            // SAFETY: the caller guarantees `data_capacity` writable bytes at `data`.
            let dst = unsafe {
                args::out_slice(
                    o.data.cast::<u8>(),
                    o.data_capacity,
                    bytes.len(),
                    &format!("outputs[{i}].data"),
                )
            }?;
            dst.copy_from_slice(bytes);
        }
        Ok(())
    })
}

/// One borrowed input: dtype code, shape, bytes.
type Given<'a> = (i32, &'a [i64], &'a [u8]);

/// The input descriptors, checked: known dtype, non-negative sizes, `data_bytes` equal to
/// what the shape and dtype need, non-NULL buffers where they are needed.
///
/// # Safety
/// As `torchless_run`'s `inputs`.
unsafe fn read_inputs<'a>(
    inputs: *const TorchlessTensor,
    n_inputs: usize,
) -> Result<Vec<Given<'a>>, CallError> {
    if n_inputs == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the caller guarantees `n_inputs` readable descriptors.
    let descs = unsafe { args::slice(inputs, n_inputs, "inputs") }?;
    descs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let dtype = torch_of(d.dtype).ok_or_else(|| {
                invalid(format!(
                    "inputs[{i}].dtype {} is not a TorchlessDtype (1 to 10)",
                    d.dtype
                ))
            })?;
            let shape: &[i64] = if d.ndim == 0 {
                &[]
            } else {
                // SAFETY: the caller guarantees `ndim` readable sizes.
                unsafe { args::slice(d.shape, d.ndim, &format!("inputs[{i}].shape")) }?
            };
            let numel = shape.iter().try_fold(1usize, |a, &s| {
                usize::try_from(s)
                    .map_err(|_| {
                        invalid(format!("inputs[{i}].shape {shape:?} has a negative size"))
                    })
                    .and_then(|s| {
                        a.checked_mul(s).ok_or_else(|| {
                            invalid(format!("inputs[{i}].shape {shape:?} overflows"))
                        })
                    })
            })?;
            let need = numel
                .checked_mul(dtype.size())
                .ok_or_else(|| invalid(format!("inputs[{i}].shape {shape:?} overflows")))?;
            if d.data_bytes != need {
                return Err(invalid(format!(
                    "inputs[{i}].data_bytes is {}, but shape {shape:?} of {} needs {need}",
                    d.data_bytes,
                    dtype.name()
                )));
            }
            let bytes: &[u8] = if need == 0 {
                &[]
            } else {
                // SAFETY: the caller guarantees `data_bytes` readable bytes; u8 needs no
                // alignment.
                unsafe { args::slice(d.data.cast::<u8>(), need, &format!("inputs[{i}].data")) }?
            };
            Ok((d.dtype, shape, bytes))
        })
        .collect()
}

fn same_inputs(kept: &[Raw], given: &[Given<'_>]) -> bool {
    kept.len() == given.len()
        && kept
            .iter()
            .zip(given)
            .all(|((c, s, b), (gc, gs, gb))| c == gc && s == gs && b == gb)
}

/// A checked input as the tensor `Program::run_typed` takes.
fn typed_input(i: usize, code: i32, shape: &[i64], b: &[u8]) -> Result<TypedTensor, CallError> {
    let dtype = torch_of(code).ok_or_else(|| invalid(format!("inputs[{i}]: bad dtype")))?;
    // Sizes were checked non-negative by read_inputs.
    let dims: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
    TypedTensor::from_le_bytes(dtype, &dims, b).map_err(|e| invalid(format!("inputs[{i}]: {e}")))
}

/// An output as the C side gets it: dtype code, shape, little-endian C-order bytes.
fn raw_output(i: usize, t: &TypedTensor) -> Result<Raw, CallError> {
    let fail = |what: String| CallError::new(TorchlessStatus::Inference, what);
    let code = code_of(t.dtype).ok_or_else(|| {
        fail(format!(
            "output {i} is {}, which the C ABI does not carry",
            t.dtype.name()
        ))
    })?;
    let shape = t.tensor.dims().iter().map(|&d| d as i64).collect();
    let bytes = t
        .to_le_bytes()
        .map_err(|e| fail(format!("output {i}: {e}")))?;
    Ok((code, shape, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_round_trip() {
        for (c, t) in DTYPES {
            assert_eq!(torch_of(c as i32), Some(t));
            assert_eq!(code_of(t), Some(c as i32));
        }
        assert_eq!(torch_of(0), None);
        assert_eq!(torch_of(11), None);
        assert_eq!(code_of(TorchDType::U32), None);
    }

    /// The two-call pattern keeps the result for the calling thread only and the second call
    /// takes it out (so the program ran once); another thread's call leaves it alone.
    #[test]
    fn a_too_small_run_keeps_its_result_for_its_thread() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/graph/ops_int");
        let opts = crate::registry::LoadOptions {
            device: crate::DeviceSpec::Cpu,
            ..Default::default()
        };
        let m = TorchlessModel::load(&dir.join("program.pt2"), &opts).unwrap();
        let arrays: Vec<_> = (0..5)
            .map(|i| crate::npy::read_npy_typed(&dir.join(format!("in_{i}.npy"))).unwrap())
            .collect();
        let shapes: Vec<Vec<i64>> = arrays
            .iter()
            .map(|a| a.shape.iter().map(|&d| d as i64).collect())
            .collect();
        let inputs: Vec<TorchlessTensor> = arrays
            .iter()
            .zip(&shapes)
            .map(|(a, s)| TorchlessTensor {
                dtype: code_of(a.dtype).unwrap(),
                ndim: s.len(),
                shape: s.as_ptr(),
                data: a.data.as_ptr().cast(),
                data_bytes: a.data.len(),
            })
            .collect();
        let empty = TorchlessTensorOut {
            dtype: 0,
            ndim: 0,
            shape: std::ptr::null_mut(),
            shape_capacity: 0,
            data: std::ptr::null_mut(),
            data_capacity: 0,
            data_bytes: 0,
        };
        let mut outs = vec![empty; 27];
        let run = |outs: &mut [TorchlessTensorOut]| {
            // SAFETY: descriptors of live buffers of the stated sizes.
            unsafe { torchless_run(&m, inputs.as_ptr(), 5, outs.as_mut_ptr(), outs.len()) }
        };
        let kept = || m.pending.lock().unwrap().len();
        assert_eq!(run(&mut outs), TorchlessStatus::BufferTooSmall);
        assert_eq!(kept(), 1);
        // Another thread's refused call does not take this thread's result.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: n_outputs is refused before any pointer is read.
                let st = unsafe { torchless_run(&m, std::ptr::null(), 0, std::ptr::null_mut(), 1) };
                assert_eq!(st, TorchlessStatus::InvalidArgument);
            });
        });
        assert_eq!(kept(), 1);
        let mut shapes_out = vec![vec![0i64; 2]; 27];
        let mut data_out = vec![vec![0u8; 80]; 27];
        for ((o, s), d) in outs.iter_mut().zip(&mut shapes_out).zip(&mut data_out) {
            o.shape = s.as_mut_ptr();
            o.shape_capacity = s.len();
            o.data = d.as_mut_ptr().cast();
            o.data_capacity = d.len();
        }
        assert_eq!(run(&mut outs), TorchlessStatus::Ok);
        assert_eq!(kept(), 0, "the second call took the kept result");
        assert_eq!((outs[0].ndim, outs[0].data_bytes), (2, 80));
    }

    #[test]
    fn inputs_read_unaligned_little_endian() {
        let b = [0u8, 1, 0, 0, 0, 2, 0, 0, 0];
        let t = TypedTensor::from_le_bytes(TorchDType::I32, &[2], &b[1..]).unwrap();
        assert_eq!(t.tensor.to_vec1::<i32>().unwrap(), vec![1, 2]);
        assert_eq!(t.to_le_bytes().unwrap(), b[1..].to_vec());
        assert!(TypedTensor::from_le_bytes(TorchDType::I32, &[3], &b[1..]).is_err());
    }
}
