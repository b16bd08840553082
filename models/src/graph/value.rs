//! Runtime values of the graph interpreter: tensors with their ATen dtype, Python scalars,
//! lists; ATen's type promotion.
//!
//! Storage: floating tensors are held in their own candle dtype; every integer dtype is held
//! as candle `I64` (ATen integer arithmetic on the values a model computes with fits in 64
//! bits; the logical dtype is restored on output), `bool` as `U8` holding 0/1.

use candle_core::{DType, Device, Tensor};
use torchless_convert::DType as TorchDType;

use super::GraphError;

type Result<T> = std::result::Result<T, GraphError>;

/// An ATen dtype the interpreter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dt {
    /// `torch.bool`
    Bool,
    /// `torch.uint8`
    U8,
    /// `torch.int8`
    I8,
    /// `torch.int16`
    I16,
    /// `torch.int32`
    I32,
    /// `torch.int64`
    I64,
    /// `torch.float16`
    F16,
    /// `torch.bfloat16`
    BF16,
    /// `torch.float32`
    F32,
    /// `torch.float64`
    F64,
}

impl Dt {
    /// The interpreter dtype of a checkpoint dtype.
    pub fn from_torch(d: TorchDType) -> Option<Dt> {
        Some(match d {
            TorchDType::Bool => Dt::Bool,
            TorchDType::U8 => Dt::U8,
            TorchDType::I8 => Dt::I8,
            TorchDType::I16 => Dt::I16,
            TorchDType::I32 => Dt::I32,
            TorchDType::I64 => Dt::I64,
            TorchDType::F16 => Dt::F16,
            TorchDType::BF16 => Dt::BF16,
            TorchDType::F32 => Dt::F32,
            TorchDType::F64 => Dt::F64,
            _ => return None,
        })
    }

    /// The checkpoint dtype.
    pub fn to_torch(self) -> TorchDType {
        match self {
            Dt::Bool => TorchDType::Bool,
            Dt::U8 => TorchDType::U8,
            Dt::I8 => TorchDType::I8,
            Dt::I16 => TorchDType::I16,
            Dt::I32 => TorchDType::I32,
            Dt::I64 => TorchDType::I64,
            Dt::F16 => TorchDType::F16,
            Dt::BF16 => TorchDType::BF16,
            Dt::F32 => TorchDType::F32,
            Dt::F64 => TorchDType::F64,
        }
    }

    /// The candle dtype values of this dtype are held in.
    pub fn storage(self) -> DType {
        match self {
            Dt::Bool => DType::U8,
            Dt::U8 | Dt::I8 | Dt::I16 | Dt::I32 | Dt::I64 => DType::I64,
            Dt::F16 => DType::F16,
            Dt::BF16 => DType::BF16,
            Dt::F32 => DType::F32,
            Dt::F64 => DType::F64,
        }
    }

    /// Floating point.
    pub fn is_float(self) -> bool {
        matches!(self, Dt::F16 | Dt::BF16 | Dt::F32 | Dt::F64)
    }

    /// Integer (not bool).
    pub fn is_int(self) -> bool {
        matches!(self, Dt::U8 | Dt::I8 | Dt::I16 | Dt::I32 | Dt::I64)
    }

    /// 0 bool, 1 integer, 2 floating.
    fn category(self) -> u8 {
        if self == Dt::Bool {
            0
        } else if self.is_int() {
            1
        } else {
            2
        }
    }

    /// The torch name (`float32`).
    pub fn name(self) -> &'static str {
        match self {
            Dt::Bool => "bool",
            Dt::U8 => "uint8",
            Dt::I8 => "int8",
            Dt::I16 => "int16",
            Dt::I32 => "int32",
            Dt::I64 => "int64",
            Dt::F16 => "float16",
            Dt::BF16 => "bfloat16",
            Dt::F32 => "float32",
            Dt::F64 => "float64",
        }
    }
}

/// `torch.promote_types`.
pub fn promote(a: Dt, b: Dt) -> Dt {
    use Dt::*;
    if a == b {
        return a;
    }
    match (a.category(), b.category()) {
        (x, y) if x != y => {
            if x > y {
                a
            } else {
                b
            }
        }
        (2, 2) => match (a, b) {
            (F64, _) | (_, F64) => F64,
            (F32, _) | (_, F32) => F32,
            // f16 with bf16
            _ => F32,
        },
        (1, 1) => {
            let rank = |d: Dt| match d {
                U8 | I8 => 1,
                I16 => 2,
                I32 => 3,
                _ => 4,
            };
            match (a, b) {
                (U8, I8) | (I8, U8) => I16,
                _ if rank(a) >= rank(b) => a,
                _ => b,
            }
        }
        _ => a,
    }
}

