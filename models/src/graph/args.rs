//! A node's arguments at run time, looked up by their schema names, with ATen's defaults
//! supplied by the op.

use candle_core::Device;

use super::value::{Dt, Operand, Scalar, Tv, Value};
use super::GraphError;

type Result<T> = std::result::Result<T, GraphError>;

/// The resolved arguments of one call.
pub struct Args<'a> {
    /// The op (`aten.add.Tensor`), for messages.
    pub op: &'a str,
    /// `(schema name, value)` in schema order.
    pub vals: Vec<(&'a str, Value)>,
    /// Where new tensors are created.
    pub device: &'a Device,
}

impl Args<'_> {
    fn find(&self, name: &str) -> Option<&Value> {
        self.vals.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn bad(&self, name: &str, want: &str, got: &Value) -> GraphError {
        GraphError::msg(format!(
            "{}: argument `{name}` should be {want}, got {}",
            self.op,
            got.kind()
        ))
    }

    fn missing(&self, name: &str) -> GraphError {
        GraphError::msg(format!("{}: argument `{name}` is missing", self.op))
    }

    /// Whether the argument is present and not None.
    pub fn has(&self, name: &str) -> bool {
        !matches!(self.find(name), None | Some(Value::None))
    }

    /// A required argument, any kind.
    pub fn value(&self, name: &str) -> Result<&Value> {
        self.find(name).ok_or_else(|| self.missing(name))
    }

    /// A required tensor.
    pub fn tensor(&self, name: &str) -> Result<Tv> {
        match self.value(name)? {
            Value::Tensor(t) => Ok(t.clone()),
            other => Err(self.bad(name, "a tensor", other)),
        }
    }

    /// An optional tensor.
    pub fn opt_tensor(&self, name: &str) -> Result<Option<Tv>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Tensor(t)) => Ok(Some(t.clone())),
            Some(other) => Err(self.bad(name, "a tensor or None", other)),
        }
    }

    /// A list of tensors.
    pub fn tensors(&self, name: &str) -> Result<Vec<Tv>> {
        match self.value(name)? {
            Value::Tensors(t) => Ok(t.clone()),
            other => Err(self.bad(name, "a list of tensors", other)),
        }
    }

    /// A list of optional tensors.
    pub fn opt_tensors(&self, name: &str) -> Result<Vec<Option<Tv>>> {
        match self.value(name)? {
            Value::OptTensors(t) => Ok(t.clone()),
            Value::Tensors(t) => Ok(t.iter().cloned().map(Some).collect()),
            other => Err(self.bad(name, "a list of optional tensors", other)),
        }
    }

    /// A required int.
    pub fn int(&self, name: &str) -> Result<i64> {
        match self.value(name)? {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(self.bad(name, "an int", other)),
        }
    }

    /// An int with a default for absent or None.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        match self.find(name) {
            None | Some(Value::None) => Ok(default),
            Some(_) => self.int(name),
        }
    }

    /// An optional int.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    /// A float (ints accepted) with a default.
    pub fn float_or(&self, name: &str, default: f64) -> Result<f64> {
        match self.find(name) {
            None | Some(Value::None) => Ok(default),
            Some(Value::Float(f)) => Ok(*f),
            Some(Value::Int(i)) => Ok(*i as f64),
            Some(Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
            Some(other) => Err(self.bad(name, "a float", other)),
        }
    }

    /// An optional float.
    pub fn opt_float(&self, name: &str) -> Result<Option<f64>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(_) => self.float_or(name, 0.0).map(Some),
        }
    }

    /// A bool with a default.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.find(name) {
            None | Some(Value::None) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Int(i)) => Ok(*i != 0),
            Some(other) => Err(self.bad(name, "a bool", other)),
        }
    }

    /// A list of ints (an int alone is a one-element list, as ATen's `int[1]` accepts).
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        match self.value(name)? {
            Value::Ints(v) => Ok(v.clone()),
            Value::Int(i) => Ok(vec![*i]),
            other => Err(self.bad(name, "a list of ints", other)),
        }
    }

    /// An optional list of ints (absent, None or empty → None for `dim` lists).
    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(_) => self.ints(name).map(Some),
        }
    }

    /// A list of floats.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f64>>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Floats(v)) => Ok(Some(v.clone())),
            Some(Value::Ints(v)) => Ok(Some(v.iter().map(|x| *x as f64).collect())),
            Some(other) => Err(self.bad(name, "a list of floats", other)),
        }
    }

    /// A Python scalar.
    pub fn scalar(&self, name: &str) -> Result<Scalar> {
        match self.value(name)? {
            Value::Int(i) => Ok(Scalar::Int(*i)),
            Value::Float(f) => Ok(Scalar::Float(*f)),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            other => Err(self.bad(name, "a number", other)),
        }
    }

    /// A scalar with a default.
    pub fn scalar_or(&self, name: &str, default: Scalar) -> Result<Scalar> {
        match self.find(name) {
            None | Some(Value::None) => Ok(default),
            Some(_) => self.scalar(name),
        }
    }

    /// A tensor or a Python scalar.
    pub fn operand(&self, name: &str) -> Result<Operand> {
        match self.value(name)? {
            Value::Tensor(t) => Ok(Operand::T(t.clone())),
            _ => self.scalar(name).map(Operand::S),
        }
    }

    /// An optional dtype.
    pub fn dtype(&self, name: &str) -> Result<Option<Dt>> {
        match self.find(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Dtype(d)) => Ok(Some(*d)),
            Some(other) => Err(self.bad(name, "a dtype", other)),
        }
    }

    /// An optional string.
    pub fn str_or<'s>(&'s self, name: &str, default: &'s str) -> Result<&'s str> {
        match self.find(name) {
            None | Some(Value::None) => Ok(default),
            Some(Value::Str(s)) => Ok(s),
            Some(other) => Err(self.bad(name, "a string", other)),
        }
    }

    /// An error about this op.
    pub fn err(&self, what: impl std::fmt::Display) -> GraphError {
        GraphError::msg(format!("{}: {what}", self.op))
    }
}
