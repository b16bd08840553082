//! The compile passes, run once at load: rewrites of the step list that keep every result
//! equal up to float rounding and move work from each call to the load.
//!
//! 1. Constant folding: a step whose inputs are all parameters, buffers or literals runs once
//!    here (core ATen's `permute(weight)` before `addmm` becomes a pre-transposed, contiguous
//!    weight).
//! 2. BatchNorm folding: `batch_norm` / `_native_batch_norm_legit_no_training` in eval after a
//!    convolution whose output nothing else reads is folded into the convolution's weight and
//!    bias.
//! 3. Linear: `linear` (training IR) and `addmm`/`mm` with a constant weight (core ATen) run
//!    on a weight transposed once, with the bias and a following `relu`/`gelu`/`silu` in the
//!    fused bias-activation epilogue.
//! 4. `add` + `layer_norm` over the last dim: the fused residual-add LayerNorm kernel (which
//!    also returns the sum when a later step reads it).
//! 5. The RMSNorm pattern (`pow`, `mean`, `add`, `rsqrt`, `mul`, optional cast, `mul` by the
//!    weight) and `aten.rms_norm`: the fused RMSNorm kernel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{DType, Tensor};
use torchless_kernels::activation::Activation;
use torchless_kernels::norm::{add_norm, NormParams};

use super::args::Args;
use super::value::{Dt, Tv, Value};
use super::{CArg, Exec, GraphError, GraphModel, Out, Result, Step};
use crate::Linear;

/// A fused op with the weights it prepared at load.
pub trait FusedOp: Send + Sync + std::fmt::Debug {
    /// Runs on the step's resolved arguments.
    fn run(&self, a: &Args) -> Result<Vec<Value>>;
}

/// A rewrite the compile step applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fusion {
    /// A step computed once at load.
    ConstantFold,
    /// A BatchNorm folded into the convolution before it.
    BatchNormIntoConv,
    /// A linear layer on a weight transposed at load, bias in the epilogue.
    Linear,
    /// A linear layer with its activation fused.
    LinearActivation,
    /// A residual add and LayerNorm in one kernel.
    AddLayerNorm,
    /// RMSNorm (the decomposed pattern or `aten.rms_norm`) in one kernel.
    RmsNorm,
    /// Linears reading one input (q/k/v, gate/up) as one GEMM on concatenated weights.
    SiblingLinears,
    /// A 2-D convolution as one GEMM on a weight packed at load.
    ConvGemm,
    /// The same with the ReLU after it.
    ConvGemmRelu,
}

impl Fusion {
    /// The name `inspect` prints.
    pub fn name(self) -> &'static str {
        match self {
            Fusion::ConstantFold => "constant_fold",
            Fusion::BatchNormIntoConv => "batch_norm_into_conv",
            Fusion::Linear => "linear_pretransposed",
            Fusion::LinearActivation => "linear_bias_activation",
            Fusion::AddLayerNorm => "add_layer_norm",
            Fusion::RmsNorm => "rms_norm",
            Fusion::SiblingLinears => "sibling_linears_concatenated",
            Fusion::ConvGemm => "conv_gemm",
            Fusion::ConvGemmRelu => "conv_gemm_relu",
        }
    }
}

/// Runs every pass in order.
pub(super) fn run_passes(model: &mut GraphModel) -> Result<()> {
    let mut c = Compiler {
        m: model,
        removed: Vec::new(),
        fired: BTreeMap::new(),
        linears: Vec::new(),
    };
    c.removed = vec![false; c.m.steps.len()];
    c.drop_identities();
    c.fold_constants()?;
    c.fold_batch_norm()?;
    c.fuse_conv()?;
    c.fuse_linear()?;
    c.fuse_sibling_linears()?;
    c.fuse_add_layer_norm()?;
    c.fuse_rms_norm()?;
    let fired = std::mem::take(&mut c.fired);
    let removed = std::mem::take(&mut c.removed);
    let mut i = 0;
    model.steps.retain(|_| {
        let keep = !removed[i];
        i += 1;
        keep
    });
    drop_unread_constants(model);
    for (f, n) in fired {
        model.summary.fusions.insert(f.name().to_string(), n);
    }
    Ok(())
}

/// A fused linear: (step, input slot, layer, dtype, activation).
type LinearStep = (usize, usize, Linear, Dt, Option<Activation>);

struct Compiler<'m> {
    m: &'m mut GraphModel,
    removed: Vec<bool>,
    fired: BTreeMap<Fusion, usize>,
    linears: Vec<LinearStep>,
}

fn step_reads(s: &Step) -> Vec<usize> {
    s.args
        .iter()
        .flat_map(|(_, a)| super::arg_slots(a))
        .collect()
}

fn out_slots(s: &Step) -> Vec<usize> {
    s.outs
        .iter()
        .flat_map(|o| match o {
            Out::None => vec![],
            Out::One(x) => vec![*x],
            Out::List(v) => v.clone(),
        })
        .collect()
}

