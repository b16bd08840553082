//! Pointwise ops: arithmetic with ATen type promotion and scalar arguments, comparisons and
//! logical ops (bool results), activations, casts, `where`/`masked_fill`/`clamp`.
//!
//! Common functions run as candle ops on the tensor's device; the rarer ones (`log1p`,
//! `expm1`, `round` half-to-even, integer floor division and modulo) map the values on the
//! host in f64/i64 and copy back.

use candle_core::{DType, Tensor};

use super::super::args::Args;
use super::super::value::{result_type, Dt, Operand, Scalar, Tv, Value};
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    "add",
    "add_",
    "sub",
    "sub_",
    "rsub",
    "mul",
    "mul_",
    "div",
    "div_",
    "true_divide",
    "floor_divide",
    "remainder",
    "fmod",
    "pow",
    "maximum",
    "minimum",
    "max.other",
    "min.other",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "__and__",
    "__or__",
    "__xor__",
    "where",
    "masked_fill",
    "masked_fill_",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_max",
    "relu",
    "relu_",
    "relu6",
    "gelu",
    "gelu_",
    "silu",
    "silu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "exp",
    "expm1",
    "log",
    "log2",
    "log10",
    "log1p",
    "sqrt",
    "rsqrt",
    "neg",
    "abs",
    "reciprocal",
    "sin",
    "cos",
    "tan",
    "erf",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "sign",
    "square",
    "mish",
    "softplus",
    "elu",
    "elu_",
    "selu",
    "celu",
    "leaky_relu",
    "leaky_relu_",
    "hardtanh",
    "hardtanh_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "log_sigmoid",
    "log_sigmoid_forward",
    "glu",
    "prelu",
    "_prelu_kernel",
    "isnan",
    "isinf",
    "lerp",
    "atan",
    "atan2",
    "_to_copy",
    "to",
    "type_as",
    "_assert_tensor_metadata",
];

