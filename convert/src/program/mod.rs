//! `torch.export` programs: the ExportedProgram of a `.pt2` archive (`models/<name>.json`,
//! schema of `torch/_export/serde/schema.py`) parsed into plain Rust values, with its weights
//! and constants as a [`Checkpoint`]. Candle-free: `torchless-models`' graph interpreter runs
//! what this module reads. Unions are one-key JSON objects; an argument kind this module does
//! not know is kept by name ([`Argument::Other`]) so the interpreter can refuse the node that
//! uses it. Nothing is imported or executed.

pub mod sym;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::checkpoint::Checkpoint;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::OpenOptions;
pub use sym::Expr;

/// The schema major version this reader understands (torch 2.8 – 2.15 write 8.x).
pub const SCHEMA_MAJOR: i64 = 8;

/// An integer that may be symbolic.
#[derive(Debug, Clone, PartialEq)]
pub enum SymInt {
    /// A concrete value.
    Int(i64),
    /// A symbolic expression, with the example value the export traced.
    Expr {
        /// The expression.
        expr: Expr,
        /// The traced example value, when recorded.
        hint: Option<i64>,
    },
}

/// A tensor's metadata as the graph declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    /// Element type.
    pub dtype: DType,
    /// Sizes, possibly symbolic.
    pub sizes: Vec<SymInt>,
    /// `torch.layout` code (7 = strided).
    pub layout: i64,
}

/// An integer argument that is either a literal or a named symbolic value of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum SymIntArg {
    /// A literal.
    Int(i64),
    /// A value computed by a node (`sym_size`, `_operator.mul`, ...).
    Name(String),
}

/// A node argument (the `Argument` union of the schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Argument {
    /// `None`.
    None,
    /// A tensor value, by name.
    Tensor(String),
    /// A list of tensors.
    Tensors(Vec<String>),
    /// A list of optional tensors (`index.Tensor` indices).
    OptionalTensors(Vec<Option<String>>),
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f64),
    /// A list of floats.
    Floats(Vec<f64>),
    /// A bool.
    Bool(bool),
    /// A list of bools.
    Bools(Vec<bool>),
    /// A string.
    Str(String),
    /// A list of strings.
    Strings(Vec<String>),
    /// A symbolic integer.
    SymInt(SymIntArg),
    /// A list of possibly symbolic integers.
    SymInts(Vec<SymIntArg>),
    /// A symbolic float, by name or literal.
    SymFloat(Option<String>, f64),
    /// A symbolic bool, by name or literal.
    SymBool(Option<String>, bool),
    /// A dtype.
    ScalarType(DType),
    /// A dtype code this crate does not know.
    UnknownScalarType(i64),
    /// A `torch.memory_format` code.
    MemoryFormat(i64),
    /// A `torch.layout` code.
    Layout(i64),
    /// A device (`cpu`, `cuda:0`).
    Device(String),
    /// Any other kind (`as_graph` of control flow, `as_custom_obj`, `as_operator`, ...), by
    /// its schema key.
    Other(String),
}

/// One named input of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArg {
    /// The schema name of the argument (`self`, `dim`, `keepdim`).
    pub name: String,
    /// Its value.
    pub arg: Argument,
}

/// One graph node: an operator call.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name (its first output's name when the file has none).
    pub name: String,
    /// The operator, as written (`torch.ops.aten.add.Tensor`, `_operator.getitem`).
    pub target: String,
    /// Inputs in schema order.
    pub inputs: Vec<NamedArg>,
    /// Outputs: tensors, symbolic values, lists of tensors, or `as_none` for unused ones.
    pub outputs: Vec<Argument>,
}

/// The computation.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The placeholders, in order (parameters, buffers, constants, then user inputs).
    pub inputs: Vec<Argument>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The graph's outputs (buffer mutations first, then user outputs).
    pub outputs: Vec<Argument>,
    /// Declared metadata of every tensor value.
    pub tensor_values: HashMap<String, TensorMeta>,
    /// Declared values of every symbolic integer.
    pub sym_int_values: HashMap<String, SymInt>,
}