/// A tensor and its ATen dtype.
#[derive(Debug, Clone)]
pub struct Tv {
    /// The values (storage dtype of [`Dt::storage`]).
    pub t: Tensor,
    /// The ATen dtype.
    pub dt: Dt,
}

impl Tv {
    /// Wraps a tensor already in `dt`'s storage dtype.
    pub fn new(t: Tensor, dt: Dt) -> Tv {
        Tv { t, dt }
    }

    /// Sizes.
    pub fn dims(&self) -> &[usize] {
        self.t.dims()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.t.rank()
    }

    /// Casts to `dt` with ATen semantics (float → int truncates toward zero, anything → bool
    /// is `!= 0`).
    pub fn to(&self, dt: Dt) -> Result<Tv> {
        if dt == self.dt {
            return Ok(self.clone());
        }
        let t = if dt == Dt::Bool {
            self.t.ne(&self.t.zeros_like()?)?
        } else if dt.storage() == self.t.dtype() {
            self.t.clone()
        } else {
            self.t.to_dtype(dt.storage())?
        };
        // Narrow integer dtypes wrap like ATen's.
        let t = match dt {
            Dt::U8 | Dt::I8 | Dt::I16 | Dt::I32 if !self.dt.is_int() || narrower(dt, self.dt) => {
                wrap_int(&t, dt)?
            }
            _ => t,
        };
        Ok(Tv { t, dt })
    }

    /// The size of dim `d` (negative counts from the end).
    pub fn size(&self, d: i64) -> Result<usize> {
        let d = norm_dim(d, self.rank())?;
        Ok(self.dims()[d])
    }
}

fn narrower(a: Dt, b: Dt) -> bool {
    let bits = |d: Dt| match d {
        Dt::U8 | Dt::I8 => 8,
        Dt::I16 => 16,
        Dt::I32 => 32,
        _ => 64,
    };
    bits(a) < bits(b) || (a == Dt::U8) != (b == Dt::U8)
}

/// Wraps i64 values into the range of a narrower integer dtype (two's complement).
fn wrap_int(t: &Tensor, dt: Dt) -> Result<Tensor> {
    let (bits, signed) = match dt {
        Dt::U8 => (8, false),
        Dt::I8 => (8, true),
        Dt::I16 => (16, true),
        Dt::I32 => (32, true),
        _ => return Ok(t.clone()),
    };
    let v: Vec<i64> = t.flatten_all()?.to_vec1()?;
    let w: Vec<i64> = v
        .into_iter()
        .map(|x| {
            let m = x & ((1i64 << bits) - 1);
            if signed && m >= 1i64 << (bits - 1) {
                m - (1i64 << bits)
            } else {
                m
            }
        })
        .collect();
    Ok(Tensor::from_vec(w, t.dims(), t.device())?)
}

/// Normalises a possibly negative dim.
pub fn norm_dim(d: i64, rank: usize) -> Result<usize> {
    let r = rank.max(1) as i64;
    let n = if d < 0 { d + r } else { d };
    if n < 0 || n >= r {
        return Err(GraphError::msg(format!(
            "dim {d} is out of range for a tensor of rank {rank}"
        )));
    }
    Ok(n as usize)
}

/// A value of the interpreter.
#[derive(Debug, Clone)]
pub enum Value {
    /// A tensor.
    Tensor(Tv),
    /// A Python int / SymInt.
    Int(i64),
    /// A Python float.
    Float(f64),
    /// A Python bool.
    Bool(bool),
    /// `None`.
    None,
    /// A list of ints.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f64>),
    /// A list of bools.
    Bools(Vec<bool>),
    /// A list of tensors.
    Tensors(Vec<Tv>),
    /// A list of optional tensors.
    OptTensors(Vec<Option<Tv>>),
    /// A dtype.
    Dtype(Dt),
    /// A string.
    Str(String),
    /// A device, layout or memory format: placement is the interpreter's choice.
    Ignored,
}