pub(super) fn lookup(base: &str, overload: &str) -> Option<OpFn> {
    Some(match base {
        "add" | "add_" => add,
        "sub" | "sub_" => sub,
        "rsub" => rsub,
        "mul" | "mul_" => mul,
        "div" | "div_" | "true_divide" => div,
        "floor_divide" => floor_divide,
        "remainder" => remainder,
        "fmod" => fmod,
        "pow" => pow,
        "maximum" => maximum,
        "minimum" => minimum,
        "max" | "min" if overload == "other" => {
            if base == "max" {
                maximum
            } else {
                minimum
            }
        }
        "eq" => |a| cmp(a, Cmp::Eq),
        "ne" => |a| cmp(a, Cmp::Ne),
        "lt" => |a| cmp(a, Cmp::Lt),
        "le" => |a| cmp(a, Cmp::Le),
        "gt" => |a| cmp(a, Cmp::Gt),
        "ge" => |a| cmp(a, Cmp::Ge),
        "logical_and" => |a| logical(a, |x, y| x && y),
        "logical_or" => |a| logical(a, |x, y| x || y),
        "logical_xor" => |a| logical(a, |x, y| x != y),
        "logical_not" => logical_not,
        "bitwise_and" | "__and__" => |a| bitwise(a, |x, y| x & y),
        "bitwise_or" | "__or__" => |a| bitwise(a, |x, y| x | y),
        "bitwise_xor" | "__xor__" => |a| bitwise(a, |x, y| x ^ y),
        "bitwise_not" => bitwise_not,
        "where" => where_,
        "masked_fill" | "masked_fill_" => masked_fill,
        "clamp" | "clamp_" => clamp,
        "clamp_min" => clamp_min,
        "clamp_max" => clamp_max,
        "relu" | "relu_" => |a| float_unary(a, |t| Ok(t.relu()?)),
        "relu6" => |a| hardtanh_between(a, 0.0, 6.0),
        "gelu" | "gelu_" => gelu,
        "silu" | "silu_" => |a| float_unary(a, |t| Ok(t.silu()?)),
        "sigmoid" | "sigmoid_" => |a| float_unary(a, |t| Ok(candle_nn::ops::sigmoid(t)?)),
        "tanh" | "tanh_" => |a| float_unary(a, |t| Ok(t.tanh()?)),
        "exp" => |a| float_unary(a, |t| Ok(t.exp()?)),
        "expm1" => |a| host_unary(a, f64::exp_m1),
        "log" => |a| float_unary(a, |t| Ok(t.log()?)),
        "log2" => |a| host_unary(a, f64::log2),
        "log10" => |a| host_unary(a, f64::log10),
        "log1p" => |a| host_unary(a, f64::ln_1p),
        "sqrt" => |a| float_unary(a, |t| Ok(t.sqrt()?)),
        "rsqrt" => |a| float_unary(a, |t| Ok(t.sqrt()?.recip()?)),
        "reciprocal" => |a| float_unary(a, |t| Ok(t.recip()?)),
        "sin" => |a| float_unary(a, |t| Ok(t.sin()?)),
        "cos" => |a| float_unary(a, |t| Ok(t.cos()?)),
        "tan" => |a| host_unary(a, f64::tan),
        "atan" => |a| host_unary(a, f64::atan),
        "erf" => |a| float_unary(a, |t| Ok(t.erf()?)),
        "neg" => neg,
        "abs" => abs,
        "square" => |a| {
            let x = a.tensor("self")?;
            let x = if x.dt == Dt::Bool { x.to(Dt::I64)? } else { x };
            one(Tv::new(x.t.mul(&x.t)?, x.dt))
        },
        "floor" => |a| int_keeping(a, f64::floor),
        "ceil" => |a| int_keeping(a, f64::ceil),
        "trunc" => |a| int_keeping(a, f64::trunc),
        "round" => round,
        "frac" => |a| host_unary(a, |x| x - x.trunc()),
        "sign" => |a| {
            int_keeping(a, |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            })
        },
        "mish" => |a| host_unary(a, |x| x * softplus(x, 1.0, 20.0).tanh()),
        "softplus" => |a| {
            let beta = a.float_or("beta", 1.0)?;
            let th = a.float_or("threshold", 20.0)?;
            host_unary_with(a, move |x| softplus(x, beta, th))
        },
        "elu" | "elu_" => |a| {
            let alpha = a.float_or("alpha", 1.0)?;
            let scale = a.float_or("scale", 1.0)?;
            let input_scale = a.float_or("input_scale", 1.0)?;
            host_unary_with(a, move |x| {
                if x > 0.0 {
                    scale * x
                } else {
                    scale * alpha * (x * input_scale).exp_m1()
                }
            })
        },
        "selu" => |a| {
            const ALPHA: f64 = 1.673_263_242_354_377_3;
            const SCALE: f64 = 1.050_700_987_355_480_5;
            host_unary(a, |x| {
                if x > 0.0 {
                    SCALE * x
                } else {
                    SCALE * ALPHA * x.exp_m1()
                }
            })
        },
        "celu" => |a| {
            let alpha = a.float_or("alpha", 1.0)?;
            host_unary_with(a, move |x| {
                if x > 0.0 {
                    x
                } else {
                    alpha * (x / alpha).exp_m1()
                }
            })
        },
        "leaky_relu" | "leaky_relu_" => |a| {
            let s = a.float_or("negative_slope", 0.01)?;
            host_unary_with(a, move |x| if x > 0.0 { x } else { x * s })
        },
        "hardtanh" | "hardtanh_" => |a| {
            let lo = a.float_or("min_val", -1.0)?;
            let hi = a.float_or("max_val", 1.0)?;
            hardtanh_between(a, lo, hi)
        },
        "hardswish" | "hardswish_" => |a| host_unary(a, |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
        "hardsigmoid" | "hardsigmoid_" => |a| host_unary(a, |x| (x + 3.0).clamp(0.0, 6.0) / 6.0),
        "log_sigmoid" => |a| host_unary(a, log_sigmoid),
        "log_sigmoid_forward" => |a| {
            let mut v = host_unary(a, log_sigmoid)?;
            let buf = match v.first() {
                Some(Value::Tensor(t)) => t.clone(),
                _ => return Err(a.err("internal: no result")),
            };
            v.push(Value::Tensor(buf));
            Ok(v)
        },
        "glu" => glu,
        "prelu" | "_prelu_kernel" => prelu,
        "isnan" => |a| {
            let x = a.tensor("self")?;
            one(Tv::new(x.t.ne(&x.t)?, Dt::Bool))
        },
        "isinf" => |a| host_pred(a, f64::is_infinite),
        "lerp" => lerp,
        "atan2" => |a| host_binary_f(a, f64::atan2),
        "_to_copy" | "to" | "type_as" => to_copy,
        "_assert_tensor_metadata" => |_| Ok(vec![Value::None]),
        _ => return None,
    })
}

