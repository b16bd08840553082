//! A model whose architecture is read from the file: the interpreter of `torch.export`
//! programs ([`torchless_convert::program`]). [`GraphModel::load`] binds the program's
//! parameters, buffers and constants, checks every node against the op table (refusing the
//! whole program at once, naming every op it lacks), resolves names to slots and runs the
//! compile passes ([`compile`]); [`GraphModel::run`] checks the user inputs against the
//! declared dtypes, sizes and symbol ranges, executes the nodes on candle tensors and frees
//! each intermediate after its last use.
//!
//! docs/graph.md has the decisions.

mod args;
mod compile;
mod conv_gemm;
mod ops;
pub mod value;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use torchless_convert::program::{
    Argument, ExportedProgram, InputSpec, OutputSpec, SymInt, SymIntArg,
};
use torchless_convert::{Checkpoint, EntryKind};

pub use compile::Fusion;
pub use value::{Dt, Tv, Value};

use args::Args;
use ops::OpFn;

/// Why a program cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The program uses ops (or argument kinds) this interpreter does not run: every one is
    /// listed.
    #[error("{program}: {} unsupported op(s): {}", .ops.len(), .ops.join("; "))]
    Unsupported {
        /// The archive.
        program: String,
        /// `aten.X.overload (node N)` per unsupported node.
        ops: Vec<String>,
    },
    /// The program is malformed (a name used before it is defined, a missing weight, ...).
    #[error("{program}: {reason}")]
    Malformed {
        /// The archive.
        program: String,
        /// What is wrong.
        reason: String,
    },
    /// The inputs do not match the program's signature.
    #[error("{0}")]
    Input(String),
    /// A node failed while running.
    #[error("node `{node}` ({op}): {reason}")]
    Node {
        /// The node.
        node: String,
        /// Its op.
        op: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading the archive failed.
    #[error(transparent)]
    Convert(#[from] torchless_convert::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Any other failure, with its message.
    #[error("{0}")]
    Msg(String),
}

impl GraphError {
    pub(crate) fn msg(m: impl Into<String>) -> GraphError {
        GraphError::Msg(m.into())
    }
}

type Result<T> = std::result::Result<T, GraphError>;

/// A compiled argument: a slot, a constant, or lists of them.
#[derive(Debug, Clone)]
enum CArg {
    Slot(usize),
    Const(Value),
    Slots(Vec<usize>),
    OptSlots(Vec<Option<usize>>),
    SymInts(Vec<std::result::Result<i64, usize>>),
}

/// What a step runs: an op of the table, or a fused op the compile step built (with its
/// prepared weights).
#[derive(Clone)]
enum Exec {
    Op(OpFn),
    Fused(Arc<dyn compile::FusedOp>),
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exec::Op(_) => f.write_str("Op"),
            Exec::Fused(x) => write!(f, "Fused({x:?})"),
        }
    }
}

/// One executable node.
#[derive(Debug, Clone)]
struct Step {
    name: String,
    op: String,
    exec: Exec,
    args: Vec<(String, CArg)>,
    /// Output slots (None for outputs nobody reads), one per value the op returns; a list
    /// output is a list of slots.
    outs: Vec<Out>,
    /// Slots whose last reader is this step.
    free: Vec<usize>,
    /// For in-place ops (`relu_`): the slot of `self`, which takes the result too.
    inplace: Option<usize>,
}

#[derive(Debug, Clone)]
enum Out {
    None,
    One(usize),
    List(Vec<usize>),
}

/// One user input as declared.
#[derive(Debug, Clone)]
pub struct InputDecl {
    /// Placeholder name.
    pub name: String,
    /// Declared dtype.
    pub dtype: Dt,
    /// Declared sizes (symbolic ones as text).
    pub sizes: Vec<SymInt>,
    slot: usize,
}

/// One user output.
#[derive(Debug, Clone)]
pub struct OutputDecl {
    /// Value name (or the literal).
    pub name: String,
    src: OutSrc,
}

#[derive(Debug, Clone)]
enum OutSrc {
    Slot(usize),
    Const(Value),
}