/// What a placeholder is (`InputSpec` of the schema).
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// A caller-provided input.
    User(Argument),
    /// A parameter: the placeholder name and the state_dict name.
    Parameter {
        /// Placeholder.
        arg: String,
        /// State-dict name.
        target: String,
    },
    /// A buffer.
    Buffer {
        /// Placeholder.
        arg: String,
        /// Buffer name.
        target: String,
    },
    /// A lifted tensor constant.
    Constant {
        /// Placeholder.
        arg: String,
        /// Constant name.
        target: String,
    },
    /// An effect token (no value).
    Token(String),
    /// A non-tensor constant input baked into the program.
    ConstantInput {
        /// Placeholder.
        name: String,
        /// The value.
        value: Argument,
    },
    /// Anything else (a custom object), by schema key.
    Other(String),
}

/// What a graph output is (`OutputSpec` of the schema).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSpec {
    /// A result returned to the caller.
    User(Argument),
    /// A new value for a buffer (a mutation the program performs).
    BufferMutation {
        /// Output value.
        arg: String,
        /// Buffer name.
        target: String,
    },
    /// A new value for a user input (an in-place op on an input).
    UserInputMutation {
        /// Output value.
        arg: String,
        /// The mutated input.
        target: String,
    },
    /// An effect token.
    Token(String),
    /// Anything else (loss, gradients), by schema key.
    Other(String),
}

/// The range a size symbol may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Smallest value.
    pub min: i64,
    /// Largest value, `None` for unbounded.
    pub max: Option<i64>,
}

/// An exported program read from a `.pt2` archive.
#[derive(Debug)]
pub struct ExportedProgram {
    /// The archive path, for messages.
    pub label: String,
    /// The program's name inside the archive.
    pub name: String,
    /// `schema_version` (major, minor).
    pub schema_version: (i64, i64),
    /// The torch version that wrote it.
    pub torch_version: String,
    /// The dialects it declares (`TRAINING`, `ATEN`).
    pub verifiers: Vec<String>,
    /// The computation.
    pub graph: Graph,
    /// Placeholders' roles, in graph input order.
    pub inputs: Vec<InputSpec>,
    /// Outputs' roles, in graph output order.
    pub outputs: Vec<OutputSpec>,
    /// Symbol ranges.
    pub range_constraints: BTreeMap<String, Range>,
    /// Parameters, buffers and constants, named as in the input specs' targets.
    pub weights: Checkpoint,
}

/// Opens the exported program of a `.pt2` archive (`name` picks one when it holds several).
pub fn open_program(
    path: &Path,
    options: &OpenOptions,
    name: Option<&str>,
) -> Result<ExportedProgram> {
    let (weights, files) = crate::formats::open_program(path, options, name)?;
    let label = format!("{}: models/{}.json", path.display(), files.name);
    let json: Json = serde_json::from_str(&files.json)
        .map_err(|e| Error::format(&label, format!("not JSON: {e}")))?;
    parse(
        &label,
        &json,
        path.display().to_string(),
        files.name,
        weights,
    )
}

