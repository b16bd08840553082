//! torchvision ResNets (18/34/50/101/152), mirroring `torchvision/models/resnet.py`
//! (`BasicBlock`, `Bottleneck`, `ResNet`; v1.5: a bottleneck's stride sits on its 3×3 conv).
//! State-dict names load unchanged (`conv1.weight`, `bn1.running_mean`,
//! `layer1.0.downsample.1.weight`, `fc.bias`, ...). Load-time transform: every eval-mode
//! `BatchNorm2d` (eps 1e-5) is folded into the convolution before it ([`crate::fold`]), so a
//! block runs convolution → bias (+ residual) → ReLU.

use candle_core::{bail, DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use std::sync::Arc;

use torchless_kernels::activation::Activation;
use torchless_kernels::gemm::conv::{conv2d_cnhw, PackedConv};

use crate::fold::{fold_batch_norm, BatchNormStats};
use crate::Linear;

/// torchvision's BatchNorm2d epsilon.
pub const BN_EPS: f64 = 1e-5;

/// A torchvision ResNet depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNetArch {
    /// `resnet18`: BasicBlock × [2, 2, 2, 2].
    ResNet18,
    /// `resnet34`: BasicBlock × [3, 4, 6, 3].
    ResNet34,
    /// `resnet50`: Bottleneck × [3, 4, 6, 3].
    ResNet50,
    /// `resnet101`: Bottleneck × [3, 4, 23, 3].
    ResNet101,
    /// `resnet152`: Bottleneck × [3, 8, 36, 3].
    ResNet152,
}

impl ResNetArch {
    /// Every depth, shallowest first.
    pub const ALL: [ResNetArch; 5] = [
        ResNetArch::ResNet18,
        ResNetArch::ResNet34,
        ResNetArch::ResNet50,
        ResNetArch::ResNet101,
        ResNetArch::ResNet152,
    ];

    /// The depth whose block layout a state_dict has (`has(name)` says whether a tensor is
    /// in it): Bottleneck blocks when `layer1.0.conv3.weight` exists, and exactly as many blocks
    /// per stage as the depth has. `None` when no depth fits.
    pub fn detect(has: impl Fn(&str) -> bool) -> Option<ResNetArch> {
        let bottleneck = has("layer1.0.conv3.weight");
        ResNetArch::ALL.into_iter().find(|a| {
            a.bottleneck() == bottleneck
                && a.layers().iter().enumerate().all(|(s, &n)| {
                    has(&format!("layer{}.{}.conv1.weight", s + 1, n - 1))
                        && !has(&format!("layer{}.{}.conv1.weight", s + 1, n))
                })
        })
    }