fn drop_unread_constants(m: &mut GraphModel) {
    let mut read = vec![false; m.nslots];
    for s in &m.steps {
        for x in step_reads(s) {
            read[x] = true;
        }
    }
    for o in &m.outputs {
        if let super::OutSrc::Slot(x) = o.src {
            read[x] = true;
        }
    }
    m.consts.retain(|(s, _)| read[*s]);
}

impl Compiler<'_> {
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.m.steps.len()).filter(|i| !self.removed[*i])
    }

    /// Live steps reading each slot; graph outputs count as a reader `usize::MAX`.
    fn readers(&self) -> Vec<Vec<usize>> {
        let mut r = vec![Vec::new(); self.m.nslots];
        for i in self.live() {
            for x in step_reads(&self.m.steps[i]) {
                if r[x].last() != Some(&i) {
                    r[x].push(i);
                }
            }
        }
        for o in &self.m.outputs {
            if let super::OutSrc::Slot(x) = o.src {
                r[x].push(usize::MAX);
            }
        }
        r
    }

    /// The producer step of each slot.
    fn producers(&self) -> HashMap<usize, usize> {
        let mut p = HashMap::new();
        for i in self.live() {
            for x in out_slots(&self.m.steps[i]) {
                p.insert(x, i);
            }
        }
        p
    }

    fn consts(&self) -> HashMap<usize, Value> {
        self.m.consts.iter().cloned().collect()
    }

    fn fire(&mut self, f: Fusion) {
        *self.fired.entry(f).or_default() += 1;
    }

    /// Makes every reader of `from` read `to` instead.
    fn alias(&mut self, from: usize, to: usize) {
        for s in &mut self.m.steps {
            for (_, a) in &mut s.args {
                match a {
                    CArg::Slot(x) if *x == from => *x = to,
                    CArg::Slots(v) => v.iter_mut().filter(|x| **x == from).for_each(|x| *x = to),
                    CArg::OptSlots(v) => v
                        .iter_mut()
                        .flatten()
                        .filter(|x| **x == from)
                        .for_each(|x| *x = to),
                    CArg::SymInts(v) => v
                        .iter_mut()
                        .filter_map(|x| x.as_mut().err())
                        .filter(|x| **x == from)
                        .for_each(|x| *x = to),
                    _ => {}
                }
            }
            if s.inplace == Some(from) {
                s.inplace = Some(to);
            }
        }
        for o in &mut self.m.outputs {
            if let super::OutSrc::Slot(x) = &mut o.src {
                if *x == from {
                    *x = to;
                }
            }
        }
    }

    fn arg<'s>(s: &'s Step, name: &str) -> Option<&'s CArg> {
        s.args.iter().find(|(k, _)| k == name).map(|(_, a)| a)
    }

    /// The constant tensor an argument holds (a parameter slot or a folded literal).
    fn const_tensor(&self, consts: &HashMap<usize, Value>, a: Option<&CArg>) -> Option<Tv> {
        match a? {
            CArg::Slot(s) => match consts.get(s) {
                Some(Value::Tensor(t)) => Some(t.clone()),
                _ => None,
            },
            CArg::Const(Value::Tensor(t)) => Some(t.clone()),
            _ => None,
        }
    }

    fn is_none(a: Option<&CArg>) -> bool {
        matches!(a, None | Some(CArg::Const(Value::None)))
    }

    fn const_f64(a: Option<&CArg>) -> Option<f64> {
        match a? {
            CArg::Const(Value::Float(f)) => Some(*f),
            CArg::Const(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }

    fn slot(a: Option<&CArg>) -> Option<usize> {
        match a? {
            CArg::Slot(s) => Some(*s),
            _ => None,
        }
    }

    /// Removes steps that compute nothing here: metadata assertions (the interpreter's own
    /// dtype checks make them hold), and identities (`clone`, `contiguous`, `alias`,
    /// `detach`, eval `dropout`, casts to the dtype the value already has), whose readers then
    /// read the input. An identity whose input or output an in-place op writes stays.
    fn drop_identities(&mut self) {
        let written: std::collections::HashSet<usize> =
            self.m.steps.iter().filter_map(|s| s.inplace).collect();
        for i in 0..self.m.steps.len() {
            let s = &self.m.steps[i];
            let base = s.op.split('.').nth(1).unwrap_or("");
            if matches!(
                base,
                "_assert_tensor_metadata"
                    | "_assert_async"
                    | "sym_constrain_range"
                    | "sym_constrain_range_for_size"
            ) {
                self.removed[i] = true;
                continue;
            }
            let input = match base {
                "clone" | "contiguous" | "alias" | "detach" | "lift_fresh_copy" => {
                    Self::slot(Self::arg(s, "self"))
                }
                "dropout" | "feature_dropout" | "alpha_dropout" => {
                    let train =
                        matches!(Self::arg(s, "train"), Some(CArg::Const(Value::Bool(true))));
                    if train {
                        None
                    } else {
                        Self::slot(Self::arg(s, "input"))
                    }
                }
                "to" | "_to_copy" => {
                    let x = Self::slot(Self::arg(s, "self"));
                    let to = match Self::arg(s, "dtype") {
                        Some(CArg::Const(Value::Dtype(d))) => Some(*d),
                        None | Some(CArg::Const(Value::None)) => {
                            x.and_then(|x| self.m.slot_dtype[x])
                        }
                        _ => None,
                    };
                    let from = x.and_then(|x| self.m.slot_dtype[x]);
                    x.filter(|_| to.is_some() && to == from)
                }
                _ => None,
            };
            let (Some(x), Some(Out::One(out))) = (input, s.outs.first()) else {
                continue;
            };
            let out = *out;
            if written.contains(&x) || written.contains(&out) || s.outs.len() != 1 {
                continue;
            }
            self.removed[i] = true;
            self.alias(out, x);
            if let Some(d) = self.m.slot_dtype[out] {
                self.m.slot_dtype[x].get_or_insert(d);
            }
        }
    }

    fn fold_constants(&mut self) -> Result<()> {
        let mut consts = self.consts();
        for i in 0..self.m.steps.len() {
            let s = &self.m.steps[i];
            if s.inplace.is_some() || matches!(s.exec, Exec::Fused(_)) {
                continue;
            }
            let all_const = s.args.iter().all(|(_, a)| match a {
                CArg::Const(_) => true,
                CArg::Slot(x) => consts.contains_key(x),
                CArg::Slots(v) => v.iter().all(|x| consts.contains_key(x)),
                CArg::OptSlots(v) => v.iter().flatten().all(|x| consts.contains_key(x)),
                CArg::SymInts(v) => v.iter().all(|x| x.is_ok()),
            });
            let Exec::Op(f) = s.exec else { continue };
            if !all_const || s.outs.iter().all(|o| matches!(o, Out::None)) {
                continue;
            }
            let vals = s
                .args
                .iter()
                .map(|(k, a)| {
                    super::resolve(a, &slots_view(&consts, self.m.nslots))
                        .map(|v| (k.as_str(), v))
                        .map_err(GraphError::msg)
                })
                .collect::<Result<Vec<_>>>()?;
            let args = Args {
                op: &s.op,
                vals,
                device: &self.m.device,
            };
            let Ok(out) = f(&args) else {
                // Left for run time, where the error names the node.
                continue;
            };
            let big = out.iter().any(|v| match v {
                Value::Tensor(t) => t.t.elem_count() > 1 << 24,
                _ => false,
            });
            if big {
                continue;
            }
            let outs = s.outs.clone();
            for (o, v) in outs.iter().zip(out) {
                match (o, v) {
                    (Out::One(x), Value::Tensor(t)) => {
                        let t = Tv::new(t.t.contiguous()?, t.dt);
                        consts.insert(*x, Value::Tensor(t.clone()));
                        self.m.consts.push((*x, Value::Tensor(t)));
                    }
                    (Out::One(x), v) => {
                        consts.insert(*x, v.clone());
                        self.m.consts.push((*x, v));
                    }
                    (Out::List(xs), Value::Tensors(ts)) => {
                        for (x, t) in xs.iter().zip(ts) {
                            consts.insert(*x, Value::Tensor(t.clone()));
                            self.m.consts.push((*x, Value::Tensor(t)));
                        }
                    }
                    _ => {}
                }
            }
            self.removed[i] = true;
            self.fire(Fusion::ConstantFold);
        }
        Ok(())
    }

    fn fold_batch_norm(&mut self) -> Result<()> {
        let consts = self.consts();
        let readers = self.readers();
        let producers = self.producers();
        for j in 0..self.m.steps.len() {
            if self.removed[j] {
                continue;
            }
            let bn = &self.m.steps[j];
            let legit = bn.op == "aten._native_batch_norm_legit_no_training.default";
            if !(legit || bn.op == "aten.batch_norm.default") {
                continue;
            }
            if !legit
                && !matches!(
                    Self::arg(bn, "training"),
                    Some(CArg::Const(Value::Bool(false)))
                )
            {
                continue;
            }
            let Some(x) = Self::slot(Self::arg(bn, "input")) else {
                continue;
            };
            let Some(&i) = producers.get(&x) else {
                continue;
            };
            if readers[x] != [j] {
                continue;
            }
            // Only output 0 may be read.
            let outs = out_slots(bn);
            let Some(&bn_out) = outs.first() else {
                continue;
            };
            if outs.iter().skip(1).any(|o| !readers[*o].is_empty()) {
                continue;
            }
            let conv = &self.m.steps[i];
            let is_conv = matches!(
                conv.op.as_str(),
                "aten.conv2d.default" | "aten.conv1d.default" | "aten.convolution.default"
            );
            if !is_conv
                || matches!(
                    Self::arg(conv, "transposed"),
                    Some(CArg::Const(Value::Bool(true)))
                )
            {
                continue;
            }
            let Some(w) = self.const_tensor(&consts, Self::arg(conv, "weight")) else {
                continue;
            };
            let b = self.const_tensor(&consts, Self::arg(conv, "bias"));
            if b.is_none() && !Self::is_none(Self::arg(conv, "bias")) {
                continue;
            }
            let get = |n| self.const_tensor(&consts, Self::arg(bn, n));
            let (Some(mean), Some(var)) = (get("running_mean"), get("running_var")) else {
                continue;
            };
            let gamma = get("weight");
            let beta = get("bias");
            let eps = Self::const_f64(Self::arg(bn, "eps")).unwrap_or(1e-5);
            let (wf, bias) = fold_bn(
                &w,
                b.as_ref(),
                gamma.as_ref(),
                beta.as_ref(),
                &mean,
                &var,
                eps,
            )?;
            let conv = &mut self.m.steps[i];
            let conv_out = match conv.outs.first() {
                Some(Out::One(o)) => *o,
                _ => continue,
            };
            set_arg(conv, "weight", CArg::Const(Value::Tensor(wf)));
            set_arg(conv, "bias", CArg::Const(Value::Tensor(bias)));
            self.removed[j] = true;
            self.alias(bn_out, conv_out);
            self.fire(Fusion::BatchNormIntoConv);
        }
        Ok(())
    }

    /// `conv2d`/`convolution` with a constant square kernel, equal strides and paddings, no
    /// dilation, one group, in f32 (or on a GPU): [`ConvGemm`], with a ReLU that only it feeds.
    fn fuse_conv(&mut self) -> Result<()> {
        let consts = self.consts();
        let readers = self.readers();
        if !self.m.device.is_cpu() {
            return Ok(());
        }
        for i in 0..self.m.steps.len() {
            if self.removed[i] {
                continue;
            }
            let s = &self.m.steps[i];
            if !matches!(
                s.op.as_str(),
                "aten.conv2d.default" | "aten.convolution.default"
            ) {
                continue;
            }
            if matches!(
                Self::arg(s, "transposed"),
                Some(CArg::Const(Value::Bool(true)))
            ) {
                continue;
            }
            let Some(w) = self.const_tensor(&consts, Self::arg(s, "weight")) else {
                continue;
            };
            if w.rank() != 4 || w.dt != Dt::F32 {
                continue;
            }
            let bias = match self.const_tensor(&consts, Self::arg(s, "bias")) {
                Some(b) => b.t,
                None if Self::is_none(Self::arg(s, "bias")) => {
                    Tensor::zeros(w.dims()[0], w.t.dtype(), w.t.device())?
                }
                None => continue,
            };
            let ints = |name: &str, default: i64| -> Option<Vec<i64>> {
                match Self::arg(s, name) {
                    None => Some(vec![default; 2]),
                    Some(CArg::Const(Value::Ints(v))) if v.len() == 2 => Some(v.clone()),
                    Some(CArg::Const(Value::Ints(v))) if v.len() == 1 => Some(vec![v[0]; 2]),
                    Some(CArg::Const(Value::Int(x))) => Some(vec![*x; 2]),
                    _ => None,
                }
            };
            let (Some(st), Some(pd), Some(dl)) =
                (ints("stride", 1), ints("padding", 0), ints("dilation", 1))
            else {
                continue;
            };
            let groups = match Self::arg(s, "groups") {
                None => 1,
                Some(CArg::Const(Value::Int(g))) => *g,
                _ => continue,
            };
            if st[0] != st[1]
                || pd[0] != pd[1]
                || dl != [1, 1]
                || groups != 1
                || st[0] < 1
                || pd[0] < 0
            {
                continue;
            }
            let (kh, kw) = (w.dims()[2], w.dims()[3]);
            if kh != kw {
                continue;
            }
            let Some(CArg::Slot(x)) = Self::arg(s, "input").cloned() else {
                continue;
            };
            let Some(Out::One(out)) = s.outs.first().cloned() else {
                continue;
            };
            let mut conv =
                super::conv_gemm::ConvGemm::new(&w.t, &bias, st[0] as usize, pd[0] as usize)?;
            let mut final_out = out;
            if let [k] = readers[out].as_slice() {
                let k = *k;
                if k != usize::MAX && !self.removed[k] {
                    let r = &self.m.steps[k];
                    let base = r.op.split('.').nth(1).unwrap_or("");
                    if let (true, Some(Out::One(o))) =
                        (matches!(base, "relu" | "relu_"), r.outs.first())
                    {
                        conv.relu = true;
                        final_out = *o;
                        self.removed[k] = true;
                    }
                }
            }
            let relu = conv.relu;
            let step = &mut self.m.steps[i];
            step.op = "torchless.conv_gemm".into();
            step.exec = Exec::Fused(Arc::new(ConvStep { conv }));
            step.args = vec![("input".into(), CArg::Slot(x))];
            step.outs = vec![Out::One(final_out)];
            step.inplace = None;
            self.fire(if relu {
                Fusion::ConvGemmRelu
            } else {
                Fusion::ConvGemm
            });
        }
        Ok(())
    }

    fn fuse_linear(&mut self) -> Result<()> {
        let consts = self.consts();
        let readers = self.readers();
        for i in 0..self.m.steps.len() {
            if self.removed[i] {
                continue;
            }
            let s = &self.m.steps[i];
            let (x, linear) = match s.op.as_str() {
                "aten.linear.default" => {
                    let Some(w) = self.const_tensor(&consts, Self::arg(s, "weight")) else {
                        continue;
                    };
                    let b = self.const_tensor(&consts, Self::arg(s, "bias"));
                    if w.rank() != 2 || (b.is_none() && !Self::is_none(Self::arg(s, "bias"))) {
                        continue;
                    }
                    let l = Linear::from_parts(&w.t, b.map(|b| b.t))?;
                    (Self::arg(s, "input").cloned(), (l, w.dt))
                }
                "aten.addmm.default" | "aten.mm.default" => {
                    let unit = |n| Self::const_f64(Self::arg(s, n)).is_none_or(|v| v == 1.0);
                    if !unit("beta") || !unit("alpha") {
                        continue;
                    }
                    let Some(w) = self.const_tensor(&consts, Self::arg(s, "mat2")) else {
                        continue;
                    };
                    let b = if s.op == "aten.addmm.default" {
                        match self.const_tensor(&consts, Self::arg(s, "self")) {
                            Some(b) if b.rank() == 1 => Some(b.t),
                            _ => continue,
                        }
                    } else {
                        None
                    };
                    if w.rank() != 2 {
                        continue;
                    }
                    let l = Linear::from_transposed(w.t.contiguous()?, b);
                    let x = if s.op == "aten.mm.default" {
                        "self"
                    } else {
                        "mat1"
                    };
                    (Self::arg(s, x).cloned(), (l, w.dt))
                }
                _ => continue,
            };
            let Some(CArg::Slot(xs)) = x else { continue };
            let Some(Out::One(out)) = s.outs.first().cloned() else {
                continue;
            };
            // A following activation that only this output feeds.
            let mut act = None;
            let mut final_out = out;
            if let [k] = readers[out].as_slice() {
                let k = *k;
                if k != usize::MAX && !self.removed[k] {
                    let a = &self.m.steps[k];
                    let base = a.op.split('.').nth(1).unwrap_or("");
                    let approx = match Self::arg(a, "approximate") {
                        Some(CArg::Const(Value::Str(v))) => v.as_str(),
                        _ => "none",
                    };
                    let found = match base {
                        "relu" | "relu_" => Some(Activation::Relu),
                        "silu" | "silu_" => Some(Activation::Silu),
                        "gelu" | "gelu_" if approx == "tanh" => Some(Activation::GeluTanh),
                        "gelu" | "gelu_" => Some(Activation::GeluErf),
                        _ => None,
                    };
                    if let (Some(f), Some(Out::One(o))) = (found, a.outs.first()) {
                        act = Some(f);
                        final_out = *o;
                        self.removed[k] = true;
                    }
                }
            }
            // Half-precision weights on the CPU stay half precision: the packed GEMM widens them
            // in registers and multiplies in f32, as ATen accumulates.
            let lin = linear.0;
            self.linears.push((i, xs, lin.clone(), linear.1, act));
            let fused = LinearAct {
                linear: lin,
                dtype: linear.1,
                act,
            };
            let step = &mut self.m.steps[i];
            step.op = if act.is_some() {
                "torchless.linear_activation".into()
            } else {
                "torchless.linear".into()
            };
            step.exec = Exec::Fused(Arc::new(fused));
            step.args = vec![("input".into(), CArg::Slot(xs))];
            step.outs = vec![Out::One(final_out)];
            step.inplace = None;
            self.fire(if act.is_some() {
                Fusion::LinearActivation
            } else {
                Fusion::Linear
            });
        }
        Ok(())
    }

    /// Linears with one input, dtype and activation (attention's q, k and v; an MLP's gate
    /// and up) become one GEMM on their weights concatenated at load; each output is a slice.
    fn fuse_sibling_linears(&mut self) -> Result<()> {
        let mut groups: BTreeMap<(usize, Option<u8>), Vec<usize>> = BTreeMap::new();
        for (k, (_, x, _, dt, act)) in self.linears.iter().enumerate() {
            let act_key = act.map(|a| a as u8);
            let _ = dt;
            groups.entry((*x, act_key)).or_default().push(k);
        }
        for members in groups.into_values() {
            if members.len() < 2 {
                continue;
            }
            let infos: Vec<LinearStep> = members.iter().map(|k| self.linears[*k].clone()).collect();
            let dt = infos[0].3;
            let with_bias = infos[0].2.bias.is_some();
            if infos
                .iter()
                .any(|l| l.3 != dt || l.2.bias.is_some() != with_bias)
            {
                continue;
            }
            let ws = infos
                .iter()
                .map(|l| l.2.weight_t())
                .collect::<candle_core::Result<Vec<Tensor>>>()?;
            let weight_t = Tensor::cat(&ws, 1)?.contiguous()?;
            let bias = if with_bias {
                let bs: Vec<&Tensor> = infos.iter().filter_map(|l| l.2.bias.as_ref()).collect();
                Some(Tensor::cat(&bs, 0)?)
            } else {
                None
            };
            let splits = infos
                .iter()
                .map(|l| l.2.out_dim())
                .collect::<candle_core::Result<Vec<_>>>()?;
            let first = infos.iter().map(|l| l.0).min().unwrap_or(infos[0].0);
            let outs: Vec<Out> = infos
                .iter()
                .map(|l| self.m.steps[l.0].outs.first().cloned().unwrap_or(Out::None))
                .collect();
            for l in &infos {
                if l.0 != first {
                    self.removed[l.0] = true;
                }
            }
            let step = &mut self.m.steps[first];
            step.op = "torchless.linears_concatenated".into();
            step.exec = Exec::Fused(Arc::new(LinearSplit {
                inner: LinearAct {
                    linear: Linear::from_transposed(weight_t, bias),
                    dtype: dt,
                    act: infos[0].4,
                },
                splits,
            }));
            step.outs = outs;
            self.fire(Fusion::SiblingLinears);
        }
        Ok(())
    }

    fn fuse_add_layer_norm(&mut self) -> Result<()> {
        let consts = self.consts();
        let readers = self.readers();
        let producers = self.producers();
        for j in 0..self.m.steps.len() {
            if self.removed[j] {
                continue;
            }
            let ln = &self.m.steps[j];
            let native = ln.op == "aten.native_layer_norm.default";
            if !(native || ln.op == "aten.layer_norm.default") {
                continue;
            }
            let Some(CArg::Const(Value::Ints(shape))) = Self::arg(ln, "normalized_shape") else {
                continue;
            };
            if shape.len() != 1 {
                continue;
            }
            let w = self.const_tensor(&consts, Self::arg(ln, "weight"));
            let b = self.const_tensor(&consts, Self::arg(ln, "bias"));
            if (w.is_none() && !Self::is_none(Self::arg(ln, "weight")))
                || (b.is_none() && !Self::is_none(Self::arg(ln, "bias")))
            {
                continue;
            }
            let eps = Self::const_f64(Self::arg(ln, "eps")).unwrap_or(1e-5);
            let outs = out_slots(ln);
            let Some(&ln_out) = outs.first() else {
                continue;
            };
            if native && outs.iter().skip(1).any(|o| !readers[*o].is_empty()) {
                continue;
            }
            let Some(x) = Self::slot(Self::arg(ln, "input")) else {
                continue;
            };
            let params =
                NormParams::layer_norm(w.as_ref().map(|t| &t.t), b.as_ref().map(|t| &t.t))?;
            // The add before it, if any, and whether it has other readers.
            let add = producers.get(&x).copied().filter(|&i| {
                let a = &self.m.steps[i];
                a.op == "aten.add.Tensor"
                    && Self::const_f64(Self::arg(a, "alpha")).is_none_or(|v| v == 1.0)
                    && Self::slot(Self::arg(a, "self")).is_some()
                    && Self::slot(Self::arg(a, "other")).is_some()
                    && !consts.contains_key(&Self::slot(Self::arg(a, "self")).unwrap_or(usize::MAX))
                    && !consts
                        .contains_key(&Self::slot(Self::arg(a, "other")).unwrap_or(usize::MAX))
            });
            match add {
                Some(i) => {
                    let keep_sum = readers[x] != [j];
                    let a = &self.m.steps[i];
                    let args = vec![
                        (
                            "self".to_string(),
                            a.args
                                .iter()
                                .find(|(k, _)| k == "self")
                                .map(|(_, v)| v.clone())
                                .unwrap_or(CArg::Const(Value::None)),
                        ),
                        (
                            "other".to_string(),
                            a.args
                                .iter()
                                .find(|(k, _)| k == "other")
                                .map(|(_, v)| v.clone())
                                .unwrap_or(CArg::Const(Value::None)),
                        ),
                    ];
                    let mut outs = vec![Out::One(ln_out)];
                    if keep_sum {
                        outs.push(Out::One(x));
                    }
                    let step = &mut self.m.steps[i];
                    step.op = "torchless.add_layer_norm".into();
                    step.exec = Exec::Fused(Arc::new(AddNorm {
                        params,
                        eps,
                        sum: keep_sum,
                    }));
                    step.args = args;
                    step.outs = outs;
                    step.inplace = None;
                    self.removed[j] = true;
                }
                None => {
                    let step = &mut self.m.steps[j];
                    step.op = "torchless.layer_norm".into();
                    step.exec = Exec::Fused(Arc::new(AddNorm {
                        params,
                        eps,
                        sum: false,
                    }));
                    step.args = vec![("self".into(), CArg::Slot(x))];
                    step.outs = vec![Out::One(ln_out)];
                }
            }
            self.fire(Fusion::AddLayerNorm);
        }
        Ok(())
    }

    fn fuse_rms_norm(&mut self) -> Result<()> {
        let consts = self.consts();
        let readers = self.readers();
        let producers = self.producers();
        let only = |slot: usize, reader: usize| readers[slot] == [reader];
        for r in 0..self.m.steps.len() {
            if self.removed[r] || self.m.steps[r].op != "aten.rsqrt.default" {
                continue;
            }
            // rsqrt(add(mean(pow(x, 2), [-1], keepdim), eps))
            let rs = &self.m.steps[r];
            let Some(a_in) = Self::slot(Self::arg(rs, "self")) else {
                continue;
            };
            let Some(&ai) = producers.get(&a_in) else {
                continue;
            };
            let add = &self.m.steps[ai];
            if add.op != "aten.add.Tensor" || !only(a_in, r) {
                continue;
            }
            let Some(eps) = Self::const_f64(Self::arg(add, "other")) else {
                continue;
            };
            let Some(m_in) = Self::slot(Self::arg(add, "self")) else {
                continue;
            };
            let Some(&mi) = producers.get(&m_in) else {
                continue;
            };
            let mean = &self.m.steps[mi];
            let last_dim = matches!(Self::arg(mean, "dim"), Some(CArg::Const(Value::Ints(d))) if d.as_slice() == [-1]);
            let keep = matches!(
                Self::arg(mean, "keepdim"),
                Some(CArg::Const(Value::Bool(true)))
            );
            if mean.op != "aten.mean.dim" || !last_dim || !keep || !only(m_in, ai) {
                continue;
            }
            let Some(p_in) = Self::slot(Self::arg(mean, "self")) else {
                continue;
            };
            let Some(&pi) = producers.get(&p_in) else {
                continue;
            };
            let pow = &self.m.steps[pi];
            if pow.op != "aten.pow.Tensor_Scalar"
                || Self::const_f64(Self::arg(pow, "exponent")) != Some(2.0)
                || !only(p_in, mi)
            {
                continue;
            }
            let Some(x) = Self::slot(Self::arg(pow, "self")) else {
                continue;
            };
            let Some(Out::One(r_out)) = rs.outs.first().cloned() else {
                continue;
            };
            // mul(x, rsqrt) — the only reader of the rsqrt.
            let [ui] = readers[r_out].as_slice() else {
                continue;
            };
            let ui = *ui;
            if ui == usize::MAX {
                continue;
            }
            let mul = &self.m.steps[ui];
            let ops: Vec<Option<usize>> = vec![
                Self::slot(Self::arg(mul, "self")),
                Self::slot(Self::arg(mul, "other")),
            ];
            if mul.op != "aten.mul.Tensor" || !ops.contains(&Some(x)) || !ops.contains(&Some(r_out))
            {
                continue;
            }
            let Some(Out::One(mut cur)) = mul.outs.first().cloned() else {
                continue;
            };
            let mut chain = vec![pi, mi, ai, r, ui];
            // An optional cast back to the input dtype.
            if let [ci] = readers[cur].as_slice() {
                let ci = *ci;
                if ci != usize::MAX {
                    let c = &self.m.steps[ci];
                    if matches!(c.op.as_str(), "aten.to.dtype" | "aten._to_copy.default") {
                        if let Some(Out::One(o)) = c.outs.first() {
                            chain.push(ci);
                            cur = *o;
                        }
                    }
                }
            }
            // The weight multiply.
            let [wi] = readers[cur].as_slice() else {
                continue;
            };
            let wi = *wi;
            if wi == usize::MAX {
                continue;
            }
            let wm = &self.m.steps[wi];
            if wm.op != "aten.mul.Tensor" {
                continue;
            }
            let other = if Self::slot(Self::arg(wm, "self")) == Some(cur) {
                Self::arg(wm, "other")
            } else {
                Self::arg(wm, "self")
            };
            let Some(w) = self.const_tensor(&consts, other) else {
                continue;
            };
            let x_dt = self.m.slot_dtype.get(x).copied().flatten();
            if w.rank() != 1 || x_dt != Some(w.dt) {
                continue;
            }
            let Some(Out::One(out)) = wm.outs.first().cloned() else {
                continue;
            };
            let params = NormParams::rms_norm(Some(&w.t))?;
            for k in &chain {
                self.removed[*k] = true;
            }
            let step = &mut self.m.steps[wi];
            step.exec = Exec::Fused(Arc::new(AddNorm {
                params,
                eps,
                sum: false,
            }));
            step.op = "torchless.rms_norm".into();
            step.args = vec![("self".into(), CArg::Slot(x))];
            step.outs = vec![Out::One(out)];
            step.inplace = None;
            self.fire(Fusion::RmsNorm);
        }
        Ok(())
    }
}

fn slots_view(consts: &HashMap<usize, Value>, n: usize) -> Vec<Option<Value>> {
    let mut v = vec![None; n];
    for (k, x) in consts {
        v[*k] = Some(x.clone());
    }
    v
}

fn set_arg(s: &mut Step, name: &str, a: CArg) {
    match s.args.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = a,
        None => s.args.push((name.to_string(), a)),
    }
}