impl Value {
    /// A short description for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Tensor(_) => "a tensor",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::None => "None",
            Value::Ints(_) => "a list of ints",
            Value::Floats(_) => "a list of floats",
            Value::Bools(_) => "a list of bools",
            Value::Tensors(_) => "a list of tensors",
            Value::OptTensors(_) => "a list of optional tensors",
            Value::Dtype(_) => "a dtype",
            Value::Str(_) => "a string",
            Value::Ignored => "a device/layout/memory format",
        }
    }
}

/// A Python number argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `float`
    Float(f64),
}

impl Scalar {
    /// As f64.
    pub fn f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The dtype a Python scalar of this kind has in promotion.
    pub fn dt(self) -> Dt {
        match self {
            Scalar::Bool(_) => Dt::Bool,
            Scalar::Int(_) => Dt::I64,
            Scalar::Float(_) => Dt::F32,
        }
    }

    /// A 0-dim tensor of `dt` holding this value.
    pub fn tensor(self, dt: Dt, device: &Device) -> Result<Tv> {
        let t = match dt.storage() {
            DType::I64 => Tensor::new(self.f64() as i64, device)?,
            DType::U8 => Tensor::new(u8::from(self.f64() != 0.0), device)?,
            DType::F64 => Tensor::new(self.f64(), device)?,
            other => Tensor::new(self.f64() as f32, device)?.to_dtype(other)?,
        };
        let t = match self {
            // Large ints keep their exact value.
            Scalar::Int(i) if dt.storage() == DType::I64 => Tensor::new(i, device)?,
            _ => t,
        };
        Ok(Tv::new(t, dt))
    }
}

/// An operand of a pointwise op: a tensor or a Python scalar.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A tensor.
    T(Tv),
    /// A Python scalar.
    S(Scalar),
}

/// ATen's result type of pointwise operands: dimensioned tensors first, then 0-dim tensors
/// and Python scalars only when they are of a higher category (bool < int < float).
pub fn result_type(ops: &[&Operand]) -> Dt {
    let mut dim: Option<Dt> = None;
    let mut zero: Option<Dt> = None;
    let mut scalar: Option<Dt> = None;
    for o in ops {
        let (slot, d) = match o {
            Operand::T(t) if t.rank() > 0 => (&mut dim, t.dt),
            Operand::T(t) => (&mut zero, t.dt),
            Operand::S(s) => (&mut scalar, s.dt()),
        };
        *slot = Some(slot.map_or(d, |x| promote(x, d)));
    }
    let mut r = match (dim, zero, scalar) {
        (Some(d), _, _) => d,
        (None, Some(z), _) => z,
        (None, None, Some(s)) => return s,
        (None, None, None) => return Dt::F32,
    };
    for higher in [zero, scalar].into_iter().flatten() {
        if higher.category() > r.category() {
            r = if higher.is_float() && higher == Dt::F32 && scalar == Some(higher) {
                // A Python float promotes integers to the default float dtype.
                Dt::F32
            } else {
                higher
            };
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_matches_torch() {
        assert_eq!(promote(Dt::U8, Dt::I8), Dt::I16);
        assert_eq!(promote(Dt::F16, Dt::BF16), Dt::F32);
        assert_eq!(promote(Dt::I64, Dt::F16), Dt::F16);
        assert_eq!(promote(Dt::Bool, Dt::I32), Dt::I32);
        let d = Device::Cpu;
        let i = Operand::T(Tv::new(Tensor::new(&[1i64, 2], &d).unwrap(), Dt::I64));
        let h = Operand::T(Tv::new(
            Tensor::new(&[1f32, 2.], &d)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap(),
            Dt::F16,
        ));
        let f0 = Operand::T(Tv::new(Tensor::new(1f32, &d).unwrap(), Dt::F32));
        // int tensor + python float -> float32
        assert_eq!(result_type(&[&i, &Operand::S(Scalar::Float(0.5))]), Dt::F32);
        // f16 tensor + f32 0-dim -> f16
        assert_eq!(result_type(&[&h, &f0]), Dt::F16);
        // int tensor + f32 0-dim -> f32
        assert_eq!(result_type(&[&i, &f0]), Dt::F32);
        // f16 tensor + python int -> f16
        assert_eq!(result_type(&[&h, &Operand::S(Scalar::Int(3))]), Dt::F16);
    }
}