    /// torchvision's builder name (`resnet18`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ResNetArch::ResNet18 => "resnet18",
            ResNetArch::ResNet34 => "resnet34",
            ResNetArch::ResNet50 => "resnet50",
            ResNetArch::ResNet101 => "resnet101",
            ResNetArch::ResNet152 => "resnet152",
        }
    }

    /// Blocks per stage (`layer1` … `layer4`).
    pub fn layers(self) -> [usize; 4] {
        match self {
            ResNetArch::ResNet18 => [2, 2, 2, 2],
            ResNetArch::ResNet34 | ResNetArch::ResNet50 => [3, 4, 6, 3],
            ResNetArch::ResNet101 => [3, 4, 23, 3],
            ResNetArch::ResNet152 => [3, 8, 36, 3],
        }
    }

    /// Whether the blocks are `Bottleneck`s (expansion 4) rather than `BasicBlock`s.
    pub fn bottleneck(self) -> bool {
        !matches!(self, ResNetArch::ResNet18 | ResNetArch::ResNet34)
    }

    /// Output channels of a block relative to its width (1 or 4).
    pub fn expansion(self) -> usize {
        if self.bottleneck() {
            4
        } else {
            1
        }
    }

    /// Input features of `fc` (512 or 2048).
    pub fn features(self) -> usize {
        512 * self.expansion()
    }

    /// Every tensor of torchvision's `state_dict()` for this depth, in its order, with shapes
    /// (`num_batches_tracked` included, as a `[]` shape).
    pub fn state_dict_shapes(self, num_classes: usize) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv_bn = |out: &mut Vec<(String, Vec<usize>)>, conv: &str, bn: &str, s: [usize; 4]| {
            out.push((format!("{conv}.weight"), s.to_vec()));
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{bn}.{p}"), vec![s[0]]));
            }
            out.push((format!("{bn}.num_batches_tracked"), vec![]));
        };
        conv_bn(&mut out, "conv1", "bn1", [64, 3, 7, 7]);
        let mut inplanes = 64;
        let e = self.expansion();
        for (stage, &blocks) in self.layers().iter().enumerate() {
            let planes = 64 << stage;
            for i in 0..blocks {
                let p = format!("layer{}.{i}", stage + 1);
                let cin = if i == 0 { inplanes } else { planes * e };
                let convs: Vec<[usize; 4]> = if self.bottleneck() {
                    vec![
                        [planes, cin, 1, 1],
                        [planes, planes, 3, 3],
                        [planes * e, planes, 1, 1],
                    ]
                } else {
                    vec![[planes, cin, 3, 3], [planes, planes, 3, 3]]
                };
                for (k, s) in convs.into_iter().enumerate() {
                    conv_bn(
                        &mut out,
                        &format!("{p}.conv{}", k + 1),
                        &format!("{p}.bn{}", k + 1),
                        s,
                    );
                }
                if i == 0 && (stage > 0 || inplanes != planes * e) {
                    conv_bn(
                        &mut out,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        [planes * e, cin, 1, 1],
                    );
                }
            }
            inplanes = planes * e;
        }
        out.push(("fc.weight".into(), vec![num_classes, self.features()]));
        out.push(("fc.bias".into(), vec![num_classes]));
        out
    }
}

impl std::str::FromStr for ResNetArch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        ResNetArch::ALL
            .into_iter()
            .find(|a| a.name() == s || a.name().strip_prefix("resnet") == Some(&s))
            .ok_or_else(|| {
                format!("unknown ResNet {s:?} (expected resnet18, resnet34, resnet50, resnet101 or resnet152)")
            })
    }
}