/// `w·γ/√(σ²+ε)` per output channel and `(b − μ)·γ/√(σ²+ε) + β`, computed in f32.
fn fold_bn(
    w: &Tv,
    b: Option<&Tv>,
    gamma: Option<&Tv>,
    beta: Option<&Tv>,
    mean: &Tv,
    var: &Tv,
    eps: f64,
) -> Result<(Tv, Tv)> {
    let f = |t: &Tv| t.t.to_dtype(DType::F32);
    let c = w.dims()[0];
    let scale = (f(var)? + eps)?.sqrt()?.recip()?;
    let scale = match gamma {
        Some(g) => f(g)?.mul(&scale)?,
        None => scale,
    };
    let mut shape = vec![1usize; w.rank()];
    shape[0] = c;
    let wf = f(w)?.broadcast_mul(&scale.reshape(shape)?)?;
    let b0 = match b {
        Some(b) => f(b)?,
        None => Tensor::zeros(c, DType::F32, w.t.device())?,
    };
    let mut bias = b0.sub(&f(mean)?)?.mul(&scale)?;
    if let Some(be) = beta {
        bias = bias.add(&f(be)?)?;
    }
    Ok((
        Tv::new(wf.to_dtype(w.t.dtype())?.contiguous()?, w.dt),
        Tv::new(bias.to_dtype(w.t.dtype())?, w.dt),
    ))
}