fn softplus(x: f64, beta: f64, threshold: f64) -> f64 {
    if x * beta > threshold {
        x
    } else {
        (x * beta).exp().ln_1p() / beta
    }
}

fn log_sigmoid(x: f64) -> f64 {
    let m = (-x).max(0.0);
    -(m + ((-m).exp() + (-x - m).exp()).ln())
}

/// Casts an operand to `dt` as a tensor (scalars become 0-dim tensors).
pub(crate) fn as_tensor(o: &Operand, dt: Dt, a: &Args) -> Result<Tv> {
    match o {
        Operand::T(t) => t.to(dt),
        Operand::S(s) => s.tensor(dt, a.device),
    }
}

/// The operands of a binary op cast to their ATen result type.
fn promoted(a: &Args, x: &str, y: &str) -> Result<(Tv, Tv, Dt)> {
    let (p, q) = (a.operand(x)?, a.operand(y)?);
    let dt = result_type(&[&p, &q]);
    Ok((as_tensor(&p, dt, a)?, as_tensor(&q, dt, a)?, dt))
}

fn bcast(x: &Tv, y: &Tv, f: fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>) -> Result<Tensor> {
    Ok(f(&x.t, &y.t)?)
}

fn arith(a: &Args, f: fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>) -> Result<Vec<Value>> {
    let (x, y, dt) = promoted(a, "self", "other")?;
    if dt == Dt::Bool {
        // `add` of bools is `or`, `mul` is `and`: `!= 0` of the integer result.
        let r = f(&x.to(Dt::I64)?.t, &y.to(Dt::I64)?.t)?;
        return one(Tv::new(r, Dt::I64).to(Dt::Bool)?);
    }
    one(Tv::new(bcast(&x, &y, f)?, dt))
}

/// `other * alpha`, keeping ATen's result type.
fn scaled(a: &Args) -> Result<Option<Scalar>> {
    match a.scalar_or("alpha", Scalar::Int(1))? {
        Scalar::Int(1) => Ok(None),
        s if s.f64() == 1.0 => Ok(None),
        s => Ok(Some(s)),
    }
}

fn add(a: &Args) -> Result<Vec<Value>> {
    match scaled(a)? {
        None => arith(a, Tensor::broadcast_add),
        Some(alpha) => {
            let (x, y, dt) = promoted(a, "self", "other")?;
            let y = y.t.broadcast_mul(&alpha.tensor(dt, a.device)?.t)?;
            one(Tv::new(x.t.broadcast_add(&y)?, dt))
        }
    }
}

fn sub(a: &Args) -> Result<Vec<Value>> {
    match scaled(a)? {
        None => arith(a, Tensor::broadcast_sub),
        Some(alpha) => {
            let (x, y, dt) = promoted(a, "self", "other")?;
            let y = y.t.broadcast_mul(&alpha.tensor(dt, a.device)?.t)?;
            one(Tv::new(x.t.broadcast_sub(&y)?, dt))
        }
    }
}

fn rsub(a: &Args) -> Result<Vec<Value>> {
    let (x, y, dt) = promoted(a, "self", "other")?;
    let x = match scaled(a)? {
        None => x.t,
        Some(alpha) => x.t.broadcast_mul(&alpha.tensor(dt, a.device)?.t)?,
    };
    one(Tv::new(y.t.broadcast_sub(&x)?, dt))
}

fn mul(a: &Args) -> Result<Vec<Value>> {
    arith(a, Tensor::broadcast_mul)
}

fn maximum(a: &Args) -> Result<Vec<Value>> {
    arith(a, Tensor::broadcast_maximum)
}

fn minimum(a: &Args) -> Result<Vec<Value>> {
    arith(a, Tensor::broadcast_minimum)
}