/// Parses a program's JSON (exposed for tests that craft programs).
pub fn parse(
    label: &str,
    json: &Json,
    archive: String,
    name: String,
    weights: Checkpoint,
) -> Result<ExportedProgram> {
    let f = |reason: String| Error::format(label, reason);
    let version = json
        .get("schema_version")
        .ok_or_else(|| f("no schema_version".into()))?;
    let major = version.get("major").and_then(Json::as_i64).unwrap_or(-1);
    let minor = version.get("minor").and_then(Json::as_i64).unwrap_or(0);
    if major != SCHEMA_MAJOR {
        return Err(f(format!(
            "schema_version {major}.{minor}: this torchless reads torch.export schema {SCHEMA_MAJOR}.x (torch 2.8 and later); re-export with a torch that writes it"
        )));
    }
    let gm = json
        .get("graph_module")
        .ok_or_else(|| f("no graph_module".into()))?;
    let g = gm
        .get("graph")
        .ok_or_else(|| f("no graph_module.graph".into()))?;
    let mut graph = Graph::default();
    for (i, a) in list(g, "inputs", label)?.iter().enumerate() {
        graph
            .inputs
            .push(argument(a).map_err(|r| f(format!("graph input {i}: {r}")))?);
    }
    for (i, a) in list(g, "outputs", label)?.iter().enumerate() {
        graph
            .outputs
            .push(argument(a).map_err(|r| f(format!("graph output {i}: {r}")))?);
    }
    for (i, n) in list(g, "nodes", label)?.iter().enumerate() {
        graph
            .nodes
            .push(node(n).map_err(|r| f(format!("node {i}: {r}")))?);
    }
    if let Some(tv) = g.get("tensor_values").and_then(Json::as_object) {
        for (k, v) in tv {
            graph.tensor_values.insert(
                k.clone(),
                tensor_meta(v).map_err(|r| f(format!("tensor_values[{k:?}]: {r}")))?,
            );
        }
    }
    if let Some(sv) = g.get("sym_int_values").and_then(Json::as_object) {
        for (k, v) in sv {
            graph.sym_int_values.insert(
                k.clone(),
                sym_int(v).map_err(|r| f(format!("sym_int_values[{k:?}]: {r}")))?,
            );
        }
    }
    if let Some(objs) = g.get("custom_obj_values").and_then(Json::as_object) {
        if let Some(k) = objs.keys().next() {
            return Err(f(format!(
                "the program uses the custom object `{k}` (a TorchScript class instance); custom objects are not supported"
            )));
        }
    }
    let sig = gm
        .get("signature")
        .ok_or_else(|| f("no graph_module.signature".into()))?;
    let inputs = list(sig, "input_specs", label)?
        .iter()
        .enumerate()
        .map(|(i, s)| input_spec(s).map_err(|r| f(format!("input_specs[{i}]: {r}"))))
        .collect::<Result<Vec<_>>>()?;
    let outputs = list(sig, "output_specs", label)?
        .iter()
        .enumerate()
        .map(|(i, s)| output_spec(s).map_err(|r| f(format!("output_specs[{i}]: {r}"))))
        .collect::<Result<Vec<_>>>()?;
    if inputs.len() != graph.inputs.len() {
        return Err(f(format!(
            "{} input specs for {} graph inputs",
            inputs.len(),
            graph.inputs.len()
        )));
    }
    if outputs.len() != graph.outputs.len() {
        return Err(f(format!(
            "{} output specs for {} graph outputs",
            outputs.len(),
            graph.outputs.len()
        )));
    }
    let mut range_constraints = BTreeMap::new();
    if let Some(rc) = json.get("range_constraints").and_then(Json::as_object) {
        for (k, v) in rc {
            let min = v.get("min_val").and_then(Json::as_i64).unwrap_or(0);
            let max = v.get("max_val").and_then(Json::as_i64);
            range_constraints.insert(k.clone(), Range { min, max });
        }
    }
    let verifiers = json
        .get("verifiers")
        .and_then(Json::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(ExportedProgram {
        label: archive,
        name,
        schema_version: (major, minor),
        torch_version: json
            .get("torch_version")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
        verifiers,
        graph,
        inputs,
        outputs,
        range_constraints,
        weights,
    })
}

fn list<'a>(v: &'a Json, key: &str, label: &str) -> Result<&'a Vec<Json>> {
    v.get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| Error::format(label, format!("no `{key}` list")))
}

/// The single key and value of a union object.
fn union(v: &Json) -> Result<(&str, &Json), String> {
    let o: &Map<String, Json> = v.as_object().ok_or("not an object")?;
    // Unions have one key; older writers add nulls for the other members.
    let mut set = o.iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        (None, None) => o
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| "an empty union".into()),
        _ => Err(format!(
            "a union with several members ({})",
            o.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

fn name_of(v: &Json) -> Result<String, String> {
    v.get("name")
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no name in {v}"))
}

fn int(v: &Json) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{v} is not an integer"))
}

fn float(v: &Json) -> Result<f64, String> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("{v} is not a number")),
        // Non-finite floats are written as strings.
        Json::String(s) => match s.as_str() {
            "inf" | "Infinity" => Ok(f64::INFINITY),
            "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
            "nan" | "NaN" => Ok(f64::NAN),
            _ => Err(format!("{v} is not a number")),
        },
        _ => Err(format!("{v} is not a number")),
    }
}