impl std::fmt::Display for ResNetArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A convolution with its BatchNorm folded in: `conv(x, W') + b'`.
///
/// Activations inside the network are laid out `[C, N, H, W]` ("CNHW"), so a convolution is
/// one matrix product `W' [C_out, k·k·C_in] × cols [k·k·C_in, N·H'·W']` whose result already
/// has the next layer's layout: a 1×1 stride-1 convolution needs no copy at all (the input is
/// its own column matrix), other kernels gather their `k·k` shifted (and strided) windows
/// once. One large GEMM per convolution is what candle's CPU `conv2d` (tiles of 512 pixels,
/// kernel repacked on every call, output scattered back to NCHW) does not give.
#[derive(Debug, Clone)]
pub struct ConvBn {
    weight: ConvWeight,
    /// `[C_out, 1]`.
    bias: Tensor,
    /// The bias as f32 values (the packed path's epilogue).
    bias_f32: Vec<f32>,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl ConvBn {
    /// Loads `conv.weight` (`[c_out, c_in, k, k]`, no bias, as torchvision's convs) and the
    /// BatchNorm `bn.*`, and folds them.
    pub fn load(
        conv: VarBuilder,
        bn: VarBuilder,
        (c_in, c_out, k): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let dtype = conv.dtype();
        // Read in f64 so the fold loses nothing before the final cast.
        let conv = conv.set_dtype(DType::F64);
        let bn = bn.set_dtype(DType::F64);
        let w = conv.get((c_out, c_in, k, k), "weight")?;
        let gamma = bn.get(c_out, "weight")?;
        let beta = bn.get(c_out, "bias")?;
        let mean = bn.get(c_out, "running_mean")?;
        let var = bn.get(c_out, "running_var")?;
        let stats = BatchNormStats {
            gamma: &gamma,
            beta: &beta,
            mean: &mean,
            var: &var,
            eps: BN_EPS,
        };
        let (weight, bias) = fold_batch_norm(&w, None, &stats, dtype)?;
        let weight = if dtype == DType::F32 && weight.device().is_cpu() {
            ConvWeight::Packed(Arc::new(PackedConv::new(
                &weight,
                (stride, stride),
                (padding, padding),
            )?))
        } else {
            // Columns come in (kh, kw, c) order (see `columns`), so the kernel is stored so.
            ConvWeight::Dense(
                weight
                    .permute((0, 2, 3, 1))?
                    .contiguous()?
                    .reshape((c_out, k * k * c_in))?,
            )
        };
        Ok(ConvBn {
            weight,
            bias_f32: bias.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            bias: bias.reshape((c_out, 1))?,
            c_out,
            k,
            stride,
            padding,
        })
    }

    /// The column matrix `[k·k·C_in, N·H'·W']` of a CNHW input, rows in `(kh, kw, c)` order
    /// as the stored weight; and `(H', W')`.
    fn columns(&self, x: &Tensor) -> Result<(Tensor, usize, usize)> {
        crate::columns::cnhw_columns(x, self.k, self.stride, self.padding)
    }

    /// `conv(x) + b` on a CNHW input, as `[C_out, N·H'·W']` and `(N, H', W')` (the dense path).
    fn conv(&self, weight: &Tensor, x: &Tensor) -> Result<(Tensor, (usize, usize, usize))> {
        let n = x.dim(1)?;
        let (cols, oh, ow) = self.columns(x)?;
        let y = weight.matmul(&cols)?.broadcast_add(&self.bias)?;
        Ok((y, (n, oh, ow)))
    }

    /// `act(conv(x) + b + residual)`, CNHW in and out.
    fn run(&self, x: &Tensor, residual: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        match &self.weight {
            ConvWeight::Packed(p) if x.device().is_cpu() && x.dtype() == DType::F32 => conv2d_cnhw(
                x,
                p,
                Some(&self.bias_f32),
                residual,
                relu.then_some(Activation::Relu),
            ),
            ConvWeight::Packed(_) => {
                bail!(
                    "resnet: f32 CPU filters for a {:?} {:?} input",
                    x.dtype(),
                    x.device()
                )
            }
            ConvWeight::Dense(w) => {
                let (y, dims) = self.conv(w, x)?;
                let y = self.shaped(y, dims)?;
                let y = match residual {
                    Some(r) => (y + r)?,
                    None => y,
                };
                if relu {
                    y.relu()
                } else {
                    Ok(y)
                }
            }
        }
    }

    fn shaped(&self, y: Tensor, (n, oh, ow): (usize, usize, usize)) -> Result<Tensor> {
        y.reshape((self.c_out, n, oh, ow))
    }

    /// `conv(x) + b` without the activation, CNHW in and out.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None, false)
    }

    /// `relu(conv(x) + b)`, CNHW in and out.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None, true)
    }

    /// `relu(conv(x) + b + residual)`, CNHW in and out.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, Some(residual), true)
    }
}

/// How a [`ConvBn`] holds its filters.
#[derive(Debug, Clone)]
enum ConvWeight {
    /// `[C_out, k·k·C_in]` (`(kh, kw, c)` order), contiguous: one matrix product over the
    /// column matrix (half precision, CUDA).
    Dense(Tensor),
    /// f32 on the CPU: packed once for the implicit-GEMM convolution
    /// (`torchless_kernels::gemm::conv`), no column matrix.
    Packed(Arc<PackedConv>),
}