fn div(a: &Args) -> Result<Vec<Value>> {
    let mode = a.str_or("rounding_mode", "")?.to_string();
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    match mode.as_str() {
        "" => {
            let fdt = if dt.is_float() { dt } else { Dt::F32 };
            let (x, y) = (as_tensor(&p, fdt, a)?, as_tensor(&q, fdt, a)?);
            one(Tv::new(x.t.broadcast_div(&y.t)?, fdt))
        }
        "trunc" | "floor" => {
            let floor = mode == "floor";
            if dt.is_float() {
                let (x, y) = (as_tensor(&p, dt, a)?, as_tensor(&q, dt, a)?);
                let qt = x.t.broadcast_div(&y.t)?;
                let r = if floor {
                    qt.floor()?
                } else {
                    host_map_t(&qt, f64::trunc)?
                };
                one(Tv::new(r, dt))
            } else {
                host_int_binary(a, &p, &q, dt, move |x, y| {
                    if y == 0 {
                        return Err("integer division by zero".into());
                    }
                    Ok(if floor {
                        floor_div(x, y)
                    } else {
                        x.wrapping_div(y)
                    })
                })
            }
        }
        other => Err(a.err(format!(
            "rounding_mode {other:?} is not one of trunc, floor"
        ))),
    }
}

fn floor_div(x: i64, y: i64) -> i64 {
    let q = x.wrapping_div(y);
    if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

fn floor_divide(a: &Args) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    if dt.is_float() {
        let (x, y) = (as_tensor(&p, dt, a)?, as_tensor(&q, dt, a)?);
        return one(Tv::new(x.t.broadcast_div(&y.t)?.floor()?, dt));
    }
    host_int_binary(a, &p, &q, dt, |x, y| {
        if y == 0 {
            Err("integer division by zero".into())
        } else {
            Ok(floor_div(x, y))
        }
    })
}

fn remainder(a: &Args) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    if dt.is_float() {
        return host_float_binary(a, &p, &q, dt, |x, y| x - (x / y).floor() * y);
    }
    host_int_binary(a, &p, &q, dt, |x, y| {
        if y == 0 {
            return Err("integer modulo by zero".into());
        }
        let r = x.wrapping_rem(y);
        Ok(if r != 0 && ((r < 0) != (y < 0)) {
            r + y
        } else {
            r
        })
    })
}

fn fmod(a: &Args) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    if dt.is_float() {
        return host_float_binary(a, &p, &q, dt, |x, y| x % y);
    }
    host_int_binary(a, &p, &q, dt, |x, y| {
        if y == 0 {
            Err("integer modulo by zero".into())
        } else {
            Ok(x.wrapping_rem(y))
        }
    })
}

fn pow(a: &Args) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("exponent")?);
    let dt = result_type(&[&p, &q]);
    if let (Operand::T(x), Operand::S(e)) = (&p, &q) {
        if dt.is_float() {
            let x = x.to(dt)?;
            let e = e.f64();
            let t = if e == 2.0 {
                x.t.sqr()?
            } else if e == 1.0 {
                x.t.clone()
            } else if e == 0.5 {
                x.t.sqrt()?
            } else if e == 3.0 {
                x.t.sqr()?.mul(&x.t)?
            } else {
                return host_float_binary(a, &p, &q, dt, f64::powf);
            };
            return one(Tv::new(t, dt));
        }
    }
    if dt.is_float() {
        host_float_binary(a, &p, &q, dt, f64::powf)
    } else {
        host_int_binary(a, &p, &q, dt, |x, y| {
            if y < 0 {
                return Err("integers to negative integer powers are not allowed".into());
            }
            Ok(x.wrapping_pow(u32::try_from(y).unwrap_or(u32::MAX)))
        })
    }
}

#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn cmp(a: &Args, c: Cmp) -> Result<Vec<Value>> {
    let (x, y, _) = promoted(a, "self", "other")?;
    let (x, y) = (&x.t, &y.t);
    let t = match c {
        Cmp::Eq => x.broadcast_eq(y)?,
        Cmp::Ne => x.broadcast_ne(y)?,
        Cmp::Lt => x.broadcast_lt(y)?,
        Cmp::Le => x.broadcast_le(y)?,
        Cmp::Gt => x.broadcast_gt(y)?,
        Cmp::Ge => x.broadcast_ge(y)?,
    };
    one(Tv::new(t, Dt::Bool))
}

fn logical(a: &Args, f: fn(bool, bool) -> bool) -> Result<Vec<Value>> {
    let x = as_tensor(&a.operand("self")?, Dt::Bool, a)?;
    let y = as_tensor(&a.operand("other")?, Dt::Bool, a)?;
    one(Tv::new(
        bool_table(&x, &y, f(true, true), f(true, false))?,
        Dt::Bool,
    ))
}