/// What the load saw: for `torchless inspect`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GraphSummary {
    /// Ops by target, with counts.
    pub ops: BTreeMap<String, usize>,
    /// The fusions that fired, with counts.
    pub fusions: BTreeMap<String, usize>,
    /// Nodes after the compile passes.
    pub steps: usize,
}

/// A loaded `torch.export` program.
#[derive(Debug)]
pub struct GraphModel {
    label: String,
    device: Device,
    inputs: Vec<InputDecl>,
    outputs: Vec<OutputDecl>,
    steps: Vec<Step>,
    /// Parameters, buffers and constants, by slot.
    consts: Vec<(usize, Value)>,
    nslots: usize,
    /// Declared dtype of each tensor slot.
    slot_dtype: Vec<Option<Dt>>,
    ranges: BTreeMap<String, torchless_convert::program::Range>,
    summary: GraphSummary,
    /// `TORCHLESS_GRAPH_PROFILE` was set at load: each run prints its time per op to stderr.
    profile: bool,
}

/// The op histogram of a program and every node this interpreter cannot run
/// (`aten.X.overload (node N)[: why]`), without loading anything.
pub fn check_ops(program: &ExportedProgram) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut ops = BTreeMap::new();
    let mut unsupported = Vec::new();
    for n in &program.graph.nodes {
        let op = short_target(&n.target);
        *ops.entry(op.to_string()).or_default() += 1;
        if let Some(why) = ops::refusal(op) {
            unsupported.push(format!("{op} (node {}): {why}", n.name));
        } else if ops::lookup(op).is_none() {
            unsupported.push(format!("{op} (node {})", n.name));
        } else if let Some(a) = n
            .inputs
            .iter()
            .find(|a| matches!(a.arg, Argument::Other(_)))
        {
            let kind = match &a.arg {
                Argument::Other(k) => k.as_str(),
                _ => "",
            };
            unsupported.push(format!(
                "{op} (node {}): argument `{}` is of kind {kind}",
                n.name, a.name
            ));
        }
    }
    (ops, unsupported)
}

/// Every op name (`aten.<name>`, without overloads) the interpreter runs.
pub fn supported_ops() -> Vec<&'static str> {
    ops::known()
}

/// The op name without the `torch.ops.` prefix (`aten.add.Tensor`).
pub fn short_target(target: &str) -> &str {
    target.strip_prefix("torch.ops.").unwrap_or(target)
}