/// One residual block: `BasicBlock` (two 3×3 convs) or `Bottleneck` (1×1, 3×3, 1×1).
#[derive(Debug, Clone)]
pub struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn load(
        vb: VarBuilder,
        arch: ResNetArch,
        c_in: usize,
        planes: usize,
        stride: usize,
        downsample: bool,
    ) -> Result<Self> {
        let e = arch.expansion();
        let layout: Vec<(usize, usize, usize, usize, usize)> = if arch.bottleneck() {
            vec![
                (c_in, planes, 1, 1, 0),
                (planes, planes, 3, stride, 1),
                (planes, planes * e, 1, 1, 0),
            ]
        } else {
            vec![(c_in, planes, 3, stride, 1), (planes, planes, 3, 1, 1)]
        };
        let convs = layout
            .into_iter()
            .enumerate()
            .map(|(i, (ci, co, k, s, p))| {
                ConvBn::load(
                    vb.pp(format!("conv{}", i + 1)),
                    vb.pp(format!("bn{}", i + 1)),
                    (ci, co, k),
                    s,
                    p,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let downsample = if downsample {
            let d = vb.pp("downsample");
            Some(ConvBn::load(
                d.pp("0"),
                d.pp("1"),
                (c_in, planes * e, 1),
                stride,
                0,
            )?)
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    /// `relu(convs(x) + identity)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        let Some((last, first)) = self.convs.split_last() else {
            bail!("a residual block without convolutions");
        };
        let mut h = x.clone();
        for c in first {
            h = c.forward_relu(&h)?;
        }
        last.forward_add_relu(&h, &identity)
    }
}

/// A torchvision `ResNet` in eval mode, BatchNorms folded.
#[derive(Debug, Clone)]
pub struct ResNet {
    arch: ResNetArch,
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
    num_classes: usize,
}

impl ResNet {
    /// Loads every tensor of `arch`'s state_dict from `vb` (names unchanged); `num_classes` is
    /// `fc.weight`'s first dimension. The first missing or wrongly shaped tensor is the error.
    pub fn load(vb: VarBuilder, arch: ResNetArch, num_classes: usize) -> Result<Self> {
        let stem = ConvBn::load(vb.pp("conv1"), vb.pp("bn1"), (3, 64, 7), 2, 3)?;
        let e = arch.expansion();
        let mut inplanes = 64;
        let mut blocks = Vec::new();
        for (stage, &n) in arch.layers().iter().enumerate() {
            let planes = 64 << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let lvb = vb.pp(format!("layer{}", stage + 1));
            for i in 0..n {
                let (c_in, s) = if i == 0 {
                    (inplanes, stride)
                } else {
                    (planes * e, 1)
                };
                let down = i == 0 && (stride != 1 || inplanes != planes * e);
                blocks.push(Block::load(lvb.pp(i), arch, c_in, planes, s, down)?);
            }
            inplanes = planes * e;
        }
        let fc = Linear::load(vb.pp("fc"), arch.features(), num_classes, true)?;
        Ok(ResNet {
            arch,
            stem,
            blocks,
            fc,
            num_classes,
        })
    }

    /// The depth.
    pub fn arch(&self) -> ResNetArch {
        self.arch
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Logits `[N, num_classes]` for an NCHW batch `[N, 3, H, W]` in the model's dtype (any H, W
    /// of at least 32: the average pool is adaptive).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h < 32 || w < 32 {
            bail!(
                "a ResNet takes [N, 3, H, W] with H, W >= 32, got {:?}",
                x.dims()
            );
        }
        // NCHW -> CNHW once; every layer keeps that layout (see `ConvBn`).
        let x = x.permute((1, 0, 2, 3))?.contiguous()?;
        let x = self.stem.forward_relu(&x)?;
        // MaxPool2d(3, stride 2, padding 1): the input is post-ReLU (>= 0), so zero padding
        // gives the same maxima as PyTorch's implicit -inf padding. Pooling treats C and N
        // alike, so the CNHW layout needs nothing special.
        let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut x = x.max_pool2d_with_stride(3, 2)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        // AdaptiveAvgPool2d((1, 1)) + flatten: [C, N] -> [N, C].
        let x = x.mean(D::Minus1)?.mean(D::Minus1)?.t()?.contiguous()?;
        self.fc.forward(&x)
    }
}

impl crate::family::ImageClassifier for ResNet {
    fn forward(&self, nchw: &Tensor) -> Result<Tensor> {
        ResNet::forward(self, nchw)
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn image_size(&self) -> Option<(usize, usize)> {
        None
    }
}