fn sym_int_arg(v: &Json) -> Result<SymIntArg, String> {
    let (k, x) = union(v)?;
    match k {
        "as_name" => Ok(SymIntArg::Name(
            x.as_str().ok_or("as_name is not a string")?.to_string(),
        )),
        "as_int" => Ok(SymIntArg::Int(int(x)?)),
        other => Err(format!("unknown SymIntArgument kind {other}")),
    }
}

fn sym_int(v: &Json) -> Result<SymInt, String> {
    let (k, x) = union(v)?;
    match k {
        "as_int" => Ok(SymInt::Int(int(x)?)),
        "as_expr" => {
            let text = x
                .get("expr_str")
                .and_then(Json::as_str)
                .ok_or("as_expr without expr_str")?;
            let hint = x.get("hint").and_then(|h| match union(h) {
                Ok(("as_int", v)) => v.as_i64(),
                _ => None,
            });
            Ok(SymInt::Expr {
                expr: Expr::parse(text)?,
                hint,
            })
        }
        other => Err(format!("unknown SymInt kind {other}")),
    }
}

fn tensor_meta(v: &Json) -> Result<TensorMeta, String> {
    let code = v.get("dtype").and_then(Json::as_i64).ok_or("no dtype")?;
    let dtype = DType::from_export_scalar_type(code).ok_or(format!("unknown dtype code {code}"))?;
    let sizes = v
        .get("sizes")
        .and_then(Json::as_array)
        .ok_or("no sizes")?
        .iter()
        .map(sym_int)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorMeta {
        dtype,
        sizes,
        layout: v.get("layout").and_then(Json::as_i64).unwrap_or(7),
    })
}