/// A symmetric op on bool tensors (0/1 values) given by its truth table: and = min, or = max,
/// xor = ne.
fn bool_table(x: &Tv, y: &Tv, t11: bool, t10: bool) -> Result<Tensor> {
    Ok(match (t11, t10) {
        (true, false) => x.t.broadcast_minimum(&y.t)?,
        (true, true) => x.t.broadcast_maximum(&y.t)?,
        _ => x.t.broadcast_ne(&y.t)?,
    })
}

fn logical_not(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?.to(Dt::Bool)?;
    one(Tv::new(x.t.eq(&x.t.zeros_like()?)?, Dt::Bool))
}

fn bitwise(a: &Args, f: fn(i64, i64) -> i64) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    if dt.is_float() {
        return Err(a.err("bitwise ops take bool or integer tensors"));
    }
    if dt == Dt::Bool {
        // As tensor ops (attention masks are built this way).
        let (x, y) = (as_tensor(&p, dt, a)?, as_tensor(&q, dt, a)?);
        let t = bool_table(&x, &y, f(1, 1) != 0, f(1, 0) != 0)?;
        return one(Tv::new(t, Dt::Bool));
    }
    host_int_binary(a, &p, &q, dt, move |x, y| Ok(f(x, y)))
}

fn bitwise_not(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    match x.dt {
        Dt::Bool => logical_not(a),
        d if d.is_int() => {
            let v: Vec<i64> = x.t.flatten_all()?.to_vec1()?;
            let t = Tensor::from_vec(
                v.into_iter().map(|i| !i).collect::<Vec<_>>(),
                x.dims(),
                x.t.device(),
            )?;
            one(Tv::new(t, d))
        }
        _ => Err(a.err("bitwise_not takes bool or integer tensors")),
    }
}

/// `where(cond, self, other)`.
pub(crate) fn select_where(cond: &Tv, x: &Tv, y: &Tv) -> Result<Tensor> {
    let shape = broadcast_shape(&[cond.dims(), x.dims(), y.dims()])?;
    let c = cond.to(Dt::Bool)?.t.broadcast_as(shape.as_slice())?;
    let x = x.t.broadcast_as(shape.as_slice())?;
    let y = y.t.broadcast_as(shape.as_slice())?;
    Ok(c.where_cond(&x, &y)?)
}

/// The broadcast of several shapes.
pub(crate) fn broadcast_shape(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(super::super::GraphError::msg(format!(
                    "shapes {shapes:?} do not broadcast"
                )));
            }
        }
    }
    Ok(out)
}

fn where_(a: &Args) -> Result<Vec<Value>> {
    let cond = a.tensor("condition")?;
    let (x, y, dt) = promoted(a, "self", "other")?;
    one(Tv::new(select_where(&cond, &x, &y)?, dt))
}

fn masked_fill(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let mask = a.tensor("mask")?;
    let v = match a.operand("value")? {
        Operand::T(t) => t.to(x.dt)?,
        Operand::S(s) => s.tensor(x.dt, a.device)?,
    };
    let shape = broadcast_shape(&[x.dims(), mask.dims()])?;
    if shape != x.dims() {
        return Err(a.err(format!(
            "mask {:?} does not broadcast to {:?}",
            mask.dims(),
            x.dims()
        )));
    }
    one(Tv::new(select_where(&mask, &v, &x)?, x.dt))
}

fn clamp_to(a: &Args, x: Tv, lo: Option<Operand>, hi: Option<Operand>) -> Result<Vec<Value>> {
    let mut ops = vec![Operand::T(x.clone())];
    ops.extend(lo.clone());
    ops.extend(hi.clone());
    let dt = result_type(&ops.iter().collect::<Vec<_>>());
    let mut t = x.to(dt)?.t;
    if let Some(lo) = lo {
        t = t.broadcast_maximum(&as_tensor(&lo, dt, a)?.t)?;
    }
    if let Some(hi) = hi {
        t = t.broadcast_minimum(&as_tensor(&hi, dt, a)?.t)?;
    }
    one(Tv::new(t, dt))
}

fn opt_operand(a: &Args, name: &str) -> Result<Option<Operand>> {
    if a.has(name) {
        a.operand(name).map(Some)
    } else {
        Ok(None)
    }
}