impl GraphModel {
    /// Loads a program onto `device`: weights are copied there in their own dtypes.
    pub fn load(program: &ExportedProgram, device: &Device) -> Result<GraphModel> {
        let label = program.label.clone();
        let malformed = |reason: String| GraphError::Malformed {
            program: label.clone(),
            reason,
        };
        // 1. Every op known, every argument kind usable.
        let (ops, unsupported) = check_ops(program);
        let summary = GraphSummary {
            ops,
            ..GraphSummary::default()
        };
        if !unsupported.is_empty() {
            return Err(GraphError::Unsupported {
                program: label,
                ops: unsupported,
            });
        }
        // 2. Slots for every named value.
        let mut slots: HashMap<String, usize> = HashMap::new();
        let slot_of = |name: &str, slots: &mut HashMap<String, usize>| -> usize {
            let n = slots.len();
            *slots.entry(name.to_string()).or_insert(n)
        };
        let weights = &program.weights;
        let by_name: HashMap<&str, usize> = weights
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.as_str(), i))
            .collect();
        let mut consts = Vec::new();
        let mut inputs = Vec::new();
        for (spec, arg) in program.inputs.iter().zip(&program.graph.inputs) {
            match spec {
                InputSpec::Parameter { arg, target }
                | InputSpec::Buffer { arg, target }
                | InputSpec::Constant { arg, target } => {
                    let t = load_weight(weights, &by_name, target, device)
                        .map_err(|r| malformed(format!("`{target}`: {r}")))?;
                    let s = slot_of(arg, &mut slots);
                    consts.push((s, Value::Tensor(t)));
                }
                InputSpec::User(Argument::Tensor(name)) => {
                    let meta = program.graph.tensor_values.get(name).ok_or_else(|| {
                        malformed(format!("user input `{name}` has no tensor metadata"))
                    })?;
                    let dtype =
                        Dt::from_torch(meta.dtype).ok_or_else(|| GraphError::Unsupported {
                            program: label.clone(),
                            ops: vec![format!("user input `{name}` of dtype {}", meta.dtype)],
                        })?;
                    let slot = slot_of(name, &mut slots);
                    inputs.push(InputDecl {
                        name: name.clone(),
                        dtype,
                        sizes: meta.sizes.clone(),
                        slot,
                    });
                }
                InputSpec::User(other) => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec![format!("a non-tensor user input ({other:?})")],
                    })
                }
                InputSpec::ConstantInput { name, value } => {
                    let s = slot_of(name, &mut slots);
                    consts.push((s, const_value(value).map_err(&malformed)?));
                }
                InputSpec::Token(_) | InputSpec::Other(_) => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec![format!(
                            "input {arg:?}: effect tokens and custom objects are not supported"
                        )],
                    })
                }
            }
        }
        // 3. Steps.
        let mut steps = Vec::new();
        for n in &program.graph.nodes {
            let op = short_target(&n.target).to_string();
            let f = ops::lookup(&op).ok_or_else(|| malformed(format!("op {op} vanished")))?;
            let mut args = Vec::new();
            for a in &n.inputs {
                let c = compile_arg(&a.arg, &slots).map_err(|r| {
                    malformed(format!(
                        "node `{}` ({op}) argument `{}`: {r}",
                        n.name, a.name
                    ))
                })?;
                args.push((a.name.clone(), c));
            }
            let mut outs = Vec::new();
            for o in &n.outputs {
                outs.push(match o {
                    Argument::Tensor(name) => Out::One(slot_of(name, &mut slots)),
                    Argument::SymInt(SymIntArg::Name(name)) => Out::One(slot_of(name, &mut slots)),
                    Argument::SymFloat(Some(name), _) | Argument::SymBool(Some(name), _) => {
                        Out::One(slot_of(name, &mut slots))
                    }
                    Argument::Tensors(names) => {
                        Out::List(names.iter().map(|x| slot_of(x, &mut slots)).collect())
                    }
                    _ => Out::None,
                });
            }
            let inplace = if op_is_inplace(&op) {
                match args.iter().find(|(k, _)| k == "self" || k == "input") {
                    Some((_, CArg::Slot(s))) => Some(*s),
                    _ => None,
                }
            } else {
                None
            };
            steps.push(Step {
                name: n.name.clone(),
                op,
                exec: Exec::Op(f),
                args,
                outs,
                free: Vec::new(),
                inplace,
            });
        }
        let mut outputs = Vec::new();
        for (spec, arg) in program.outputs.iter().zip(&program.graph.outputs) {
            match spec {
                OutputSpec::User(_) => {}
                OutputSpec::BufferMutation { target, .. } => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec![format!(
                            "the program mutates buffer `{target}` (state across calls is not supported)"
                        )],
                    })
                }
                OutputSpec::UserInputMutation { target, .. } => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec![format!("the program writes into its input `{target}`")],
                    })
                }
                OutputSpec::Token(_) | OutputSpec::Other(_) => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec![format!("output {arg:?} (tokens, losses, gradients)")],
                    })
                }
            }
            let (name, src) = match arg {
                Argument::Tensor(name) | Argument::SymInt(SymIntArg::Name(name)) => {
                    let s = *slots
                        .get(name)
                        .ok_or_else(|| malformed(format!("output `{name}` is never computed")))?;
                    (name.clone(), OutSrc::Slot(s))
                }
                Argument::None => {
                    return Err(GraphError::Unsupported {
                        program: label,
                        ops: vec!["an output that is None".into()],
                    })
                }
                other => (
                    format!("{other:?}"),
                    OutSrc::Const(const_value(other).map_err(&malformed)?),
                ),
            };
            outputs.push(OutputDecl { name, src });
        }
        let nslots = slots.len();
        let mut slot_dtype = vec![None; nslots];
        for (name, meta) in &program.graph.tensor_values {
            if let Some(&s) = slots.get(name) {
                slot_dtype[s] = Dt::from_torch(meta.dtype);
            }
        }
        let mut model = GraphModel {
            slot_dtype,
            label,
            device: device.clone(),
            inputs,
            outputs,
            steps,
            consts,
            nslots,
            ranges: program.range_constraints.clone(),
            summary,
            profile: std::env::var_os("TORCHLESS_GRAPH_PROFILE").is_some(),
        };
        compile::run_passes(&mut model)?;
        model.plan_frees();
        model.summary.steps = model.steps.len();
        Ok(model)
    }

    /// Sets each step's `free` list from the last reader of every slot.
    fn plan_frees(&mut self) {
        let mut last: Vec<Option<usize>> = vec![None; self.nslots];
        for (i, s) in self.steps.iter().enumerate() {
            for (_, a) in &s.args {
                for slot in arg_slots(a) {
                    last[slot] = Some(i);
                }
            }
        }
        for o in &self.outputs {
            if let OutSrc::Slot(s) = o.src {
                last[s] = None;
            }
        }
        for s in &mut self.steps {
            s.free.clear();
        }
        for (slot, l) in last.iter().enumerate() {
            if let Some(i) = l {
                // Constants stay: they are bound once per call from `consts`.
                self.steps[*i].free.push(slot);
            }
        }
    }

    /// The user inputs, in order.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// The user outputs' names, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.name.clone()).collect()
    }

    /// What the load saw and did.
    pub fn summary(&self) -> &GraphSummary {
        &self.summary
    }

    /// The device the program runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the program on the user inputs (in order; each in its declared dtype's storage,
    /// see [`Dt::storage`]).
    pub fn run(&self, inputs: &[Tv]) -> Result<Vec<Tv>> {
        if inputs.len() != self.inputs.len() {
            return Err(GraphError::Input(format!(
                "{}: the program takes {} input(s) ({}), got {}",
                self.label,
                self.inputs.len(),
                self.inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            )));
        }
        let mut env: HashMap<String, i64> = HashMap::new();
        // Bind plain symbols first, then solve the rest.
        for pass in 0..3 {
            for (decl, t) in self.inputs.iter().zip(inputs) {
                if pass == 0 {
                    self.check_input(decl, t)?;
                }
                for (d, (s, &have)) in decl.sizes.iter().zip(t.dims()).enumerate() {
                    let SymInt::Expr { expr, .. } = s else {
                        continue;
                    };
                    let have = have as i64;
                    if let Some(v) = expr.eval(&env) {
                        if v != have && pass == 2 {
                            return Err(GraphError::Input(format!(
                                "input `{}` dim {d} is {have}, but the program needs it to be {expr} = {v}",
                                decl.name
                            )));
                        }
                    } else if let Some((sym, v)) = expr.solve(have, &env) {
                        env.insert(sym, v);
                    } else if pass == 2 {
                        return Err(GraphError::Input(format!(
                            "input `{}` dim {d} is {have}, which no value of {expr} gives",
                            decl.name
                        )));
                    }
                }
            }
        }
        for (sym, v) in &env {
            if let Some(r) = self.ranges.get(sym) {
                let above = r.max.is_some_and(|m| *v > m);
                if *v < r.min || above {
                    let max = r.max.map_or("inf".to_string(), |m| m.to_string());
                    let user = self
                        .inputs
                        .iter()
                        .flat_map(|d| {
                            d.sizes
                                .iter()
                                .enumerate()
                                .filter_map(move |(i, s)| match s {
                                    SymInt::Expr {
                                        expr: torchless_convert::program::Expr::Sym(x),
                                        ..
                                    } if x == sym => Some(format!("`{}` dim {i}", d.name)),
                                    _ => None,
                                })
                        })
                        .next()
                        .unwrap_or_else(|| format!("size symbol {sym}"));
                    return Err(GraphError::Input(format!(
                        "{user} is {v}, outside the range [{}, {max}] the program was exported for",
                        r.min
                    )));
                }
            }
        }
        let mut vals: Vec<Option<Value>> = vec![None; self.nslots];
        for (s, v) in &self.consts {
            vals[*s] = Some(v.clone());
        }
        for (decl, t) in self.inputs.iter().zip(inputs) {
            let t = if t.t.device().same_device(&self.device) {
                t.clone()
            } else {
                Tv::new(t.t.to_device(&self.device)?, t.dt)
            };
            vals[decl.slot] = Some(Value::Tensor(t));
        }
        let mut profile: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for step in &self.steps {
            let started = self.profile.then(std::time::Instant::now);
            let node_err = |reason: String| GraphError::Node {
                node: step.name.clone(),
                op: step.op.clone(),
                reason,
            };
            let mut resolved = Vec::with_capacity(step.args.len());
            for (k, a) in &step.args {
                let v = resolve(a, &vals).map_err(|r| node_err(format!("argument `{k}`: {r}")))?;
                resolved.push((k.as_str(), v));
            }
            let args = Args {
                op: &step.op,
                vals: resolved,
                device: &self.device,
            };
            // candle panics on a few dtype/op pairs it lacks; a program must not take the
            // process (or a Go service linking it) down with it.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &step.exec {
                Exec::Op(f) => f(&args),
                Exec::Fused(f) => f.run(&args),
            }))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(GraphError::msg(format!("internal error: {what}")))
            })
            .map_err(|e| match e {
                GraphError::Msg(m) => node_err(m),
                GraphError::Candle(c) => node_err(c.to_string()),
                other => other,
            })?;
            for s in &step.free {
                vals[*s] = None;
            }
            if let (Some(s), Some(Value::Tensor(t))) = (step.inplace, out.first()) {
                if vals[s].is_some() {
                    vals[s] = Some(Value::Tensor(t.clone()));
                }
            }
            if let Some(t) = started {
                let e = profile.entry(step.op.clone()).or_default();
                e.0 += t.elapsed().as_secs_f64() * 1e3;
                e.1 += 1;
            }
            let mut out = out.into_iter();
            for o in &step.outs {
                let v = out.next();
                match (o, v) {
                    (Out::None, _) => {}
                    (Out::One(s), Some(v)) => vals[*s] = Some(v),
                    (Out::List(ss), Some(Value::Tensors(ts))) if ss.len() == ts.len() => {
                        for (s, t) in ss.iter().zip(ts) {
                            vals[*s] = Some(Value::Tensor(t));
                        }
                    }
                    (_, v) => {
                        return Err(node_err(format!(
                            "the op returned {} where the graph expects an output",
                            v.map_or("nothing", |v| v.kind())
                        )))
                    }
                }
            }
        }
        if self.profile {
            let mut rows: Vec<_> = profile.into_iter().collect();
            rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
            let total: f64 = rows.iter().map(|r| r.1 .0).sum();
            eprintln!(
                "{}: {total:.2} ms in {} steps",
                self.label,
                self.steps.len()
            );
            for (op, (ms, n)) in rows {
                eprintln!(
                    "  {ms:9.2} ms {:5.1}%  {n:4}x  {op}",
                    100.0 * ms / total.max(1e-9)
                );
            }
        }
        let mut results = Vec::with_capacity(self.outputs.len());
        for o in &self.outputs {
            let v = match &o.src {
                OutSrc::Slot(s) => vals[*s].clone(),
                OutSrc::Const(v) => Some(v.clone()),
            };
            results.push(match v {
                Some(Value::Tensor(t)) => t,
                Some(Value::Int(i)) => Tv::new(Tensor::new(i, &self.device)?, Dt::I64),
                Some(Value::Float(f)) => Tv::new(Tensor::new(f, &self.device)?, Dt::F64),
                Some(Value::Bool(b)) => Tv::new(Tensor::new(u8::from(b), &self.device)?, Dt::Bool),
                other => {
                    return Err(GraphError::msg(format!(
                        "output `{}` is {}, not a tensor",
                        o.name,
                        other.map_or("missing", |v| v.kind())
                    )))
                }
            });
        }
        Ok(results)
    }

    fn check_input(&self, decl: &InputDecl, t: &Tv) -> Result<()> {
        if t.dt != decl.dtype {
            return Err(GraphError::Input(format!(
                "input `{}` is {}, but the program was exported for {}",
                decl.name,
                t.dt.name(),
                decl.dtype.name()
            )));
        }
        if t.rank() != decl.sizes.len() {
            return Err(GraphError::Input(format!(
                "input `{}` has {} dims {:?}, but the program takes {} dims",
                decl.name,
                t.rank(),
                t.dims(),
                decl.sizes.len()
            )));
        }
        for (d, (s, &have)) in decl.sizes.iter().zip(t.dims()).enumerate() {
            if let SymInt::Int(want) = s {
                if have as i64 != *want {
                    return Err(GraphError::Input(format!(
                        "input `{}` dim {d} is {have}, but the program was exported with it fixed at {want} (export it with a torch.export.Dim to make it dynamic)",
                        decl.name
                    )));
                }
            }
        }
        Ok(())
    }
}