fn argument(v: &Json) -> Result<Argument, String> {
    let (k, x) = union(v)?;
    let arr = || x.as_array().ok_or_else(|| format!("{k} is not a list"));
    Ok(match k {
        "as_none" => Argument::None,
        "as_tensor" => Argument::Tensor(name_of(x)?),
        "as_tensors" => Argument::Tensors(arr()?.iter().map(name_of).collect::<Result<_, _>>()?),
        "as_optional_tensors" => Argument::OptionalTensors(
            arr()?
                .iter()
                .map(|o| match union(o)? {
                    ("as_tensor", t) => name_of(t).map(Some),
                    ("as_none", _) => Ok(None),
                    (other, _) => Err(format!("unknown OptionalTensorArgument kind {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "as_optional_tensor" => match union(x)? {
            ("as_tensor", t) => Argument::Tensor(name_of(t)?),
            _ => Argument::None,
        },
        "as_int" => Argument::Int(int(x)?),
        "as_ints" => Argument::Ints(arr()?.iter().map(int).collect::<Result<_, _>>()?),
        "as_float" => Argument::Float(float(x)?),
        "as_floats" => Argument::Floats(arr()?.iter().map(float).collect::<Result<_, _>>()?),
        "as_bool" => Argument::Bool(x.as_bool().ok_or("as_bool is not a bool")?),
        "as_bools" => Argument::Bools(
            arr()?
                .iter()
                .map(|b| b.as_bool().ok_or_else(|| format!("{b} is not a bool")))
                .collect::<Result<_, _>>()?,
        ),
        "as_string" => Argument::Str(x.as_str().ok_or("as_string is not a string")?.into()),
        "as_strings" => Argument::Strings(
            arr()?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or(format!("{s} is not a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
        "as_sym_int" => Argument::SymInt(sym_int_arg(x)?),
        "as_sym_ints" => {
            Argument::SymInts(arr()?.iter().map(sym_int_arg).collect::<Result<_, _>>()?)
        }
        "as_sym_float" => match union(x)? {
            ("as_name", n) => Argument::SymFloat(n.as_str().map(str::to_string), 0.0),
            ("as_float", f) => Argument::SymFloat(None, float(f)?),
            (other, _) => return Err(format!("unknown SymFloatArgument kind {other}")),
        },
        "as_sym_bool" => match union(x)? {
            ("as_name", n) => Argument::SymBool(n.as_str().map(str::to_string), false),
            ("as_bool", b) => Argument::SymBool(None, b.as_bool().unwrap_or(false)),
            (other, _) => return Err(format!("unknown SymBoolArgument kind {other}")),
        },
        "as_scalar_type" => {
            let code = int(x)?;
            match DType::from_export_scalar_type(code) {
                Some(d) => Argument::ScalarType(d),
                None => Argument::UnknownScalarType(code),
            }
        }
        "as_memory_format" => Argument::MemoryFormat(int(x)?),
        "as_layout" => Argument::Layout(int(x)?),
        "as_device" => {
            let ty = x.get("type").and_then(Json::as_str).unwrap_or("cpu");
            match x.get("index").and_then(Json::as_i64) {
                Some(i) => Argument::Device(format!("{ty}:{i}")),
                None => Argument::Device(ty.to_string()),
            }
        }
        other => Argument::Other(other.to_string()),
    })
}

fn node(v: &Json) -> Result<Node, String> {
    let target = v
        .get("target")
        .and_then(Json::as_str)
        .ok_or("no target")?
        .to_string();
    let mut inputs = Vec::new();
    for (i, a) in v
        .get("inputs")
        .and_then(Json::as_array)
        .ok_or("no inputs")?
        .iter()
        .enumerate()
    {
        let name = a
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let arg = a
            .get("arg")
            .ok_or_else(|| format!("{target}: input {i} has no arg"))?;
        let arg = argument(arg).map_err(|r| format!("{target}: input {name:?}: {r}"))?;
        inputs.push(NamedArg { name, arg });
    }
    let outputs = v
        .get("outputs")
        .and_then(Json::as_array)
        .ok_or("no outputs")?
        .iter()
        .map(argument)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|r| format!("{target}: output: {r}"))?;
    let name = v
        .get("name")
        .and_then(Json::as_str)
        .map(str::to_string)
        .or_else(|| match outputs.first() {
            Some(Argument::Tensor(n)) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| target.clone());
    Ok(Node {
        name,
        target,
        inputs,
        outputs,
    })
}

fn field_str(v: &Json, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no `{key}`"))
}

fn arg_name(v: &Json) -> Result<String, String> {
    name_of(v.get("arg").ok_or("no arg")?)
}

fn input_spec(v: &Json) -> Result<InputSpec, String> {
    let (k, x) = union(v)?;
    Ok(match k {
        "user_input" => InputSpec::User(argument(x.get("arg").ok_or("no arg")?)?),
        "parameter" => InputSpec::Parameter {
            arg: arg_name(x)?,
            target: field_str(x, "parameter_name")?,
        },
        "buffer" => InputSpec::Buffer {
            arg: arg_name(x)?,
            target: field_str(x, "buffer_name")?,
        },
        "tensor_constant" => InputSpec::Constant {
            arg: arg_name(x)?,
            target: field_str(x, "tensor_constant_name")?,
        },
        "token" => InputSpec::Token(arg_name(x)?),
        "constant_input" => InputSpec::ConstantInput {
            name: field_str(x, "name")?,
            value: argument(x.get("value").ok_or("no value")?)?,
        },
        other => InputSpec::Other(other.to_string()),
    })
}

fn output_spec(v: &Json) -> Result<OutputSpec, String> {
    let (k, x) = union(v)?;
    Ok(match k {
        "user_output" => OutputSpec::User(argument(x.get("arg").ok_or("no arg")?)?),
        "buffer_mutation" => OutputSpec::BufferMutation {
            arg: arg_name(x)?,
            target: field_str(x, "buffer_name")?,
        },
        "user_input_mutation" => OutputSpec::UserInputMutation {
            arg: arg_name(x)?,
            target: field_str(x, "user_input_name")?,
        },
        "token" => OutputSpec::Token(arg_name(x)?),
        other => OutputSpec::Other(other.to_string()),
    })
}