/// `act(x·Wᵀ + b)` on a weight transposed at load.
#[derive(Debug)]
struct LinearAct {
    linear: Linear,
    dtype: Dt,
    act: Option<Activation>,
}

impl FusedOp for LinearAct {
    fn run(&self, a: &Args) -> Result<Vec<Value>> {
        let x = a.tensor("input")?;
        if x.dt != self.dtype {
            return Err(a.err(format!(
                "input is {} but the weight is {}",
                x.dt.name(),
                self.dtype.name()
            )));
        }
        let y = match self.act {
            Some(act) => self.linear.forward_act(&x.t, act)?,
            None => self.linear.forward(&x.t)?,
        };
        Ok(vec![Value::Tensor(Tv::new(y, x.dt))])
    }
}

/// LayerNorm / RMSNorm over the last dim of `self + other` (or of `self`), fused.
#[derive(Debug)]
struct AddNorm {
    params: NormParams,
    eps: f64,
    sum: bool,
}

impl FusedOp for AddNorm {
    fn run(&self, a: &Args) -> Result<Vec<Value>> {
        let x = a.tensor("self")?;
        let r = a.opt_tensor("other")?;
        let (x, r) = match r {
            Some(r) if r.dims() == x.dims() && r.dt == x.dt => (x, Some(r)),
            Some(r) => {
                let dt = super::value::promote(x.dt, r.dt);
                let s = x.to(dt)?.t.broadcast_add(&r.to(dt)?.t)?;
                (Tv::new(s, dt), None)
            }
            None => (x, None),
        };
        let out = add_norm(
            &x.t,
            r.as_ref().map(|r| &r.t),
            &self.params,
            self.eps,
            self.sum,
        )?;
        let mut v = vec![Value::Tensor(Tv::new(out.normed, x.dt))];
        if self.sum {
            let s = match out.sum {
                Some(s) => s,
                None => match &r {
                    Some(r) => x.t.add(&r.t)?,
                    None => x.t.clone(),
                },
            };
            v.push(Value::Tensor(Tv::new(s, x.dt)));
        }
        Ok(v)
    }
}