fn op_is_inplace(op: &str) -> bool {
    let base = op.split('.').nth(1).unwrap_or("");
    base.ends_with('_') && !base.starts_with('_') || matches!(base, "_add_relu_")
}

fn arg_slots(a: &CArg) -> Vec<usize> {
    match a {
        CArg::Slot(s) => vec![*s],
        CArg::Const(_) => vec![],
        CArg::Slots(v) => v.clone(),
        CArg::OptSlots(v) => v.iter().flatten().copied().collect(),
        CArg::SymInts(v) => v.iter().filter_map(|x| x.err()).collect(),
    }
}

fn resolve(a: &CArg, vals: &[Option<Value>]) -> std::result::Result<Value, String> {
    let get = |s: usize| vals[s].clone().ok_or("a value freed or never computed");
    let tensor = |s: usize| match get(s)? {
        Value::Tensor(t) => Ok(t),
        other => Err(format!("{} where a tensor was expected", other.kind())),
    };
    Ok(match a {
        CArg::Slot(s) => get(*s)?,
        CArg::Const(v) => v.clone(),
        CArg::Slots(v) => Value::Tensors(
            v.iter()
                .map(|s| tensor(*s))
                .collect::<std::result::Result<_, _>>()?,
        ),
        CArg::OptSlots(v) => Value::OptTensors(
            v.iter()
                .map(|s| s.map(tensor).transpose())
                .collect::<std::result::Result<_, _>>()?,
        ),
        CArg::SymInts(v) => Value::Ints(
            v.iter()
                .map(|x| match x {
                    Ok(i) => Ok(*i),
                    Err(s) => match get(*s)? {
                        Value::Int(i) => Ok(i),
                        other => Err(format!("{} where a size was expected", other.kind())),
                    },
                })
                .collect::<std::result::Result<_, String>>()?,
        ),
    })
}