fn clamp(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let lo = opt_operand(a, "min")?;
    let hi = opt_operand(a, "max")?;
    clamp_to(a, x, lo, hi)
}

fn clamp_min(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let lo = opt_operand(a, "min")?;
    clamp_to(a, x, lo, None)
}

fn clamp_max(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let hi = opt_operand(a, "max")?;
    clamp_to(a, x, None, hi)
}

fn hardtanh_between(a: &Args, lo: f64, hi: f64) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    clamp_to(
        a,
        x,
        Some(Operand::S(Scalar::Float(lo))),
        Some(Operand::S(Scalar::Float(hi))),
    )
}

/// Float result of a unary float op: integer inputs become float32 as in ATen.
fn float_input(a: &Args) -> Result<Tv> {
    let x = a.tensor("self")?;
    if x.dt.is_float() {
        Ok(x)
    } else {
        x.to(Dt::F32)
    }
}

fn float_unary(a: &Args, f: fn(&Tensor) -> Result<Tensor>) -> Result<Vec<Value>> {
    let x = float_input(a)?;
    one(Tv::new(f(&x.t)?, x.dt))
}

fn gelu(a: &Args) -> Result<Vec<Value>> {
    let x = float_input(a)?;
    let t = match a.str_or("approximate", "none")? {
        "tanh" => x.t.gelu()?,
        _ => x.t.gelu_erf()?,
    };
    one(Tv::new(t, x.dt))
}

fn neg(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.dt == Dt::Bool {
        return Err(a.err("negation of a bool tensor is not allowed (use logical_not)"));
    }
    if x.dt.is_float() {
        return one(Tv::new(x.t.neg()?, x.dt));
    }
    // candle's unary ops are float-only: integers subtract from zero.
    one(Tv::new(x.t.zeros_like()?.sub(&x.t)?, x.dt))
}

fn abs(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.dt.is_float() {
        return one(Tv::new(x.t.abs()?, x.dt));
    }
    let t = x.t.maximum(&x.t.zeros_like()?.sub(&x.t)?)?;
    one(Tv::new(t, x.dt))
}

/// Maps the values on the host in f64 (results rounded to the tensor's float dtype).
pub(crate) fn host_map_t(t: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let out: Vec<f64> = v.into_iter().map(f).collect();
    Ok(Tensor::from_vec(out, t.dims(), t.device())?.to_dtype(t.dtype())?)
}

fn host_unary(a: &Args, f: fn(f64) -> f64) -> Result<Vec<Value>> {
    host_unary_with(a, f)
}

fn host_unary_with(a: &Args, f: impl Fn(f64) -> f64) -> Result<Vec<Value>> {
    let x = float_input(a)?;
    // f32 programs compute in f32 in ATen; f64 here then rounding once is at least as close.
    one(Tv::new(host_map_t(&x.t, f)?, x.dt))
}

fn host_pred(a: &Args, f: fn(f64) -> bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let v: Vec<f64> = x.t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let out: Vec<u8> = v.into_iter().map(|x| u8::from(f(x))).collect();
    one(Tv::new(
        Tensor::from_vec(out, x.dims(), x.t.device())?,
        Dt::Bool,
    ))
}

/// Ops that keep integer inputs as they are (`floor`, `ceil`, `trunc`, `sign` of ints).
fn int_keeping(a: &Args, f: fn(f64) -> f64) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        if f(-2.5) == -1.0 {
            // sign
            let v: Vec<i64> = x.to(Dt::I64)?.t.flatten_all()?.to_vec1()?;
            let out: Vec<i64> = v.into_iter().map(i64::signum).collect();
            return one(Tv::new(
                Tensor::from_vec(out, x.dims(), x.t.device())?,
                x.dt,
            ));
        }
        return one(x);
    }
    let t = match f(1.5) {
        v if v == 2.0 && f(-1.5) == -1.0 => x.t.ceil()?,
        v if v == 1.0 && f(-1.5) == -2.0 => x.t.floor()?,
        _ => host_map_t(&x.t, f)?,
    };
    one(Tv::new(t, x.dt))
}

fn round(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return one(x);
    }
    let decimals = a.int_or("decimals", 0)?;
    let scale = 10f64.powi(i32::try_from(decimals).map_err(|_| a.err("decimals out of range"))?);
    one(Tv::new(
        host_map_t(&x.t, move |v| (v * scale).round_ties_even() / scale)?,
        x.dt,
    ))
}