/// Several linears on one input as one GEMM; the result split on the last dim.
#[derive(Debug)]
struct LinearSplit {
    inner: LinearAct,
    splits: Vec<usize>,
}

impl FusedOp for LinearSplit {
    fn run(&self, a: &Args) -> Result<Vec<Value>> {
        let y = match self.inner.run(a)?.pop() {
            Some(Value::Tensor(t)) => t,
            _ => return Err(a.err("internal: the fused linear returned no tensor")),
        };
        let d = y.rank().saturating_sub(1);
        let mut start = 0;
        let mut out = Vec::with_capacity(self.splits.len());
        for &n in &self.splits {
            out.push(Value::Tensor(Tv::new(y.t.narrow(d, start, n)?, y.dt)));
            start += n;
        }
        Ok(out)
    }
}

/// [`super::conv_gemm::ConvGemm`] as a step.
#[derive(Debug)]
struct ConvStep {
    conv: super::conv_gemm::ConvGemm,
}

impl FusedOp for ConvStep {
    fn run(&self, a: &Args) -> Result<Vec<Value>> {
        let x = a.tensor("input")?;
        if x.dt != Dt::F32 || !matches!(x.rank(), 3 | 4) {
            return Err(a.err(format!(
                "the convolution takes a 3-D or 4-D float32 input, got {} {:?}",
                x.dt.name(),
                x.dims()
            )));
        }
        let y = if x.rank() == 3 {
            self.conv.forward(&x.t.unsqueeze(0)?)?.squeeze(0)?
        } else {
            self.conv.forward(&x.t)?
        };
        Ok(vec![Value::Tensor(Tv::new(y, x.dt))])
    }
}