fn compile_arg(a: &Argument, slots: &HashMap<String, usize>) -> std::result::Result<CArg, String> {
    let slot = |n: &str| {
        slots
            .get(n)
            .copied()
            .ok_or_else(|| format!("`{n}` is used before it is defined"))
    };
    Ok(match a {
        Argument::Tensor(n) => CArg::Slot(slot(n)?),
        Argument::Tensors(v) => CArg::Slots(
            v.iter()
                .map(|n| slot(n))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Argument::OptionalTensors(v) => CArg::OptSlots(
            v.iter()
                .map(|n| n.as_deref().map(slot).transpose())
                .collect::<std::result::Result<_, _>>()?,
        ),
        Argument::SymInt(SymIntArg::Name(n)) => CArg::Slot(slot(n)?),
        Argument::SymInt(SymIntArg::Int(i)) => CArg::Const(Value::Int(*i)),
        Argument::SymInts(v) => CArg::SymInts(
            v.iter()
                .map(|x| match x {
                    SymIntArg::Int(i) => Ok(Ok(*i)),
                    SymIntArg::Name(n) => slot(n).map(Err),
                })
                .collect::<std::result::Result<_, String>>()?,
        ),
        Argument::SymFloat(Some(n), _) | Argument::SymBool(Some(n), _) => CArg::Slot(slot(n)?),
        other => CArg::Const(const_value(other)?),
    })
}

fn const_value(a: &Argument) -> std::result::Result<Value, String> {
    Ok(match a {
        Argument::None => Value::None,
        Argument::Int(i) => Value::Int(*i),
        Argument::Ints(v) => Value::Ints(v.clone()),
        Argument::Float(f) => Value::Float(*f),
        Argument::Floats(v) => Value::Floats(v.clone()),
        Argument::Bool(b) => Value::Bool(*b),
        Argument::Bools(v) => Value::Bools(v.clone()),
        Argument::Str(s) => Value::Str(s.clone()),
        Argument::Strings(_) => Value::Ignored,
        Argument::SymInt(SymIntArg::Int(i)) => Value::Int(*i),
        Argument::SymFloat(None, f) => Value::Float(*f),
        Argument::SymBool(None, b) => Value::Bool(*b),
        Argument::ScalarType(d) => {
            Value::Dtype(Dt::from_torch(*d).ok_or_else(|| format!("dtype {d} is not supported"))?)
        }
        Argument::UnknownScalarType(c) => return Err(format!("unknown dtype code {c}")),
        Argument::MemoryFormat(_) | Argument::Layout(_) | Argument::Device(_) => Value::Ignored,
        other => return Err(format!("{other:?} is not a constant")),
    })
}

/// Reads a parameter, buffer or constant onto `device` in its own dtype.
fn load_weight(
    ckpt: &Checkpoint,
    by_name: &HashMap<&str, usize>,
    name: &str,
    device: &Device,
) -> std::result::Result<Tv, String> {
    let entry = by_name
        .get(name)
        .map(|i| &ckpt.entries[*i])
        .ok_or("not in the archive's weights or constants")?;
    let spec = match &entry.kind {
        EntryKind::Tensor(s) => s,
        EntryKind::Unsupported(k) => return Err(format!("is {k}")),
    };
    let dt = Dt::from_torch(spec.dtype)
        .ok_or_else(|| format!("dtype {} is not supported", spec.dtype))?;
    let raw_dtype = match dt {
        Dt::Bool | Dt::U8 | Dt::I8 => candle_core::DType::U8,
        Dt::I16 => candle_core::DType::I16,
        Dt::I32 => candle_core::DType::I32,
        other => other.storage(),
    };
    let from = |b: &[u8]| -> std::result::Result<Tensor, String> {
        if dt == Dt::I8 {
            let v: Vec<i64> = b.iter().map(|x| i64::from(*x as i8)).collect();
            return Tensor::from_vec(v, spec.shape.as_slice(), &Device::Cpu)
                .map_err(|e| e.to_string());
        }
        Tensor::from_raw_buffer(b, raw_dtype, &spec.shape, &Device::Cpu).map_err(|e| e.to_string())
    };
    // A plain contiguous little-endian view is copied once, straight from the mapped file.
    let storage = &ckpt.storages[spec.storage.id];
    let t = match spec.contiguous_range() {
        Some(range) if spec.is_plain() && !storage.big_endian => {
            let bytes = ckpt
                .storage_bytes(spec.storage.id)
                .map_err(|e| e.to_string())?;
            let slice = bytes
                .get(range)
                .ok_or("the view reaches past its storage")?;
            from(slice)?
        }
        _ => {
            let mut buf = Vec::with_capacity(spec.nbytes());
            ckpt.read_tensor(spec, spec.dtype, &mut |c| {
                buf.extend_from_slice(c);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            from(&buf)?
        }
    };
    let t = if dt.is_int() && t.dtype() != candle_core::DType::I64 {
        t.to_dtype(candle_core::DType::I64)
    } else {
        Ok(t)
    }
    .and_then(|t| t.to_device(device))
    .map_err(|e| e.to_string())?;
    Ok(Tv::new(t, dt))
}