fn glu(a: &Args) -> Result<Vec<Value>> {
    let x = float_input(a)?;
    let d = super::super::value::norm_dim(a.int_or("dim", -1)?, x.rank())?;
    let n = x.dims()[d];
    if n % 2 != 0 {
        return Err(a.err(format!("dim {d} has odd size {n}")));
    }
    let h = x.t.narrow(d, 0, n / 2)?;
    let g = x.t.narrow(d, n / 2, n / 2)?;
    one(Tv::new(h.mul(&candle_nn::ops::sigmoid(&g)?)?, x.dt))
}

fn prelu(a: &Args) -> Result<Vec<Value>> {
    let x = float_input(a)?;
    let w = a.tensor("weight")?.to(x.dt)?;
    // The weight applies per channel (dim 1) or as one value.
    let w = if w.t.elem_count() == 1 || x.rank() < 2 {
        w.t.flatten_all()?
    } else {
        let mut shape = vec![1usize; x.rank()];
        shape[1] = w.t.elem_count();
        w.t.reshape(shape)?
    };
    let pos = x.t.relu()?;
    let negp = x.t.neg()?.relu()?.neg()?;
    one(Tv::new(pos.broadcast_add(&negp.broadcast_mul(&w)?)?, x.dt))
}

fn lerp(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let e = a.tensor("end")?.to(x.dt)?;
    let w = as_tensor(&a.operand("weight")?, x.dt, a)?;
    let d = e.t.broadcast_sub(&x.t)?;
    one(Tv::new(x.t.broadcast_add(&d.broadcast_mul(&w.t)?)?, x.dt))
}

fn broadcast_pair(a: &Args, p: &Operand, q: &Operand, dt: Dt) -> Result<(Tensor, Tensor)> {
    let x = as_tensor(p, dt, a)?;
    let y = as_tensor(q, dt, a)?;
    let shape = broadcast_shape(&[x.dims(), y.dims()])?;
    Ok((
        x.t.broadcast_as(shape.as_slice())?.contiguous()?,
        y.t.broadcast_as(shape.as_slice())?.contiguous()?,
    ))
}

fn host_int_binary(
    a: &Args,
    p: &Operand,
    q: &Operand,
    dt: Dt,
    f: impl Fn(i64, i64) -> std::result::Result<i64, String>,
) -> Result<Vec<Value>> {
    let work = if dt == Dt::Bool { Dt::I64 } else { dt };
    let (x, y) = broadcast_pair(a, p, q, work)?;
    let shape = x.dims().to_vec();
    let xv: Vec<i64> = x.flatten_all()?.to_vec1()?;
    let yv: Vec<i64> = y.flatten_all()?.to_vec1()?;
    let out = xv
        .into_iter()
        .zip(yv)
        .map(|(x, y)| f(x, y))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| a.err(e))?;
    let t = Tv::new(Tensor::from_vec(out, shape, a.device)?, work);
    one(if dt == Dt::Bool { t.to(Dt::Bool)? } else { t })
}

fn host_float_binary(
    a: &Args,
    p: &Operand,
    q: &Operand,
    dt: Dt,
    f: impl Fn(f64, f64) -> f64,
) -> Result<Vec<Value>> {
    let (x, y) = broadcast_pair(a, p, q, dt)?;
    let shape = x.dims().to_vec();
    let xv: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let yv: Vec<f64> = y.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let out: Vec<f64> = xv.into_iter().zip(yv).map(|(x, y)| f(x, y)).collect();
    let t = Tensor::from_vec(out, shape, a.device)?.to_dtype(dt.storage())?;
    one(Tv::new(t, dt))
}

fn host_binary_f(a: &Args, f: fn(f64, f64) -> f64) -> Result<Vec<Value>> {
    let (p, q) = (a.operand("self")?, a.operand("other")?);
    let dt = result_type(&[&p, &q]);
    let dt = if dt.is_float() { dt } else { Dt::F32 };
    host_float_binary(a, &p, &q, dt, f)
}

fn to_copy(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dt = match a.dtype("dtype")? {
        Some(d) => d,
        None if a.has("other") => a.tensor("other")?.dt,
        None => x.dt,
    };
    one(x.to(dt)?)
}
