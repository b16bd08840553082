//! Values checked against torch 2.15 on CPU (a script evaluated the same ops on the same
//! inputs; its outputs are the constants at the end).

use candle_core::{DType, Device, Tensor};

use super::super::super::args::Args;
use super::super::super::value::{Dt, Tv, Value};

/// `sin(0.7 i + seed)` in f64, rounded to f32: the script's inputs.
fn inp(shape: &[usize], seed: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (i as f64 * 0.7 + seed).sin() as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn t(shape: &[usize], seed: f64) -> Value {
    Value::Tensor(Tv::new(inp(shape, seed), Dt::F32))
}

/// `|inp| + 0.5`.
fn tpos(shape: &[usize], seed: f64) -> Value {
    Value::Tensor(Tv::new(
        (inp(shape, seed).abs().unwrap() + 0.5).unwrap(),
        Dt::F32,
    ))
}

fn half(v: Value, dt: Dt) -> Value {
    match v {
        Value::Tensor(x) => Value::Tensor(x.to(dt).unwrap()),
        other => other,
    }
}

fn ints(v: &[i64]) -> Value {
    Value::Ints(v.to_vec())
}

fn run(op: &str, vals: Vec<(&'static str, Value)>) -> Vec<Value> {
    let f = super::super::lookup(op).unwrap_or_else(|| panic!("{op} unknown"));
    let a = Args {
        op,
        vals,
        device: &Device::Cpu,
    };
    f(&a).unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn run1(op: &str, vals: Vec<(&'static str, Value)>) -> Value {
    run(op, vals).remove(0)
}

fn close(got: &Value, want: (&[usize], &[f32]), rtol: f32, atol: f32) {
    let Value::Tensor(g) = got else {
        panic!("not a tensor: {}", got.kind())
    };
    assert_eq!(g.dims(), want.0, "shape");
    let v: Vec<f32> =
        g.t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
    for (i, (x, y)) in v.iter().zip(want.1).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs() || (x.is_nan() && y.is_nan()),
            "element {i}: got {x}, want {y}"
        );
    }
}

fn f32_close(got: &Value, want: (&[usize], &[f32])) {
    close(got, want, 1e-5, 2e-6)
}

fn exact_i64(got: &Value, want: (&[usize], &[i64])) {
    let Value::Tensor(g) = got else {
        panic!("not a tensor")
    };
    assert_eq!(g.dt, Dt::I64);
    assert_eq!(g.dims(), want.0, "shape");
    let v: Vec<i64> = g.t.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v, want.1);
}

#[test]
fn convolutions() {
    let y = run1(
        "aten.convolution.default",
        vec![
            ("input", t(&[1, 4, 6, 7], 0.)),
            ("weight", t(&[4, 2, 3, 3], 1.)),
            ("bias", t(&[4], 2.)),
            ("stride", ints(&[2, 1])),
            ("padding", ints(&[1, 2])),
            ("dilation", ints(&[2, 2])),
            ("transposed", Value::Bool(false)),
            ("output_padding", ints(&[0, 0])),
            ("groups", Value::Int(2)),
        ],
    );
    f32_close(&y, CONV_GROUPS);
    let y = run1(
        "aten.conv2d.default",
        vec![
            ("input", t(&[2, 3, 5, 5], 0.)),
            ("weight", t(&[3, 1, 3, 3], 1.)),
            ("bias", Value::None),
            ("stride", ints(&[1, 1])),
            ("padding", ints(&[1, 1])),
            ("dilation", ints(&[1, 1])),
            ("groups", Value::Int(3)),
        ],
    );
    f32_close(&y, CONV_DEPTHWISE);
    let y = run1(
        "aten.conv2d.padding",
        vec![
            ("input", t(&[1, 2, 5, 5], 0.)),
            ("weight", t(&[3, 2, 4, 4], 1.)),
            ("padding", Value::Str("same".into())),
        ],
    );
    f32_close(&y, CONV_SAME);
    let y = run1(
        "aten.conv1d.default",
        vec![
            ("input", t(&[1, 2, 8], 0.)),
            ("weight", t(&[4, 2, 3], 1.)),
            ("bias", t(&[4], 2.)),
            ("stride", ints(&[2])),
            ("padding", ints(&[1])),
        ],
    );
    f32_close(&y, CONV1D);
}

#[test]
fn transposed_convolutions() {
    let y = run1(
        "aten.conv_transpose2d.input",
        vec![
            ("input", t(&[1, 4, 3, 3], 0.)),
            ("weight", t(&[4, 3, 3, 3], 1.)),
            ("bias", t(&[6], 2.)),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[1, 1])),
            ("output_padding", ints(&[1, 1])),
            ("groups", Value::Int(2)),
            ("dilation", ints(&[1, 1])),
        ],
    );
    f32_close(&y, CONVT_GROUPS);
    let y = run1(
        "aten.convolution.default",
        vec![
            ("input", t(&[1, 2, 3, 4], 0.)),
            ("weight", t(&[2, 3, 2, 3], 1.)),
            ("bias", Value::None),
            ("stride", ints(&[2, 1])),
            ("padding", ints(&[0, 1])),
            ("dilation", ints(&[1, 1])),
            ("transposed", Value::Bool(true)),
            ("output_padding", ints(&[1, 0])),
            ("groups", Value::Int(1)),
        ],
    );
    f32_close(&y, CONVT_UNEQUAL);
}

#[test]
fn max_pooling_with_indices() {
    let x = t(&[1, 2, 5, 6], 0.);
    let r = run(
        "aten.max_pool2d_with_indices.default",
        vec![
            ("self", x.clone()),
            ("kernel_size", ints(&[3, 3])),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[1, 1])),
            ("dilation", ints(&[1, 1])),
            ("ceil_mode", Value::Bool(true)),
        ],
    );
    f32_close(&r[0], MAXPOOL_CEIL);
    exact_i64(&r[1], MAXPOOL_CEIL_IDX);
    let r = run(
        "aten.max_pool2d_with_indices.default",
        vec![
            ("self", x),
            ("kernel_size", ints(&[2, 2])),
            ("stride", ints(&[1, 2])),
            ("padding", ints(&[0, 0])),
            ("dilation", ints(&[2, 2])),
        ],
    );
    f32_close(&r[0], MAXPOOL_DIL);
    exact_i64(&r[1], MAXPOOL_DIL_IDX);
    let r = run(
        "aten.adaptive_max_pool2d.default",
        vec![
            ("self", t(&[1, 1, 5, 7], 0.)),
            ("output_size", ints(&[3, 2])),
        ],
    );
    f32_close(&r[0], ADAPTIVE_MAX);
    exact_i64(&r[1], ADAPTIVE_MAX_IDX);
}

#[test]
fn average_pooling() {
    let x = t(&[1, 2, 5, 6], 0.);
    let y = run1(
        "aten.avg_pool2d.default",
        vec![
            ("self", x.clone()),
            ("kernel_size", ints(&[3, 3])),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[1, 1])),
            ("ceil_mode", Value::Bool(true)),
            ("count_include_pad", Value::Bool(false)),
        ],
    );
    f32_close(&y, AVGPOOL_NOPAD);
    let y = run1(
        "aten.avg_pool2d.default",
        vec![
            ("self", x),
            ("kernel_size", ints(&[3, 2])),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[1, 1])),
            ("divisor_override", Value::Int(4)),
        ],
    );
    f32_close(&y, AVGPOOL_DIVISOR);
    let y = run1(
        "aten.avg_pool1d.default",
        vec![
            ("self", t(&[2, 7], 0.)),
            ("kernel_size", ints(&[3])),
            ("stride", ints(&[2])),
            ("padding", ints(&[1])),
            ("ceil_mode", Value::Bool(true)),
        ],
    );
    f32_close(&y, AVGPOOL1D);
    let y = run1(
        "aten._adaptive_avg_pool2d.default",
        vec![
            ("self", t(&[1, 2, 5, 7], 0.)),
            ("output_size", ints(&[3, 2])),
        ],
    );
    f32_close(&y, ADAPTIVE_AVG);
}

#[test]
fn interpolation() {
    let x = t(&[1, 1, 3, 4], 0.);
    let y = run1(
        "aten.upsample_bilinear2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", Value::None),
            ("align_corners", Value::Bool(false)),
            ("scale_factors", Value::Floats(vec![2.0, 1.5])),
        ],
    );
    f32_close(&y, BILINEAR_SCALE);
    let y = run1(
        "aten.upsample_bilinear2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", ints(&[5, 7])),
            ("align_corners", Value::Bool(true)),
            ("scale_factors", Value::None),
        ],
    );
    f32_close(&y, BILINEAR_ALIGN);
    let y = run1(
        "aten.upsample_bilinear2d.default",
        vec![
            ("self", x.clone()),
            ("output_size", ints(&[5, 7])),
            ("align_corners", Value::Bool(false)),
        ],
    );
    f32_close(&y, BILINEAR_SIZE);
    let y = run1(
        "aten.upsample_nearest2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", Value::None),
            ("scale_factors", Value::Floats(vec![2.0, 1.5])),
        ],
    );
    f32_close(&y, NEAREST_SCALE);
    let y = run1(
        "aten.upsample_nearest2d.default",
        vec![("self", x), ("output_size", ints(&[5, 7]))],
    );
    f32_close(&y, NEAREST_SIZE);
}

#[test]
fn padding() {
    let x = t(&[1, 1, 3, 4], 0.);
    let y = run1(
        "aten.reflection_pad2d.default",
        vec![("self", x.clone()), ("padding", ints(&[1, 2, 2, 1]))],
    );
    f32_close(&y, REFLECT2D);
    let y = run1(
        "aten.replication_pad1d.default",
        vec![("self", t(&[1, 2, 4], 0.)), ("padding", ints(&[2, 3]))],
    );
    f32_close(&y, REPLICATE1D);
    let y = run1(
        "aten.constant_pad_nd.default",
        vec![
            ("self", x),
            ("pad", ints(&[1, -1, 2, 0])),
            ("value", Value::Float(0.5)),
        ],
    );
    f32_close(&y, CONSTPAD);
    let y = run1(
        "aten.pad.default",
        vec![
            ("self", t(&[1, 3, 4], 0.)),
            ("pad", ints(&[1, 2])),
            ("mode", Value::Str("circular".into())),
        ],
    );
    f32_close(&y, CIRCULAR);
}

#[test]
fn norms() {
    let y = run1(
        "aten.layer_norm.default",
        vec![
            ("input", t(&[2, 3, 4], 0.)),
            ("normalized_shape", ints(&[3, 4])),
            ("weight", t(&[3, 4], 1.)),
            ("bias", t(&[3, 4], 2.)),
        ],
    );
    f32_close(&y, LAYERNORM);
    let r = run(
        "aten.native_layer_norm.default",
        vec![
            ("input", t(&[2, 3, 4], 0.)),
            ("normalized_shape", ints(&[4])),
            ("weight", t(&[4], 1.)),
            ("bias", Value::None),
            ("eps", Value::Float(1e-5)),
        ],
    );
    f32_close(&r[0], NLN_OUT);
    f32_close(&r[1], NLN_MEAN);
    f32_close(&r[2], NLN_RSTD);
    let r = run(
        "aten.native_group_norm.default",
        vec![
            ("input", t(&[2, 4, 3, 3], 0.)),
            ("weight", t(&[4], 1.)),
            ("bias", t(&[4], 2.)),
            ("N", Value::Int(2)),
            ("C", Value::Int(4)),
            ("HxW", Value::Int(9)),
            ("group", Value::Int(2)),
            ("eps", Value::Float(1e-5)),
        ],
    );
    f32_close(&r[0], GN_OUT);
    f32_close(&r[1], GN_MEAN);
    f32_close(&r[2], GN_RSTD);
    let y = run1(
        "aten.group_norm.default",
        vec![
            ("input", t(&[2, 4, 3, 3], 0.)),
            ("num_groups", Value::Int(2)),
            ("weight", t(&[4], 1.)),
            ("bias", t(&[4], 2.)),
        ],
    );
    f32_close(&y, GN_OUT);
    let y = run1(
        "aten.rms_norm.default",
        vec![
            ("input", t(&[2, 5], 0.)),
            ("normalized_shape", ints(&[5])),
            ("weight", t(&[5], 1.)),
            ("eps", Value::None),
        ],
    );
    f32_close(&y, RMSNORM);
    let r = run(
        "aten._native_batch_norm_legit_no_training.default",
        vec![
            ("input", t(&[2, 3, 2, 2], 0.)),
            ("weight", t(&[3], 1.)),
            ("bias", t(&[3], 2.)),
            ("running_mean", t(&[3], 3.)),
            ("running_var", tpos(&[3], 4.)),
            ("momentum", Value::Float(0.1)),
            ("eps", Value::Float(1e-5)),
        ],
    );
    f32_close(&r[0], BATCHNORM);
    let Value::Tensor(m) = &r[1] else { panic!() };
    assert_eq!(m.dims(), &[0]);
    // bfloat16: computed in f32, rounded once (within one bf16 ulp of torch).
    let y = run1(
        "aten.layer_norm.default",
        vec![
            ("input", half(t(&[2, 8], 0.), Dt::BF16)),
            ("normalized_shape", ints(&[8])),
            ("weight", half(t(&[8], 1.), Dt::BF16)),
            ("bias", half(t(&[8], 2.), Dt::BF16)),
        ],
    );
    let Value::Tensor(b) = &y else { panic!() };
    assert_eq!(b.dt, Dt::BF16);
    close(&y, LN_BF16, 8e-3, 1e-3);
}

fn qkv(vdim: usize) -> Vec<(&'static str, Value)> {
    vec![
        ("query", t(&[1, 2, 3, 4], 0.)),
        ("key", t(&[1, 2, 5, 4], 1.)),
        ("value", t(&[1, 2, 5, vdim], 2.)),
    ]
}

#[test]
fn attention() {
    let keep: Vec<u8> = [1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1].to_vec();
    let mask = Tv::new(
        Tensor::from_vec(keep, (3, 5), &Device::Cpu).unwrap(),
        Dt::Bool,
    );
    let mut a = qkv(6);
    a.push(("attn_mask", Value::Tensor(mask.clone())));
    f32_close(
        &run1("aten.scaled_dot_product_attention.default", a),
        SDPA_BOOL,
    );
    let mut a = qkv(6);
    a.push(("attn_mask", t(&[3, 5], 3.)));
    a.push(("scale", Value::Float(0.3)));
    f32_close(
        &run1("aten.scaled_dot_product_attention.default", a),
        SDPA_FLOAT,
    );
    let mut a = qkv(6);
    a.push(("is_causal", Value::Bool(true)));
    f32_close(
        &run1("aten.scaled_dot_product_attention.default", a),
        SDPA_CAUSAL,
    );
    let mut a = qkv(4);
    let add = Tensor::from_vec(
        [1u8, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
            .iter()
            .map(|&k| if k == 1 { 0f32 } else { f32::NEG_INFINITY })
            .collect::<Vec<_>>(),
        (3, 5),
        &Device::Cpu,
    )
    .unwrap();
    a.push(("attn_mask", Value::Tensor(Tv::new(add, Dt::F32))));
    let r = run(
        "aten._scaled_dot_product_flash_attention_for_cpu.default",
        a,
    );
    f32_close(&r[0], FLASH_OUT);
    f32_close(&r[1], FLASH_LSE);
    let a = vec![
        ("query", t(&[1, 4, 3, 4], 0.)),
        ("key", t(&[1, 2, 5, 4], 1.)),
        ("value", t(&[1, 2, 5, 6], 2.)),
        ("enable_gqa", Value::Bool(true)),
    ];
    f32_close(
        &run1("aten.scaled_dot_product_attention.default", a),
        SDPA_GQA,
    );
    let a = qkv(6)
        .into_iter()
        .map(|(n, v)| (n, half(v, Dt::F16)))
        .chain([("is_causal", Value::Bool(true))])
        .collect();
    close(
        &run1("aten.scaled_dot_product_attention.default", a),
        SDPA_F16,
        1e-3,
        1e-3,
    );
}

#[test]
fn matrix_products() {
    let mm = |x: Value, y: Value| run1("aten.matmul.default", vec![("self", x), ("other", y)]);
    f32_close(&mm(t(&[3], 0.), t(&[3], 1.)), MM_DOT);
    f32_close(&mm(t(&[3], 0.), t(&[2, 3, 4], 1.)), MM_VEC_BATCH);
    f32_close(&mm(t(&[2, 1, 3, 4], 0.), t(&[5, 4, 2], 1.)), MM_BCAST);
    f32_close(&mm(t(&[2, 3, 4], 0.), t(&[4], 1.)), MM_BATCH_VEC);
    let y = run1(
        "aten.linear.default",
        vec![
            ("input", t(&[2, 3, 4], 0.)),
            ("weight", t(&[5, 4], 1.)),
            ("bias", t(&[5], 2.)),
        ],
    );
    f32_close(&y, LINEAR);
    let y = run1(
        "aten.addmm.default",
        vec![
            ("self", t(&[5], 2.)),
            ("mat1", t(&[2, 4], 0.)),
            ("mat2", t(&[4, 5], 1.)),
            ("beta", Value::Float(0.5)),
            ("alpha", Value::Int(2)),
        ],
    );
    f32_close(&y, ADDMM);
    let y = run1(
        "aten.baddbmm.default",
        vec![
            ("self", t(&[2, 3, 5], 2.)),
            ("batch1", t(&[2, 3, 4], 0.)),
            ("batch2", t(&[2, 4, 5], 1.)),
            ("beta", Value::Float(0.25)),
            ("alpha", Value::Float(-1.5)),
        ],
    );
    f32_close(&y, BADDBMM);
}

#[test]
fn shuffles_embedding_dropout() {
    let y = run1(
        "aten.pixel_shuffle.default",
        vec![
            ("self", t(&[1, 8, 2, 3], 0.)),
            ("upscale_factor", Value::Int(2)),
        ],
    );
    f32_close(&y, PIXEL_SHUFFLE);
    let y = run1(
        "aten.pixel_unshuffle.default",
        vec![
            ("self", t(&[1, 2, 4, 6], 0.)),
            ("downscale_factor", Value::Int(2)),
        ],
    );
    f32_close(&y, PIXEL_UNSHUFFLE);
    let idx = Tensor::new(&[[4i64, 0], [2, 2]], &Device::Cpu).unwrap();
    let y = run1(
        "aten.embedding.default",
        vec![
            ("weight", t(&[5, 3], 0.)),
            ("indices", Value::Tensor(Tv::new(idx, Dt::I64))),
        ],
    );
    f32_close(&y, EMBEDDING);
    let bad = Tensor::new(&[5i64], &Device::Cpu).unwrap();
    let f = super::super::lookup("aten.embedding.default").unwrap();
    let a = Args {
        op: "aten.embedding.default",
        vals: vec![
            ("weight", t(&[5, 3], 0.)),
            ("indices", Value::Tensor(Tv::new(bad, Dt::I64))),
        ],
        device: &Device::Cpu,
    };
    assert!(f(&a).is_err());
    let r = run(
        "aten.native_dropout.default",
        vec![
            ("input", t(&[2, 2], 0.)),
            ("p", Value::Float(0.1)),
            ("train", Value::Bool(false)),
        ],
    );
    f32_close(&r[0], (&[2, 2], &[0.0, 0.644_217_7, 0.98545, 0.863_209_4]));
    let Value::Tensor(m) = &r[1] else { panic!() };
    assert_eq!(m.dt, Dt::Bool);
    let f = super::super::lookup("aten.dropout.default").unwrap();
    let a = Args {
        op: "aten.dropout.default",
        vals: vec![
            ("input", t(&[2], 0.)),
            ("p", Value::Float(0.5)),
            ("train", Value::Bool(true)),
        ],
        device: &Device::Cpu,
    };
    assert!(f(&a).is_err(), "training-mode dropout is refused");
}

#[test]
fn pooling_edge_cases() {
    // Ties (ReLU zeros): the first maximum in row-major window order wins.
    let x = Value::Tensor(Tv::new(inp(&[1, 1, 4, 5], 0.).relu().unwrap(), Dt::F32));
    let r = run(
        "aten.max_pool2d_with_indices.default",
        vec![
            ("self", x),
            ("kernel_size", ints(&[3, 3])),
            ("stride", ints(&[1, 1])),
            ("padding", ints(&[1, 1])),
        ],
    );
    f32_close(&r[0], MAXPOOL_TIES);
    exact_i64(&r[1], MAXPOOL_TIES_IDX);
    let y = run1(
        "aten.max_pool1d.default",
        vec![
            ("self", t(&[2, 3, 9], 0.)),
            ("kernel_size", ints(&[3])),
            ("stride", ints(&[2])),
            ("padding", ints(&[1])),
            ("dilation", ints(&[2])),
            ("ceil_mode", Value::Bool(true)),
        ],
    );
    f32_close(&y, MAXPOOL1D);
    let y = run1(
        "aten.adaptive_avg_pool1d.default",
        vec![("self", t(&[1, 2, 7], 0.)), ("output_size", ints(&[3]))],
    );
    f32_close(&y, ADAPTIVE_AVG1D);
}

#[test]
fn interpolation_edge_cases() {
    let y = run1(
        "aten.upsample_nearest1d.vec",
        vec![
            ("input", t(&[1, 2, 5], 0.)),
            ("output_size", Value::None),
            ("scale_factors", Value::Floats(vec![1.7])),
        ],
    );
    f32_close(&y, NEAREST1D);
    let x = t(&[1, 1, 3, 4], 0.);
    let y = run1(
        "aten._upsample_nearest_exact2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", ints(&[5, 7])),
            ("scale_factors", Value::None),
        ],
    );
    f32_close(&y, NEAREST_EXACT);
    let y = run1(
        "aten.upsample_nearest2d.default",
        vec![("self", x.clone()), ("output_size", ints(&[6, 8]))],
    );
    f32_close(&y, NEAREST_2X);
    let y = run1(
        "aten.upsample_bilinear2d.vec",
        vec![
            ("input", t(&[1, 2, 5, 7], 0.)),
            ("output_size", Value::None),
            ("align_corners", Value::Bool(false)),
            ("scale_factors", Value::Floats(vec![0.6, 0.6])),
        ],
    );
    f32_close(&y, BILINEAR_DOWN);
    let y = run1(
        "aten.upsample_bilinear2d.default",
        vec![
            ("self", x),
            ("output_size", ints(&[6, 6])),
            ("align_corners", Value::Bool(false)),
            ("scales_h", Value::Float(2.0)),
            ("scales_w", Value::Float(1.5)),
        ],
    );
    f32_close(&y, BILINEAR_SCALES);
}

#[test]
fn more_convolutions_and_pads() {
    let y = run1(
        "aten.conv_transpose1d.default",
        vec![
            ("input", t(&[1, 4, 5], 0.)),
            ("weight", t(&[4, 3, 3], 1.)),
            ("bias", t(&[6], 2.)),
            ("stride", ints(&[3])),
            ("padding", ints(&[2])),
            ("output_padding", ints(&[1])),
            ("groups", Value::Int(2)),
            ("dilation", ints(&[2])),
        ],
    );
    f32_close(&y, CONVT1D);
    let y = run1(
        "aten.conv2d.default",
        vec![
            ("input", t(&[2, 5, 5], 0.)),
            ("weight", t(&[3, 2, 3, 3], 1.)),
            ("bias", t(&[3], 2.)),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[0, 1])),
        ],
    );
    f32_close(&y, CONV_UNBATCHED);
    let y = run1(
        "aten.replication_pad2d.default",
        vec![
            ("self", t(&[2, 3, 4], 0.)),
            ("padding", ints(&[2, 1, 0, 3])),
        ],
    );
    f32_close(&y, REPLICATE2D);
    let y = run1(
        "aten.reflection_pad1d.default",
        vec![("self", t(&[2, 5], 0.)), ("padding", ints(&[3, 4]))],
    );
    f32_close(&y, REFLECT1D);
    let f = super::super::lookup("aten.reflection_pad1d.default").unwrap();
    let a = Args {
        op: "aten.reflection_pad1d.default",
        vals: vec![("self", t(&[2, 5], 0.)), ("padding", ints(&[5, 0]))],
        device: &Device::Cpu,
    };
    assert!(
        f(&a).is_err(),
        "reflection padding as large as the dim is refused"
    );
}

#[test]
fn more_norms_attention_products() {
    let r = run(
        "aten._fused_rms_norm.default",
        vec![
            ("input", half(t(&[2, 6], 0.), Dt::BF16)),
            ("normalized_shape", ints(&[6])),
            ("weight", half(t(&[6], 1.), Dt::BF16)),
            ("eps", Value::None),
        ],
    );
    close(&r[0], FUSED_RMS_OUT, 8e-3, 1e-3);
    let Value::Tensor(rstd) = &r[1] else { panic!() };
    assert_eq!(rstd.dt, Dt::F32);
    close(&r[1], FUSED_RMS_RSTD, 1e-5, 1e-6);
    let r = run(
        "aten.native_batch_norm.default",
        vec![
            ("input", t(&[2, 3, 2, 2], 0.)),
            ("weight", t(&[3], 1.)),
            ("bias", t(&[3], 2.)),
            ("running_mean", Value::None),
            ("running_var", Value::None),
            ("training", Value::Bool(true)),
            ("momentum", Value::Float(0.1)),
            ("eps", Value::Float(1e-5)),
        ],
    );
    f32_close(&r[0], BN_TRAIN_OUT);
    f32_close(&r[1], BN_TRAIN_MEAN);
    f32_close(&r[2], BN_TRAIN_INVSTD);
    let y = run1(
        "aten.scaled_dot_product_attention.default",
        vec![
            ("query", t(&[2, 5, 4], 0.)),
            ("key", t(&[2, 3, 4], 1.)),
            ("value", t(&[2, 3, 4], 2.)),
            ("is_causal", Value::Bool(true)),
        ],
    );
    f32_close(&y, SDPA_3D_CAUSAL);
    let r = run(
        "aten._scaled_dot_product_efficient_attention.default",
        vec![
            ("query", t(&[1, 2, 3, 4], 0.)),
            ("key", t(&[1, 2, 5, 4], 1.)),
            ("value", t(&[1, 2, 5, 6], 2.)),
            ("attn_bias", Value::None),
            ("compute_log_sumexp", Value::Bool(true)),
            ("is_causal", Value::Bool(true)),
        ],
    );
    f32_close(&r[0], SDPA_CAUSAL);
    let Value::Tensor(lse) = &r[1] else { panic!() };
    assert_eq!(lse.dims(), &[1, 2, 32]);
    let y = run1(
        "aten.matmul.default",
        vec![("self", t(&[4], 0.)), ("other", t(&[4, 5], 1.))],
    );
    f32_close(&y, MM_VEC_MAT);
    // Integer products stay integers.
    let i = Tensor::new(&[[1i64, 2], [3, 4]], &Device::Cpu).unwrap();
    let y = run1(
        "aten.mm.default",
        vec![
            ("self", Value::Tensor(Tv::new(i.clone(), Dt::I64))),
            ("mat2", Value::Tensor(Tv::new(i, Dt::I64))),
        ],
    );
    exact_i64(&y, (&[2, 2], &[7, 10, 15, 22]));
}

#[test]
fn non_finite_values_stay_in_their_windows() {
    let mut v = vec![1f32; 16];
    v[0] = f32::INFINITY;
    v[5] = f32::NAN;
    let x = Value::Tensor(Tv::new(
        Tensor::from_vec(v, (1, 1, 4, 4), &Device::Cpu).unwrap(),
        Dt::F32,
    ));
    let k = || vec![("kernel_size", ints(&[2, 2])), ("stride", ints(&[2, 2]))];
    let mut a = k();
    a.push(("self", x.clone()));
    let y = run1("aten.avg_pool2d.default", a);
    let Value::Tensor(y) = y else { panic!() };
    let got: Vec<f32> = y.t.flatten_all().unwrap().to_vec1().unwrap();
    assert!(got[0].is_nan(), "inf + NaN in the first window");
    assert_eq!(&got[1..], &[1.0, 1.0, 1.0]);
    let mut a = k();
    a.push(("self", x));
    let r = run("aten.max_pool2d_with_indices.default", a);
    let Value::Tensor(m) = &r[0] else { panic!() };
    let got: Vec<f32> = m.t.flatten_all().unwrap().to_vec1().unwrap();
    assert!(got[0].is_nan(), "NaN wins the max");
    assert_eq!(&got[1..], &[1.0, 1.0, 1.0]);
    exact_i64(&r[1], (&[1, 1, 2, 2], &[5, 2, 8, 10]));
}

fn einsum(eq: &str, ts: Vec<Value>) -> Value {
    let ts = ts
        .into_iter()
        .map(|v| match v {
            Value::Tensor(t) => t,
            _ => panic!("not a tensor"),
        })
        .collect();
    run1(
        "aten.einsum.default",
        vec![
            ("equation", Value::Str(eq.into())),
            ("tensors", Value::Tensors(ts)),
        ],
    )
}

#[test]
fn einsum_equations() {
    let e = einsum(
        "bhld,bhsd->bhls",
        vec![t(&[1, 2, 3, 4], 0.), t(&[1, 2, 5, 4], 1.)],
    );
    f32_close(&e, EINSUM_ATTN);
    f32_close(
        &einsum("i,j->ij", vec![t(&[3], 0.), t(&[4], 1.)]),
        EINSUM_OUTER,
    );
    f32_close(&einsum("ij->ji", vec![t(&[2, 3], 0.)]), EINSUM_T);
    let e = einsum(
        "...ij,...jk->...ik",
        vec![t(&[2, 1, 3, 4], 0.), t(&[5, 4, 2], 1.)],
    );
    f32_close(&e, EINSUM_ELL);
    let e = einsum("bij,bjk", vec![t(&[2, 3, 4], 0.), t(&[2, 4, 5], 1.)]);
    f32_close(&e, EINSUM_IMPLICIT);
    f32_close(&einsum("i,i->", vec![t(&[4], 0.), t(&[4], 1.)]), EINSUM_DOT);
    let e = einsum(
        "abc,cd,de->abe",
        vec![t(&[2, 3, 4], 0.), t(&[4, 5], 1.), t(&[5, 2], 2.)],
    );
    f32_close(&e, EINSUM_THREE);
    f32_close(&einsum("ij->", vec![t(&[3, 4], 0.)]), EINSUM_SUM);
    let e = einsum("ij,kj->i", vec![t(&[3, 4], 0.), t(&[2, 4], 1.)]);
    f32_close(&e, EINSUM_SUMOUT);
    let f = super::super::lookup("aten.einsum.default").unwrap();
    let Value::Tensor(x) = t(&[3, 3], 0.) else {
        panic!()
    };
    let a = Args {
        op: "aten.einsum.default",
        vals: vec![
            ("equation", Value::Str("ii->i".into())),
            ("tensors", Value::Tensors(vec![x])),
        ],
        device: &Device::Cpu,
    };
    assert!(f(&a).is_err(), "diagonals are refused");
}

#[test]
fn cubic_linear_3d_interpolation() {
    let x = t(&[1, 2, 3, 4], 0.);
    let y = run1(
        "aten.upsample_bicubic2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", Value::None),
            ("align_corners", Value::Bool(false)),
            ("scale_factors", Value::Floats(vec![2.0, 1.5])),
        ],
    );
    f32_close(&y, BICUBIC_SCALE);
    let y = run1(
        "aten.upsample_bicubic2d.vec",
        vec![
            ("input", x),
            ("output_size", ints(&[5, 7])),
            ("align_corners", Value::Bool(true)),
            ("scale_factors", Value::None),
        ],
    );
    f32_close(&y, BICUBIC_ALIGN);
    let y = run1(
        "aten.upsample_bicubic2d.default",
        vec![
            ("self", t(&[1, 1, 6, 7], 0.)),
            ("output_size", ints(&[4, 3])),
            ("align_corners", Value::Bool(false)),
        ],
    );
    f32_close(&y, BICUBIC_DOWN);
    let y = run1(
        "aten.upsample_linear1d.vec",
        vec![
            ("input", t(&[1, 2, 5], 0.)),
            ("output_size", Value::None),
            ("align_corners", Value::Bool(false)),
            ("scale_factors", Value::Floats(vec![1.6])),
        ],
    );
    f32_close(&y, LINEAR1D);
    let y = run1(
        "aten.upsample_trilinear3d.vec",
        vec![
            ("input", t(&[1, 1, 2, 3, 4], 0.)),
            ("output_size", ints(&[3, 5, 6])),
            ("align_corners", Value::Bool(true)),
            ("scale_factors", Value::None),
        ],
    );
    f32_close(&y, TRILINEAR);
    let y = run1(
        "aten.upsample_nearest3d.vec",
        vec![
            ("input", t(&[1, 1, 2, 3, 4], 0.)),
            ("output_size", Value::None),
            ("scale_factors", Value::Floats(vec![2.0, 1.5, 0.75])),
        ],
    );
    f32_close(&y, NEAREST3D);
}

#[test]
fn three_d_pooling_and_instance_norm() {
    let y = run1(
        "aten.instance_norm.default",
        vec![
            ("input", t(&[2, 3, 4, 5], 0.)),
            ("weight", t(&[3], 1.)),
            ("bias", t(&[3], 2.)),
            ("running_mean", Value::None),
            ("running_var", Value::None),
            ("use_input_stats", Value::Bool(true)),
            ("momentum", Value::Float(0.1)),
            ("eps", Value::Float(1e-5)),
            ("cudnn_enabled", Value::Bool(false)),
        ],
    );
    f32_close(&y, INSTANCENORM);
    let x = t(&[1, 2, 3, 5, 6], 0.);
    let y = run1(
        "aten.avg_pool3d.default",
        vec![
            ("self", x.clone()),
            ("kernel_size", ints(&[3, 1, 2])),
            ("stride", ints(&[1, 1, 2])),
            ("padding", ints(&[1, 0, 1])),
            ("ceil_mode", Value::Bool(true)),
            ("count_include_pad", Value::Bool(false)),
        ],
    );
    f32_close(&y, AVGPOOL3D);
    let r = run(
        "aten.max_pool3d_with_indices.default",
        vec![
            ("self", x),
            ("kernel_size", ints(&[2, 3, 2])),
            ("stride", ints(&[1, 2, 2])),
            ("padding", ints(&[1, 1, 0])),
            ("dilation", ints(&[1, 1, 2])),
            ("ceil_mode", Value::Bool(true)),
        ],
    );
    f32_close(&r[0], MAXPOOL3D);
    exact_i64(&r[1], MAXPOOL3D_IDX);
    let y = run1(
        "aten._adaptive_avg_pool3d.default",
        vec![
            ("self", t(&[1, 2, 3, 5, 7], 0.)),
            ("output_size", ints(&[2, 3, 4])),
        ],
    );
    f32_close(&y, ADAPTIVE_AVG3D);
    let r = run(
        "aten.adaptive_max_pool1d.default",
        vec![("self", t(&[2, 9], 0.)), ("output_size", ints(&[4]))],
    );
    f32_close(&r[0], ADAPTIVE_MAX1D);
    exact_i64(&r[1], ADAPTIVE_MAX1D_IDX);
}

#[test]
fn conv3d_and_cuda_flash_attention() {
    let y = run1(
        "aten.conv3d.default",
        vec![
            ("input", t(&[1, 4, 4, 5, 6], 0.)),
            ("weight", t(&[6, 2, 3, 2, 3], 1.)),
            ("bias", t(&[6], 2.)),
            ("stride", ints(&[2, 1, 2])),
            ("padding", ints(&[1, 0, 1])),
            ("dilation", ints(&[1, 2, 2])),
            ("groups", Value::Int(2)),
        ],
    );
    f32_close(&y, CONV3D);
    let y = run1(
        "aten.conv3d.padding",
        vec![
            ("input", t(&[1, 2, 3, 4, 4], 0.)),
            ("weight", t(&[3, 2, 2, 3, 3], 1.)),
            ("padding", Value::Str("same".into())),
        ],
    );
    f32_close(&y, CONV3D_SAME);
    let mut a = qkv(6);
    a.push(("is_causal", Value::Bool(true)));
    let r = run("aten._scaled_dot_product_flash_attention.default", a);
    assert_eq!(r.len(), 9);
    f32_close(&r[0], SDPA_CAUSAL);
    assert!(matches!(r[4], Value::Int(3)) && matches!(r[5], Value::Int(5)));
}

#[test]
fn unequal_dilation_and_bfloat16() {
    let y = run1(
        "aten.conv2d.default",
        vec![
            ("input", t(&[1, 4, 7, 8], 0.)),
            ("weight", t(&[6, 2, 3, 2], 1.)),
            ("bias", t(&[6], 2.)),
            ("stride", ints(&[1, 2])),
            ("padding", ints(&[2, 1])),
            ("dilation", ints(&[2, 3])),
            ("groups", Value::Int(2)),
        ],
    );
    f32_close(&y, CONV_DIL_UNEQUAL);
    // bfloat16: f32 compute, one rounding (within one bf16 ulp of torch).
    let bf = |v: Value| half(v, Dt::BF16);
    let x = bf(t(&[1, 2, 5, 6], 0.));
    let y = run1(
        "aten.conv2d.default",
        vec![
            ("input", x.clone()),
            ("weight", bf(t(&[3, 2, 3, 3], 1.))),
            ("padding", ints(&[1, 1])),
        ],
    );
    close(&y, CONV_BF16, 8e-3, 1e-2);
    let y = run1(
        "aten.upsample_bilinear2d.vec",
        vec![
            ("input", x.clone()),
            ("output_size", Value::None),
            ("align_corners", Value::Bool(false)),
            ("scale_factors", Value::Floats(vec![1.5, 1.5])),
        ],
    );
    close(&y, BILINEAR_BF16, 8e-3, 1e-2);
    let y = run1(
        "aten.avg_pool2d.default",
        vec![
            ("self", x),
            ("kernel_size", ints(&[3, 3])),
            ("stride", ints(&[2, 2])),
            ("padding", ints(&[1, 1])),
        ],
    );
    close(&y, AVGPOOL_BF16, 8e-3, 1e-2);
    let y = run1(
        "aten.linear.default",
        vec![
            ("input", bf(t(&[3, 8], 0.))),
            ("weight", bf(t(&[5, 8], 1.))),
            ("bias", bf(t(&[5], 2.))),
        ],
    );
    let Value::Tensor(l) = &y else { panic!() };
    assert_eq!(l.dt, Dt::BF16);
    close(&y, LINEAR_BF16, 8e-3, 1e-2);
}

#[test]
fn transposed_3d_and_same_1d() {
    let y = run1(
        "aten.conv_transpose3d.input",
        vec![
            ("input", t(&[1, 4, 3, 3, 4], 0.)),
            ("weight", t(&[4, 3, 2, 3, 2], 1.)),
            ("bias", t(&[6], 2.)),
            ("stride", ints(&[2, 2, 1])),
            ("padding", ints(&[1, 1, 0])),
            ("output_padding", ints(&[1, 1, 0])),
            ("groups", Value::Int(2)),
            ("dilation", ints(&[2, 1, 1])),
        ],
    );
    f32_close(&y, CONVT3D);
    let y = run1(
        "aten.conv1d.padding",
        vec![
            ("input", t(&[1, 2, 7], 0.)),
            ("weight", t(&[3, 2, 4], 1.)),
            ("bias", t(&[3], 2.)),
            ("stride", ints(&[1])),
            ("padding", Value::Str("same".into())),
            ("dilation", ints(&[2])),
        ],
    );
    f32_close(&y, CONV1D_SAME);
}

// Generated by a torch 2.15.0+cu132 script (expected values for the tests above).
#[rustfmt::skip]
const CONV_GROUPS: (&[usize], &[f32]) = (&[1, 4, 2, 7], &[2.0768228, 1.4760293, -0.27583283, -1.0606222, -0.91892797, 0.80277514, 1.271773, -1.3054245, -0.4449262, 1.4171519, 2.3722124, 2.6392405, 1.436571, 1.7324483, 1.6690916, 1.052803, -0.701982, -1.5246155, -1.4291953, 0.27159166, 0.70891213, -1.8312421, -0.951293, 0.8788214, 1.8569574, 2.1627405, 1.0154185, 1.3353375, -1.471087, -1.6408323, -0.9220861, 0.4710748, 1.5224968, 0.30404702, 0.050430894, 1.6229972, 2.1078854, 0.81476116, -0.3221178, -1.4276849, -0.06492585, -0.7463761, -2.075448, -2.2727904, -1.5483131, -0.15539712, 0.92575574, -0.28117615, -0.47728026, 1.0946891, 1.5856404, 0.2969874, -0.82636267, -1.94591, -0.6200727, -1.3564725]);
#[rustfmt::skip]
const CONV_DEPTHWISE: (&[usize], &[f32]) = (&[2, 3, 5, 5], &[-0.77012444, -1.0277882, -0.47933322, 0.2945597, 0.38233683, 1.5639896, 2.0999267, 2.1912513, 1.2519958, 0.8771344, -2.2806802, -2.2851043, -1.8211584, -0.50069284, -0.55705833, 2.7075264, 2.1798756, 1.2196206, -0.31424177, 0.16618744, -2.9666157, -2.9013774, -1.1910356, 1.0794688, 1.2194598, 0.9974255, -0.6610417, -1.1175014, -1.0483825, 0.5281672, -1.936928, -0.44244826, 1.1395823, 2.1856492, 0.9802956, 1.089503, -0.39044484, -1.7826823, -2.3364966, -1.1611265, -0.10361692, 1.1737174, 2.1992273, 2.1904068, 1.1943936, -0.7509326, -2.1930861, -3.293074, -2.8442774, -1.5334654, 1.2649813, 0.8381405, 0.102423176, -0.6814654, -0.12366098, -2.469105, -2.3835437, -1.7810256, -0.34086305, -0.4520253, 2.8173616, 2.209211, 1.111723, -0.5086261, 0.016358273, -2.8075693, -1.7541174, -0.301135, 1.2934757, 0.42138767, 2.6401608, 1.9920697, -0.21239649, -2.3169692, -1.9364682, -0.44098002, 1.0082595, 1.1037323, 0.6801028, -0.63213867, 0.8690389, -0.5781974, -1.8683211, -2.2797444, -1.1339526, 0.12107733, 1.3179784, 2.2128568, 2.0669944, 1.1414146, -1.0958062, -1.8902621, -2.276168, -1.591557, -1.0038179, 1.9091023, 3.044442, 3.1674933, 1.800823, 0.68315804, -1.4303844, -0.34096378, 0.45163238, 1.0318187, -0.1294146, 2.8198123, 2.0797498, 0.90468633, -0.6958656, -0.057967633, -2.7295969, -1.574065, -0.091523804, 1.4340624, 0.47492924, 2.2924862, 0.8683373, -0.7332702, -1.9900088, -0.8315338, -1.8009188, -0.62452245, 1.6305897, 3.1188102, 2.2146041, -0.17200276, -1.1749285, -0.99213296, -0.34272173, 0.4864996, 0.3867491, 1.5197542, 2.34603, 2.0689318, 1.1922884, -1.3556215, -2.067698, -2.346472, -1.5216639, -0.9907288, 2.1522124, 2.3528655, 2.048709, 0.7810126, 0.66326046, -2.6995378, -3.3499, -2.5035515, -0.47974366, 0.27856705]);
#[rustfmt::skip]
const CONV_SAME: (&[usize], &[f32]) = (&[1, 3, 5, 5], &[-5.9114637, -10.055346, -7.574727, -1.3556798, 2.265496, 7.1279006, 11.56129, 8.687823, 1.8510884, -2.1769142, -8.874312, -10.742388, -5.4586983, 1.0237657, 3.4335375, 7.9717197, 9.476397, 4.690071, -1.0614891, -3.1595163, -5.9753027, -7.028002, -3.3852038, 0.9395309, 2.48496, 3.931966, 9.557057, 9.80429, 4.527299, -0.06629106, -4.9305115, -11.046429, -11.223857, -5.3853383, -0.22498938, 7.567679, 11.855564, 9.170099, 2.5246994, -1.6543989, -6.7045965, -10.4356785, -7.9289093, -1.9343446, 1.7495371, 4.9629173, 7.731129, 5.780022, 1.2172761, -1.5231763, -1.3043083, -7.483348, -10.417671, -6.952622, -2.1438415, 1.9203571, 8.710632, 11.909707, 8.031848, 2.5898046, -5.0135593, -11.0144205, -11.369864, -5.656982, -0.39745724, 4.3322616, 9.674704, 9.860713, 4.611314, -0.05115736, -3.1324255, -7.159828, -7.2220387, -3.1734228, 0.31030595]);
#[rustfmt::skip]
const CONV1D: (&[usize], &[f32]) = (&[1, 4, 4], &[1.7142521, 1.6444422, 0.9371853, 0.18363243, 0.014678555, 1.0781509, 1.327677, 0.08265072, -0.6558332, -1.6287811, -1.1661898, 0.8081382, -0.013080675, -0.12255663, -0.82566357, -1.5165086]);
#[rustfmt::skip]
const CONVT_GROUPS: (&[usize], &[f32]) = (&[1, 6, 6, 6], &[0.8983522, 0.9136753, 0.08745426, -0.33660597, -0.33691806, -1.029248, 2.6006653, 1.4685918, 1.1000035, -0.55672747, -0.4903503, 1.1005726, -0.17517573, -0.7668281, 0.49661127, 0.2555713, 1.362491, 1.6138825, -1.4224279, -1.9106233, -1.2578588, -0.60244185, -0.07404214, -0.15198547, 2.0152266, 2.5972905, 2.1478264, 2.815263, 1.6979269, 2.1364286, 1.5224988, 2.0306826, 1.5964473, 1.3401351, 1.3472185, 0.49068445, 0.4162216, 0.40984306, -0.41130027, -0.85558105, -0.84437776, -1.5170633, 2.1143384, 0.9815316, 0.63686156, -1.0160952, -0.9391378, 0.6589767, -0.6793277, -1.2648777, 0.0062241554, -0.21625158, 0.88985217, 1.1341022, -1.8724425, -2.3544593, -1.7241049, -1.0657431, -0.5638902, -0.62927365, 1.5559722, 2.153576, 1.6912977, 2.3602104, 1.2321829, 1.6582509, 1.0129229, 1.5046998, 1.083551, 0.81679475, 0.84557164, -0.010959953, -0.2669093, -0.29498768, -1.1108211, -1.5751969, -1.5524813, -2.205332, 1.426531, 0.29331133, -0.027343184, -1.6760583, -1.5885422, 0.016311854, -1.3841703, -1.9634522, -0.6850474, -0.88889587, 0.21607909, 0.45311865, -2.5228102, -2.998512, -2.3907459, -1.7296251, -1.2544615, -1.3072664, 0.8953953, 1.5083702, 1.033408, 1.703608, 0.56520796, 0.9787216, 0.30217806, 0.7774093, 0.36946574, 0.092341036, 0.14280292, -0.71348387, -0.87793505, -1.0163876, -1.7730311, -2.3318133, -2.2190914, -2.7936497, 0.78817654, -0.3825984, -0.590536, -2.2226055, -2.0763588, -0.4181138, -2.006327, -2.5432696, -1.234804, -1.339849, -0.26738203, -0.041763425, -2.9704862, -3.3664358, -2.8523958, -2.1322978, -1.777628, -1.8433406, 0.4409454, 1.1215448, 0.5570408, 1.2218862, 0.026302695, 0.37305546, -0.36533672, 0.00932169, -0.323203, -0.6747763, -0.51391035, -1.330475, -1.0568088, -1.2169975, -1.9668577, -2.5446577, -2.4203742, -2.9741297, 0.60429186, -0.56500053, -0.7489823, -2.374298, -2.2185102, -0.5552342, -2.204063, -2.733239, -1.4196581, -1.5054673, -0.43607765, -0.218638, -3.11315, -3.5023181, -3.0121384, -2.2905147, -1.9629829, -2.016507, 0.2840851, 0.97857875, 0.40212637, 1.0665674, -0.13747042, 0.19673783, -0.57226986, -0.21460563, -0.5328178, -0.89383423, -0.7112849, -1.5264585, -0.76715374, -0.9490332, -1.6918979, -2.2885525, -2.1527426, -2.6855388, 0.8884667, -0.27901256, -0.4389866, -2.0570893, -1.8918043, -0.22396737, -1.9329455, -2.4542055, -1.1358806, -1.2024298, -0.13641983, 0.07277942, -2.7867036, -3.1689796, -2.702799, -1.9798543, -1.6795527, -1.720873, 0.5953747, 1.3035661, 0.71532845, 1.3791775, 0.16702557, 0.48859477, -0.310811, 0.029757857, -0.2740517, -0.6444093, -0.4402282, -1.2537804]);
#[rustfmt::skip]
const CONVT_UNEQUAL: (&[usize], &[f32]) = (&[1, 3, 7, 4], &[1.6595418, 2.023823, 1.2288202, 0.4152734, -0.51599723, -1.400712, -1.2839706, -0.5694892, -1.4602828, -2.072813, -1.7214775, -0.88040376, 0.40034658, 1.2092075, 1.4274945, 0.99276876, 1.0922804, 1.8822786, 2.015209, 1.2437989, -0.23843375, -0.87797254, -1.406064, -1.3013285, 0.0, 0.0, 0.0, 0.0, -1.1385435, -0.6095351, 0.06759472, 0.1597355, 1.6655756, 2.0161548, 1.2157207, 0.4082055, 1.0560561, 0.8518857, 0.28014743, -0.121987164, -1.4666381, -2.0693498, -1.7103573, -0.8695992, -0.8515358, -0.9957963, -0.59551704, 0.07014255, 1.0982227, 1.8834205, 2.007353, 1.2305062, 0.0, 0.0, 0.0, 0.0, -0.54317534, -1.4261608, -1.2950983, -0.57189745, -1.1171358, -0.5761714, 0.09193021, 0.16923487, 0.42479703, 1.2375207, 1.4467869, 1.0000148, 1.0377239, 0.8198348, 0.24954766, -0.14010789, -0.25733122, -0.9058785, -1.4312916, -1.312575, -0.83839744, -0.9687619, -0.562189, 0.09479064, 0.0, 0.0, 0.0, 0.0]);
#[rustfmt::skip]
const MAXPOOL_CEIL: (&[usize], &[f32]) = (&[1, 2, 3, 4], &[0.64421767, 0.98544973, 0.98816824, 0.98816824, 0.8545989, 0.9906074, 0.98816824, 0.98816824, 0.6695698, 0.9906074, 0.9927664, 0.9927664, 0.8366556, 0.99464476, 0.8273279, -0.41292754, 0.81776625, 0.99464476, 0.9962419, 0.9962419, 0.81776625, 0.9975574, 0.8079734, -0.44331673]);
#[rustfmt::skip]
const MAXPOOL_CEIL_IDX: (&[usize], &[i64]) = (&[1, 2, 3, 4], &[1, 2, 11, 11, 12, 20, 11, 11, 19, 20, 29, 29, 0, 8, 9, 11, 18, 8, 17, 17, 18, 26, 27, 29]);
#[rustfmt::skip]
const MAXPOOL_DIL: (&[usize], &[f32]) = (&[1, 2, 3, 2], &[0.98544973, 0.98544973, 0.9906074, 0.9906074, 0.8545989, 0.6819636, 0.8366556, 0.7061695, 0.99464476, 0.99464476, 0.9975574, 0.9975574]);
#[rustfmt::skip]
const MAXPOOL_DIL_IDX: (&[usize], &[i64]) = (&[1, 2, 3, 2], &[2, 2, 20, 20, 12, 28, 0, 16, 8, 8, 26, 26]);
#[rustfmt::skip]
const AVGPOOL_NOPAD: (&[usize], &[f32]) = (&[1, 2, 3, 4], &[-0.30245268, 0.14932856, 0.4182305, 0.3186925, 0.0038102667, -0.002006458, -0.0053609046, -0.004013429, -0.29000005, 0.16264798, 0.41532442, 0.3053475, 0.47127026, 0.25174117, -0.29550618, -0.50214255, -0.0060715727, -0.0031629337, 0.0038662222, 0.0064683952, 0.47278506, 0.2400564, -0.3056421, -0.503613]);
#[rustfmt::skip]
const AVGPOOL_DIVISOR: (&[usize], &[f32]) = (&[1, 2, 3, 4], &[-0.21789394, 0.003987029, 0.4679995, 0.15934625, 0.0041615386, -0.00023071468, -0.009051964, -0.0030100718, -0.213486, 0.019929603, 0.4703129, 0.15267375, 0.22596592, 0.3945766, -0.19218801, -0.25107127, -0.0043950826, -0.007525526, 0.0038477033, 0.0048512965, 0.22962084, 0.3855079, -0.20665663, -0.2518065]);
#[rustfmt::skip]
const AVGPOOL1D: (&[usize], &[f32]) = (&[2, 4], &[0.21473922, 0.8309589, 0.28247142, -0.40745297, -0.5379064, 0.014177938, 0.83325124, 0.3912324]);
#[rustfmt::skip]
const ADAPTIVE_AVG: (&[usize], &[f32]) = (&[1, 2, 3, 2], &[0.19411975, 0.34933633, -0.3253485, 0.123075984, 0.33470812, -0.5493865, -0.14991643, 0.53551286, -0.23415647, -0.08106998, 0.530519, -0.4037401]);
#[rustfmt::skip]
const ADAPTIVE_MAX: (&[usize], &[f32]) = (&[1, 1, 3, 2], &[0.98544973, 0.98816824, 0.8457468, 0.9906074, 0.9927664, 0.28705266]);
#[rustfmt::skip]
const ADAPTIVE_MAX_IDX: (&[usize], &[i64]) = (&[1, 1, 3, 2], &[2, 11, 21, 20, 29, 31]);
#[rustfmt::skip]
const BILINEAR_SCALE: (&[usize], &[f32]) = (&[1, 1, 6, 6], &[0.0, 0.32210883, 0.7010897, 0.9285777, 0.9243295, 0.86320937, 0.08374704, 0.23960723, 0.41642177, 0.500239, 0.46149364, 0.4017939, 0.25124112, 0.07460405, -0.15291409, -0.3564383, -0.46417826, -0.5210371, 0.093424454, -0.08272976, -0.29730916, -0.45100996, -0.48961627, -0.4897974, -0.38970295, -0.23239416, -0.016763462, 0.2165241, 0.38517952, 0.49551302, -0.63126665, -0.30722636, 0.1235094, 0.5502912, 0.8225774, 0.98816824]);
#[rustfmt::skip]
const BILINEAR_ALIGN: (&[usize], &[f32]) = (&[1, 1, 5, 7], &[0.0, 0.32210883, 0.64421767, 0.8148337, 0.98544973, 0.9243295, 0.86320937, 0.16749407, 0.15710565, 0.14671722, 0.1018271, 0.05693698, -0.0013423413, -0.059621632, 0.33498815, -0.007897541, -0.35078323, -0.6111795, -0.8715758, -0.92701423, -0.98245263, -0.14813925, -0.15756196, -0.16698466, -0.13713962, -0.10729459, -0.052218407, 0.0028578043, -0.63126665, -0.3072264, 0.0168139, 0.33690023, 0.6569866, 0.8225774, 0.98816824]);
#[rustfmt::skip]
const BILINEAR_SIZE: (&[usize], &[f32]) = (&[1, 1, 5, 7], &[0.0, 0.23007776, 0.59820217, 0.81483376, 0.97671825, 0.9068666, 0.86320937, 0.13399526, 0.17407455, 0.23820141, 0.24442837, 0.23423266, 0.16697834, 0.12494447, 0.33498815, 0.09006976, -0.30179957, -0.61117953, -0.87949556, -0.94285375, -0.98245263, -0.24476488, -0.2038577, -0.13840632, -0.042331487, 0.056587465, 0.14479221, 0.19992018, -0.63126665, -0.39980927, -0.029477544, 0.3369003, 0.6806424, 0.86988914, 0.98816824]);
#[rustfmt::skip]
const NEAREST_SCALE: (&[usize], &[f32]) = (&[1, 1, 6, 6], &[0.0, 0.0, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.0, 0.0, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.33498815, 0.33498815, -0.35078323, -0.8715758, -0.8715758, -0.98245263, 0.33498815, 0.33498815, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.6569866, 0.98816824, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.6569866, 0.98816824]);
#[rustfmt::skip]
const NEAREST_SIZE: (&[usize], &[f32]) = (&[1, 1, 5, 7], &[0.0, 0.0, 0.64421767, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.0, 0.0, 0.64421767, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.33498815, 0.33498815, -0.35078323, -0.35078323, -0.8715758, -0.8715758, -0.98245263, 0.33498815, 0.33498815, -0.35078323, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.63126665, -0.63126665, 0.0168139, 0.0168139, 0.6569866, 0.6569866, 0.98816824]);
#[rustfmt::skip]
const REFLECT2D: (&[usize], &[f32]) = (&[1, 1, 6, 7], &[0.0168139, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.6569866, 0.0168139, -0.35078323, 0.33498815, -0.35078323, -0.8715758, -0.98245263, -0.8715758, -0.35078323, 0.64421767, 0.0, 0.64421767, 0.98544973, 0.86320937, 0.98544973, 0.64421767, -0.35078323, 0.33498815, -0.35078323, -0.8715758, -0.98245263, -0.8715758, -0.35078323, 0.0168139, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.6569866, 0.0168139, -0.35078323, 0.33498815, -0.35078323, -0.8715758, -0.98245263, -0.8715758, -0.35078323]);
#[rustfmt::skip]
const REPLICATE1D: (&[usize], &[f32]) = (&[1, 2, 9], &[0.0, 0.0, 0.0, 0.64421767, 0.98544973, 0.86320937, 0.86320937, 0.86320937, 0.86320937, 0.33498815, 0.33498815, 0.33498815, -0.35078323, -0.8715758, -0.98245263, -0.98245263, -0.98245263, -0.98245263]);
#[rustfmt::skip]
const CONSTPAD: (&[usize], &[f32]) = (&[1, 1, 5, 4], &[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.64421767, 0.98544973, 0.5, 0.33498815, -0.35078323, -0.8715758, 0.5, -0.63126665, 0.0168139, 0.6569866]);
#[rustfmt::skip]
const CIRCULAR: (&[usize], &[f32]) = (&[1, 3, 7], &[0.86320937, 0.0, 0.64421767, 0.98544973, 0.86320937, 0.0, 0.64421767, -0.98245263, 0.33498815, -0.35078323, -0.8715758, -0.98245263, 0.33498815, -0.35078323, 0.98816824, -0.63126665, 0.0168139, 0.6569866, 0.98816824, -0.63126665, 0.0168139]);
#[rustfmt::skip]
const LAYERNORM: (&[usize], &[f32]) = (&[2, 3, 4], &[0.7405994, 1.1579187, 0.57735753, -0.77439904, -1.1716672, -0.010738524, 1.2141597, 1.1877382, 0.61936754, 0.75247777, 1.1593357, 0.5483539, 1.8974336, 0.8012253, -0.69038475, -0.8768186, -0.044101562, 0.2900403, -0.040632803, 0.24239726, 1.3968496, 1.8896277, 0.76155484, -0.71395206]);
#[rustfmt::skip]
const NLN_OUT: (&[usize], &[f32]) = (&[2, 3, 4], &[-1.3799481, 0.054794323, 0.6438276, 0.026258366, 1.2958306, 0.22203851, -0.52384925, -0.041095123, -1.2050171, -0.3847805, 0.43450382, 0.04893142, 1.113745, 0.50716347, -0.35686356, -0.054332253, -1.0083692, -0.6205698, 0.27545807, 0.058891546, 0.8604985, 0.74760413, -0.17070155, -0.06335989]);
#[rustfmt::skip]
const NLN_MEAN: (&[usize], &[f32]) = (&[2, 3, 1], &[0.6232192, -0.46745586, 0.25767553, -0.018119425, -0.22353047, 0.4393503]);
#[rustfmt::skip]
const NLN_RSTD: (&[usize], &[f32]) = (&[2, 3, 1], &[2.6313756, 1.9190857, 1.6109444, 1.5166053, 1.5858473, 1.855055]);
#[rustfmt::skip]
const GN_OUT: (&[usize], &[f32]) = (&[2, 4, 3, 3], &[0.91035885, 1.6778586, 2.0843914, 1.9387581, 1.3094528, 0.49244723, -0.1280079, -0.26010296, 0.1582885, 0.45223776, 1.3510492, 1.8160329, 1.6284996, 0.8766494, -0.08591103, -0.8064744, -0.9461484, -0.43924236, -0.22261566, 0.3855949, 0.69263077, 0.5540882, 0.035125878, -0.62018, -1.103629, -1.1878474, -0.83322597, -0.8152612, -0.7780799, -0.7597818, -0.7689726, -0.80132985, -0.84163547, -0.870933, -0.8754434, -0.85304534, 0.9902287, 1.7372463, 2.0952678, 1.89591, 1.2329341, 0.41814807, -0.16524167, -0.24285764, 0.22180407, 0.5462994, 1.4199659, 1.8272763, 1.5766665, 0.786002, -0.1728553, -0.8489398, -0.9242784, -0.36343822, -0.15860738, 0.43178734, 0.69920284, 0.5178694, -0.026928935, -0.6789651, -1.1315763, -1.1718923, -0.780952, -0.8113259, -0.7752829, -0.75944346, -0.77125704, -0.8051675, -0.8452263, -0.8725931, -0.8743969, -0.8497894]);
#[rustfmt::skip]
const GN_MEAN: (&[usize], &[f32]) = (&[2, 2], &[-0.00089095207, -0.0008038871, -0.00071591063, -0.00062710134]);
#[rustfmt::skip]
const GN_RSTD: (&[usize], &[f32]) = (&[2, 2], &[1.415815, 1.4158965, 1.4159704, 1.4160364]);
#[rustfmt::skip]
const RMSNORM: (&[usize], &[f32]) = (&[2, 5], &[0.0, 0.95372224, 0.993712, 0.0535836, -0.30598795, -0.44034356, -1.2893885, -0.98998135, -0.03915777, -0.015347327]);
#[rustfmt::skip]
const BATCHNORM: (&[usize], &[f32]) = (&[2, 3, 2, 2], &[0.8033739, 1.2869184, 1.5430444, 1.4512919, 1.1276358, 0.5723606, 0.15067022, 0.060892228, -0.06374893, 0.3242718, 0.7075579, 0.905844, 1.4448289, 1.0428865, 0.5282976, 0.14308132, 0.06354396, 0.35588175, 0.8836178, 1.3985496, 0.90730435, 0.820573, 0.49568886, 0.08544999]);
#[rustfmt::skip]
const SDPA_BOOL: (&[usize], &[f32]) = (&[1, 2, 3, 6], &[-0.053063154, -0.36162472, -0.50010854, -0.40338346, -0.11694086, 0.22450086, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.05057433, 0.119614795, 0.23354721, 0.23763873, 0.12996505, -0.03883324, -0.4789327, -0.26876023, 0.06781445, 0.37249488, 0.5019852, 0.39538398, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.13788623, 0.09384115, 0.0056610927, -0.085181415, -0.13596182, -0.12279723]);
#[rustfmt::skip]
const SDPA_FLOAT: (&[usize], &[f32]) = (&[1, 2, 3, 6], &[0.26035234, 0.23618405, 0.100934744, -0.08178583, -0.2260412, -0.26398584, 0.2547138, 0.2490748, 0.12629203, -0.05588785, -0.21178278, -0.268073, 0.07187582, 0.33354414, 0.43834147, 0.33697987, 0.07713145, -0.2189931, -0.21144484, -0.33997652, -0.30861187, -0.13210231, 0.106537044, 0.29507038, 0.0069096684, -0.16528998, -0.25975114, -0.23204732, -0.09520799, 0.086409114, 0.28064352, 0.041050106, -0.2178498, -0.3742916, -0.35469812, -0.16828462]);
#[rustfmt::skip]
const SDPA_CAUSAL: (&[usize], &[f32]) = (&[1, 2, 3, 6], &[0.9092974, 0.42737988, -0.25554112, -0.8182771, -0.9961646, -0.7055403, 0.18666333, 0.5373784, 0.63535595, 0.43451568, 0.029315948, -0.38967156, -0.17710882, -0.25515774, -0.21320191, -0.07097392, 0.10463421, 0.23103127, -0.84622043, -0.99048555, -0.66890985, -0.032735378, 0.61883503, 0.97935766, 0.56131625, 0.115756944, -0.3842447, -0.7035301, -0.6919342, -0.35491094, -0.19869064, 0.046184957, 0.26933908, 0.3658188, 0.29024822, 0.078169405]);
#[rustfmt::skip]
const FLASH_OUT: (&[usize], &[f32]) = (&[1, 2, 3, 4], &[0.82519335, 0.5947462, 0.08458054, -0.46536466, 0.0, 0.0, 0.0, 0.0, 0.4546965, 0.52859956, 0.35389397, 0.012746511, -0.029519726, -0.51766604, -0.762346, -0.64848274, 0.0, 0.0, 0.0, 0.0, 0.33464965, -0.10380484, -0.49343833, -0.6510001]);
#[rustfmt::skip]
const FLASH_LSE: (&[usize], &[f32]) = (&[1, 2, 3], &[1.639164, 0.0, 1.852392, 1.6208487, 0.0, 2.0001364]);
#[rustfmt::skip]
const SDPA_GQA: (&[usize], &[f32]) = (&[1, 4, 3, 6], &[-0.05341939, -0.007000789, 0.042710394, 0.07233423, 0.06793813, 0.03158968, 0.41002008, 0.37218556, 0.15930632, -0.12849717, -0.35586643, -0.4158661, -0.05057433, 0.119614795, 0.23354721, 0.23763873, 0.12996505, -0.03883324, 0.37555003, 0.24194631, -0.0054485574, -0.2502809, -0.37740222, -0.32702535, 0.06398183, 0.2944264, 0.38639766, 0.29664004, 0.06736798, -0.1935883, 0.23647714, 0.079759225, -0.114470705, -0.25486332, -0.27538967, -0.16639599, -0.2219389, -0.41605797, -0.41449845, -0.21799386, 0.08103668, 0.34195435, 0.31032044, 0.16536959, -0.057357162, -0.2531079, -0.32981807, -0.25140965, -0.3328448, -0.45023215, -0.35586825, -0.094133995, 0.21187297, 0.4182328, 0.34367126, 0.11037557, -0.17483145, -0.37781256, -0.40310246, -0.23880702, -0.30175442, -0.33788243, -0.215099, 0.008848816, 0.2286349, 0.34089044, 0.22852881, -0.046694662, -0.29995692, -0.41214478, -0.33049446, -0.0934075]);
#[rustfmt::skip]
const MM_DOT: (&[usize], &[f32]) = (&[], &[1.304483]);
#[rustfmt::skip]
const MM_VEC_BATCH: (&[usize], &[f32]) = (&[2, 4], &[-0.08716133, 0.20832032, 0.40582573, 0.41246492, 0.41004837, 0.21881214, -0.07533491, -0.33405066]);
#[rustfmt::skip]
const MM_BCAST: (&[usize], &[f32]) = (&[2, 5, 3, 2], &[-0.9304163, -1.2592536, 1.4461745, 1.5369179, -1.7948196, -1.636983, -0.18497634, -0.9445777, 0.6994421, 1.4572144, -1.1330836, -1.8014622, 0.6434935, -0.20591086, -0.36124766, 0.7234137, 0.03725773, -1.1573223, 1.1831197, 0.6251828, -1.2597848, -0.33510447, 1.1908752, 0.0063029528, 1.1916809, 1.1756519, -1.5928446, -1.2432048, 1.8099465, 1.167099, 1.9360639, 1.547886, -1.8535855, -1.2799227, 1.5569155, 0.8640575, 1.4357913, 1.9375415, -1.5725856, -1.8497276, 1.5276592, 1.5481677, 0.29103765, 1.457496, -0.58570194, -1.5892484, 0.8126853, 1.5373547, -0.9843536, 0.32322687, 0.6640848, -0.6154062, -0.2670774, 0.836472, -1.8178997, -0.95612854, 1.6157849, 0.63467234, -1.2269574, -0.2398765]);
#[rustfmt::skip]
const MM_BATCH_VEC: (&[usize], &[f32]) = (&[2, 3], &[1.3403759, -0.695545, -0.029659849, 0.7514372, -1.3863821, 1.8611232]);
#[rustfmt::skip]
const LINEAR: (&[usize], &[f32]) = (&[2, 3, 5], &[2.2496734, -1.3956964, 1.8395693, -2.9433205, 0.9132517, 0.21375245, 1.7026297, -1.9631339, 1.1243372, -2.949321, 0.8796376, -0.15268168, 0.86721265, -2.353983, 0.7750341, 1.6607347, 0.24522397, -0.6637157, 0.13306117, -2.3807344, -0.4770847, 1.3507042, -0.6091125, -1.0753157, -0.15821832, 2.7704208, -1.1304178, 0.8189192, -1.2852404, -1.1906583]);
#[rustfmt::skip]
const ADDMM: (&[usize], &[f32]) = (&[2, 5], &[-0.36630702, -0.23639226, 0.0047014356, 0.24358404, 0.36790514, 1.6997957, 1.0461147, -0.09957051, -1.1984261, -1.7336432]);
#[rustfmt::skip]
const BADDBMM: (&[usize], &[f32]) = (&[2, 3, 5], &[0.8430412, 0.4444066, -0.16323929, -0.6941112, -0.89853173, -1.1102453, -0.64509094, 0.12345992, 0.8339456, 1.1522136, 1.247121, 0.77099204, -0.06774652, -0.8746228, -1.2701504, -0.21732849, 0.77140075, 1.3973281, 1.3660702, 0.6923281, 0.20541972, -0.7261301, -1.3161697, -1.287194, -0.6528309, -0.17060374, 0.5945379, 1.080059, 1.0576115, 0.5377528]);
#[rustfmt::skip]
const PIXEL_SHUFFLE: (&[usize], &[f32]) = (&[1, 2, 4, 6], &[0.0, -0.8715758, 0.64421767, -0.98245263, 0.98544973, -0.63126665, 0.8545989, 0.033623047, 0.31909835, 0.6695698, -0.36647913, 0.9906074, 0.86320937, 0.0168139, 0.33498815, 0.6569866, -0.35078323, 0.98816824, -0.8796958, 0.8457468, -0.9791777, 0.30311835, -0.6181371, -0.3820714, -0.88756704, 0.8366556, -0.975626, 0.28705266, -0.6048328, -0.39755568, 0.067208074, -0.90255463, 0.6941647, -0.96769613, 0.99464476, -0.57771504, 0.050422687, -0.8951874, 0.6819636, -0.9717984, 0.9927664, -0.5913575, 0.8273279, 0.08397446, 0.2709058, 0.7061695, -0.41292754, 0.9962419]);
#[rustfmt::skip]
const PIXEL_UNSHUFFLE: (&[usize], &[f32]) = (&[1, 8, 2, 3], &[0.0, 0.98544973, 0.33498815, 0.8545989, -0.36647913, -0.9791777, 0.64421767, 0.86320937, -0.35078323, 0.31909835, -0.8796958, -0.6181371, -0.8715758, -0.63126665, 0.6569866, 0.033623047, 0.9906074, 0.30311835, -0.98245263, 0.0168139, 0.98816824, 0.6695698, 0.8457468, -0.3820714, -0.88756704, -0.6048328, 0.6819636, 0.067208074, 0.99464476, 0.2709058, -0.975626, 0.050422687, 0.9927664, 0.6941647, 0.8273279, -0.41292754, 0.8366556, -0.39755568, -0.9717984, -0.90255463, -0.57771504, 0.7061695, 0.28705266, -0.8951874, -0.5913575, -0.96769613, 0.08397446, 0.9962419]);
#[rustfmt::skip]
const EMBEDDING: (&[usize], &[f32]) = (&[2, 2, 3], &[0.8545989, 0.31909835, -0.36647913, 0.0, 0.64421767, 0.98544973, -0.8715758, -0.98245263, -0.63126665, -0.8715758, -0.98245263, -0.63126665]);
#[rustfmt::skip]
const LN_BF16: (&[usize], &[f32]) = (&[2, 8], &[0.8203125, 1.21875, 0.60546875, -0.76953125, -1.21875, -0.11767578, 1.09375, 1.1328125, -0.05419922, 0.27148438, 0.296875, -0.76171875, -1.6875, -1.0, 0.57421875, 1.1484375]);
#[rustfmt::skip]
const SDPA_F16: (&[usize], &[f32]) = (&[1, 2, 3, 6], &[0.9091797, 0.42749023, -0.25561523, -0.8183594, -0.99609375, -0.7055664, 0.18664551, 0.53759766, 0.6352539, 0.4345703, 0.029312134, -0.38964844, -0.17712402, -0.25512695, -0.21325684, -0.07098389, 0.10479736, 0.23120117, -0.8461914, -0.99072266, -0.6689453, -0.03274536, 0.61865234, 0.9794922, 0.56152344, 0.115722656, -0.38427734, -0.7036133, -0.69189453, -0.35473633, -0.19873047, 0.046020508, 0.2692871, 0.36572266, 0.2902832, 0.078186035]);
#[rustfmt::skip]
const MAXPOOL_TIES: (&[usize], &[f32]) = (&[1, 1, 4, 5], &[0.64421767, 0.98544973, 0.98544973, 0.98544973, 0.86320937, 0.98816824, 0.98816824, 0.98816824, 0.98544973, 0.86320937, 0.98816824, 0.98816824, 0.98816824, 0.8545989, 0.6695698, 0.98816824, 0.98816824, 0.98816824, 0.8545989, 0.6695698]);
#[rustfmt::skip]
const MAXPOOL_TIES_IDX: (&[usize], &[i64]) = (&[1, 1, 4, 5], &[1, 2, 2, 2, 3, 11, 11, 11, 2, 3, 11, 11, 11, 12, 19, 11, 11, 11, 12, 19]);
#[rustfmt::skip]
const MAXPOOL1D: (&[usize], &[f32]) = (&[2, 3, 4], &[0.86320937, 0.86320937, 0.86320937, -0.35078323, 0.8545989, 0.8545989, 0.8545989, -0.36647913, 0.8457468, 0.8457468, 0.8457468, -0.3820714, 0.8366556, 0.8366556, 0.8366556, -0.39755568, 0.8273279, 0.8273279, 0.8273279, -0.41292754, 0.81776625, 0.81776625, 0.81776625, -0.42818266]);
#[rustfmt::skip]
const ADAPTIVE_AVG1D: (&[usize], &[f32]) = (&[1, 2, 3], &[0.5432225, 0.7278824, -0.29579028, -0.5323018, 0.5539896, 0.7206218]);
#[rustfmt::skip]
const NEAREST1D: (&[usize], &[f32]) = (&[1, 2, 8], &[0.0, 0.0, 0.64421767, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.33498815, -0.35078323, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.98245263, -0.63126665, 0.0168139]);
#[rustfmt::skip]
const NEAREST_EXACT: (&[usize], &[f32]) = (&[1, 1, 5, 7], &[0.0, 0.0, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.86320937, 0.0, 0.0, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.86320937, 0.33498815, 0.33498815, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.98245263, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.6569866, 0.98816824, 0.98816824, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.6569866, 0.98816824, 0.98816824]);
#[rustfmt::skip]
const NEAREST_2X: (&[usize], &[f32]) = (&[1, 1, 6, 8], &[0.0, 0.0, 0.64421767, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.86320937, 0.0, 0.0, 0.64421767, 0.64421767, 0.98544973, 0.98544973, 0.86320937, 0.86320937, 0.33498815, 0.33498815, -0.35078323, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.98245263, 0.33498815, 0.33498815, -0.35078323, -0.35078323, -0.8715758, -0.8715758, -0.98245263, -0.98245263, -0.63126665, -0.63126665, 0.0168139, 0.0168139, 0.6569866, 0.6569866, 0.98816824, 0.98816824, -0.63126665, -0.63126665, 0.0168139, 0.0168139, 0.6569866, 0.6569866, 0.98816824, 0.98816824]);
#[rustfmt::skip]
const BILINEAR_DOWN: (&[usize], &[f32]) = (&[1, 2, 3, 4], &[-0.14530404, 0.66257113, 0.6332994, -0.12422078, -0.53755134, -0.9791777, -0.18363045, 0.7765822, 0.7453332, 0.43041307, -0.4283263, -0.742621, -0.5559799, 0.2702048, 0.7549905, 0.34089106, 0.027060688, -0.90966666, -0.6970463, 0.3064694, 0.5257742, 0.7451894, 0.02307105, -0.6829805]);
#[rustfmt::skip]
const BILINEAR_SCALES: (&[usize], &[f32]) = (&[1, 1, 6, 6], &[0.0, 0.32210883, 0.7010897, 0.9285777, 0.9243295, 0.86320937, 0.08374704, 0.23960723, 0.41642177, 0.500239, 0.46149364, 0.4017939, 0.25124112, 0.07460405, -0.15291409, -0.3564383, -0.46417826, -0.5210371, 0.093424454, -0.08272976, -0.29730916, -0.45100996, -0.48961627, -0.4897974, -0.38970295, -0.23239416, -0.016763462, 0.2165241, 0.38517952, 0.49551302, -0.63126665, -0.30722636, 0.1235094, 0.5502912, 0.8225774, 0.98816824]);
#[rustfmt::skip]
const CONVT1D: (&[usize], &[f32]) = (&[1, 6, 14], &[0.56224716, 0.7101679, 0.6767389, 0.6858447, 0.903011, 0.7666148, 0.91453564, 1.0988108, 0.92359656, 1.1407629, 1.2054794, 1.0738533, 1.2581284, 0.9092974, 0.6466442, 0.4325732, 0.77147585, 0.5780066, 0.44401485, 0.6525979, 0.43852693, 0.4476328, 0.42779648, 0.29380465, 0.44172546, 0.20279902, 0.21190485, 0.42737988, -0.1298803, -0.061655313, -0.37041366, -0.1841751, -0.266051, -0.34025946, -0.2720345, -0.46550375, -0.27026093, -0.35213676, -0.5662077, -0.1933394, -0.38680857, -0.25554112, -1.0355197, -0.81885844, -0.9517847, -0.8065999, -0.62036145, -0.79983336, -0.58317214, -0.5149472, -0.6565564, -0.47031787, -0.55219376, -0.58933926, -0.52111423, -0.8182771, -0.8427434, -0.9796286, -0.77449673, -0.9893136, -0.983888, -1.0022207, -1.1391059, -0.99392116, -1.2270963, -1.2216707, -1.0050095, -1.3433613, -1.1981765, -0.9961646, -0.64320594, -0.7216552, -0.7958491, -0.7241349, -0.9158516, -0.71786934, -0.7963186, -1.0111355, -0.6340911, -0.82580775, -0.9626931, -0.5839164, -0.7987333, -0.7055403]);
#[rustfmt::skip]
const CONV_UNBATCHED: (&[usize], &[f32]) = (&[3, 2, 3], &[0.5363595, 4.240131, 2.7667272, 3.5132067, 4.328146, 2.2698789, 0.085981674, 3.8876612, 2.4172823, 3.1125793, 3.9956713, 1.8244616, -0.56501347, 3.330275, 1.8645843, 2.507911, 3.4581587, 1.1764612]);
#[rustfmt::skip]
const FUSED_RMS_OUT: (&[usize], &[f32]) = (&[2, 6], &[0.0, 1.015625, 1.0625, 0.057128906, -0.328125, 0.546875, -0.953125, -1.2734375, -0.55859375, 0.00091171265, -0.5234375, -1.2578125]);
#[rustfmt::skip]
const FUSED_RMS_RSTD: (&[usize], &[f32]) = (&[2, 1], &[1.5924186, 1.3026439]);
#[rustfmt::skip]
const BN_TRAIN_OUT: (&[usize], &[f32]) = (&[2, 3, 2, 2], &[0.5028924, 1.3682481, 1.8266137, 1.6624123, 1.56891, 0.41850567, -0.45514113, -0.64114076, -1.3802924, -0.63631946, 0.098575495, 0.47875997, 1.6508461, 0.93152636, 0.010613374, -0.67877316, -0.635647, -0.029989365, 1.06336, 2.1301818, 0.48156002, 0.31526536, -0.30765238, -1.0942253]);
#[rustfmt::skip]
const BN_TRAIN_MEAN: (&[usize], &[f32]) = (&[3], &[0.3025499, -0.3454932, 0.3485129]);
#[rustfmt::skip]
const BN_TRAIN_INVSTD: (&[usize], &[f32]) = (&[3], &[1.596331, 1.6916333, 1.6995206]);
#[rustfmt::skip]
const SDPA_3D_CAUSAL: (&[usize], &[f32]) = (&[2, 5, 4], &[0.9092974, 0.42737988, -0.25554112, -0.8182771, -0.47821787, -0.39758757, -0.1299656, 0.19878122, 0.52985257, 0.4229784, 0.117170826, -0.24374402, 0.37802055, 0.22415182, -0.035139013, -0.27790344, -0.10767714, -0.05122788, 0.0293146, 0.09606999, -0.82782644, -0.9945526, -0.6935251, -0.066321895, -0.38890174, -0.3866423, -0.20253892, 0.07682167, 0.14054468, 0.1818116, 0.13756968, 0.028626576, -0.5131942, -0.75522786, -0.64206594, -0.22693048, 0.31920296, 0.507674, 0.45737794, 0.1919699]);
#[rustfmt::skip]
const MM_VEC_MAT: (&[usize], &[f32]) = (&[5], &[-0.41047788, -0.22504109, 0.066236004, 0.3263613, 0.4329937]);
#[rustfmt::skip]
const REPLICATE2D: (&[usize], &[f32]) = (&[2, 6, 7], &[0.0, 0.0, 0.0, 0.64421767, 0.98544973, 0.86320937, 0.86320937, 0.33498815, 0.33498815, 0.33498815, -0.35078323, -0.8715758, -0.98245263, -0.98245263, -0.63126665, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.98816824, -0.63126665, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.98816824, -0.63126665, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.98816824, -0.63126665, -0.63126665, -0.63126665, 0.0168139, 0.6569866, 0.98816824, 0.98816824, 0.8545989, 0.8545989, 0.8545989, 0.31909835, -0.36647913, -0.8796958, -0.8796958, -0.9791777, -0.9791777, -0.9791777, -0.6181371, 0.033623047, 0.6695698, 0.6695698, 0.9906074, 0.9906074, 0.9906074, 0.8457468, 0.30311835, -0.3820714, -0.3820714, 0.9906074, 0.9906074, 0.9906074, 0.8457468, 0.30311835, -0.3820714, -0.3820714, 0.9906074, 0.9906074, 0.9906074, 0.8457468, 0.30311835, -0.3820714, -0.3820714, 0.9906074, 0.9906074, 0.9906074, 0.8457468, 0.30311835, -0.3820714, -0.3820714]);
#[rustfmt::skip]
const REFLECT1D: (&[usize], &[f32]) = (&[2, 12], &[0.86320937, 0.98544973, 0.64421767, 0.0, 0.64421767, 0.98544973, 0.86320937, 0.33498815, 0.86320937, 0.98544973, 0.64421767, 0.0, -0.63126665, -0.98245263, -0.8715758, -0.35078323, -0.8715758, -0.98245263, -0.63126665, 0.0168139, -0.63126665, -0.98245263, -0.8715758, -0.35078323]);
#[rustfmt::skip]
const EINSUM_ATTN: (&[usize], &[f32]) = (&[1, 2, 3, 5], &[1.3403759, -1.8230762, 2.0951104, -2.1250434, 1.9094163, -0.695545, 1.2752498, -1.7075927, 1.9426143, -1.9531564, -0.029659849, -0.58006155, 1.1227537, -1.5357057, 1.7711987, 1.657807, -1.7394755, 1.6201386, -1.313586, 0.8552417, -1.3220251, 1.6533365, -1.7935964, 1.7265965, -1.4600793, 0.83347607, -1.3761457, 1.7597945, -1.9400896, 1.896197]);
#[rustfmt::skip]
const EINSUM_OUTER: (&[usize], &[f32]) = (&[3, 4], &[0.0, 0.0, 0.0, 0.0, 0.5420905, 0.638848, 0.43514532, 0.026786998, 0.8292273, 0.97723585, 0.66563505, 0.040975653]);
#[rustfmt::skip]
const EINSUM_T: (&[usize], &[f32]) = (&[3, 2], &[0.0, 0.86320937, 0.64421767, 0.33498815, 0.98544973, -0.35078323]);
#[rustfmt::skip]
const EINSUM_ELL: (&[usize], &[f32]) = (&[2, 5, 3, 2], &[-0.9304163, -1.2592536, 1.4461745, 1.5369179, -1.7948196, -1.636983, -0.18497634, -0.9445777, 0.6994421, 1.4572144, -1.1330836, -1.8014622, 0.6434935, -0.20591086, -0.36124766, 0.7234137, 0.03725773, -1.1573223, 1.1831197, 0.6251828, -1.2597848, -0.33510447, 1.1908752, 0.0063029528, 1.1916809, 1.1756519, -1.5928446, -1.2432048, 1.8099465, 1.167099, 1.9360639, 1.547886, -1.8535855, -1.2799227, 1.5569155, 0.8640575, 1.4357913, 1.9375415, -1.5725856, -1.8497276, 1.5276592, 1.5481677, 0.29103765, 1.457496, -0.58570194, -1.5892484, 0.8126853, 1.5373547, -0.9843536, 0.32322687, 0.6640848, -0.6154062, -0.2670774, 0.836472, -1.8178997, -0.95612854, 1.6157849, 0.63467234, -1.2269574, -0.2398765]);
#[rustfmt::skip]
const EINSUM_IMPLICIT: (&[usize], &[f32]) = (&[3, 5], &[-0.2766459, -0.64062935, -0.70331484, -0.43522027, 0.0375651, 0.4376432, 0.76077557, 0.72610325, 0.34993324, -0.19081584, -0.5480684, -0.79301, -0.6649865, -0.22420946, 0.32201678]);
#[rustfmt::skip]
const EINSUM_DOT: (&[usize], &[f32]) = (&[], &[1.3403759]);
#[rustfmt::skip]
const EINSUM_THREE: (&[usize], &[f32]) = (&[2, 3, 2], &[0.010264784, 0.5413989, -0.11947191, -0.87007165, 0.21487346, 1.098203, -0.2854452, -1.199431, 0.3230321, 1.1620584, -0.32329112, -0.9904038]);
#[rustfmt::skip]
const EINSUM_SUM: (&[usize], &[f32]) = (&[], &[1.6537554]);
#[rustfmt::skip]
const EINSUM_SUMOUT: (&[usize], &[f32]) = (&[3], &[-0.48270035, 0.5797049, -0.6097214]);
#[rustfmt::skip]
const BICUBIC_SCALE: (&[usize], &[f32]) = (&[1, 2, 6, 6], &[-0.10342889, 0.31640026, 0.8814215, 1.1436213, 1.1601022, 1.047154, 0.084171325, 0.24801058, 0.44899195, 0.5127686, 0.45322984, 0.36403528, 0.40658596, 0.14043334, -0.27121502, -0.5429932, -0.7340904, -0.78602916, 0.19687435, -0.07783102, -0.4677898, -0.67934495, -0.75856984, -0.7314704, -0.42653817, -0.28352734, -0.029725406, 0.18071206, 0.39361516, 0.49690202, -0.8016453, -0.4102917, 0.2269432, 0.68965036, 1.0786002, 1.2288027, 1.1026977, 0.81047225, 0.2556334, -0.24590875, -0.8033822, -1.0981658, 0.39719203, 0.2445184, -0.017315347, -0.22396727, -0.4204429, -0.5096362, -0.78980345, -0.71033293, -0.48265475, -0.19461325, 0.21652251, 0.47417817, -0.7559034, -0.6047712, -0.2887287, 0.0281106, 0.41474926, 0.63444847, 0.47974855, 0.5015922, 0.4549516, 0.31843078, 0.062297586, -0.1193312, 1.2155648, 1.1619307, 0.90129304, 0.49563062, -0.14340365, -0.56456023]);
#[rustfmt::skip]
const BICUBIC_ALIGN: (&[usize], &[f32]) = (&[1, 2, 5, 7], &[0.0, 0.29011834, 0.64421767, 0.8866891, 0.98544973, 0.95632, 0.86320937, 0.25808045, 0.20378843, 0.11225499, 0.014086107, -0.086365744, -0.18398729, -0.24436735, 0.33498815, 0.040926762, -0.35078323, -0.6650759, -0.8715758, -0.97583854, -0.98245263, -0.11673411, -0.18651962, -0.260266, -0.29471117, -0.28139073, -0.22776228, -0.17017299, -0.63126665, -0.36724257, 0.0168139, 0.3666095, 0.6569866, 0.88259363, 0.98816824, 0.8545989, 0.6511215, 0.31909835, -0.025779504, -0.36647913, -0.68736035, -0.8796958, -0.24695678, -0.27576998, -0.28675848, -0.2603218, -0.19169323, -0.09017005, -0.0064716274, -0.9791777, -0.85975987, -0.6181371, -0.31802946, 0.033623047, 0.41269895, 0.6695698, -0.16620171, -0.08700082, 0.02593902, 0.12613104, 0.20588027, 0.26430607, 0.28899285, 0.9906074, 0.96904856, 0.8457468, 0.6250884, 0.30311835, -0.09034794, -0.3820714]);
#[rustfmt::skip]
const BICUBIC_DOWN: (&[usize], &[f32]) = (&[1, 1, 4, 3], &[0.12393958, 0.86131555, -0.31096783, -0.9066486, -0.3080755, 0.9735451, 0.80417335, -0.674735, -0.65766, 0.05716693, 0.87562615, -0.24730255]);
#[rustfmt::skip]
const LINEAR1D: (&[usize], &[f32]) = (&[1, 2, 8], &[0.0, 0.28184524, 0.6655447, 0.8788147, 0.9472496, 0.8708494, 0.5660849, 0.33498815, -0.35078323, -0.57863, -0.8785056, -0.9478036, -0.872707, -0.65321577, -0.26672134, 0.0168139]);
#[rustfmt::skip]
const TRILINEAR: (&[usize], &[f32]) = (&[1, 1, 3, 5, 6], &[0.0, 0.3865306, 0.7124641, 0.91720337, 0.9365536, 0.86320937, 0.16749407, 0.15502796, 0.12876116, 0.07489303, 0.010313541, -0.059621632, 0.33498815, -0.0764747, -0.45494178, -0.7674173, -0.9159265, -0.98245263, -0.14813925, -0.15944651, -0.15504666, -0.119232595, -0.063233614, 0.0028578043, -0.63126665, -0.2424183, 0.14484847, 0.5289521, 0.7894593, 0.98816824, 0.42729944, 0.45991457, 0.44722345, 0.34391984, 0.18239388, -0.008243203, 0.05260233, 0.020200282, -0.012069985, -0.044076644, -0.06578424, -0.08234231, -0.3220948, -0.419514, -0.47136343, -0.43207312, -0.31396234, -0.15644142, -0.07121221, -0.044438824, -0.015164316, 0.019112468, 0.047644235, 0.0733035, 0.17967036, 0.33063638, 0.4410348, 0.47029805, 0.40925083, 0.30304843, 0.8545989, 0.53329855, 0.18198282, -0.22936368, -0.57176584, -0.8796958, -0.062289417, -0.11462739, -0.15290113, -0.16304632, -0.14188202, -0.10506299, -0.9791777, -0.76255333, -0.48778507, -0.09672894, 0.2880018, 0.6695698, 0.0057148337, 0.07056886, 0.124718025, 0.15745753, 0.15852208, 0.14374919, 0.9906074, 0.90369105, 0.7372211, 0.411644, 0.029042376, -0.3820714]);
#[rustfmt::skip]
const NEAREST3D: (&[usize], &[f32]) = (&[1, 1, 4, 4, 3], &[0.0, 0.64421767, 0.98544973, 0.0, 0.64421767, 0.98544973, 0.33498815, -0.35078323, -0.8715758, -0.63126665, 0.0168139, 0.6569866, 0.0, 0.64421767, 0.98544973, 0.0, 0.64421767, 0.98544973, 0.33498815, -0.35078323, -0.8715758, -0.63126665, 0.0168139, 0.6569866, 0.8545989, 0.31909835, -0.36647913, 0.8545989, 0.31909835, -0.36647913, -0.9791777, -0.6181371, 0.033623047, 0.9906074, 0.8457468, 0.30311835, 0.8545989, 0.31909835, -0.36647913, 0.8545989, 0.31909835, -0.36647913, -0.9791777, -0.6181371, 0.033623047, 0.9906074, 0.8457468, 0.30311835]);
#[rustfmt::skip]
const INSTANCENORM: (&[usize], &[f32]) = (&[2, 3, 4, 5], &[0.8671387, 1.6576263, 2.0763354, 1.9263402, 1.2781861, 0.43670994, -0.20232885, -0.33838034, 0.092542596, 0.8877702, 1.6732944, 2.0796711, 1.9157747, 1.2586884, 0.41745028, -0.21229249, -0.33436185, 0.108653195, 0.9083959, 1.6887347, 1.6545857, 1.4564701, 0.71435535, -0.22273044, -0.91406125, -1.0344933, -0.5273856, 0.3687613, 1.2324754, 1.6575384, 1.4440367, 0.69238347, -0.2439072, -0.92448306, -1.0292586, -0.5089564, 0.3917175, 1.249162, 1.6601074, 1.4312799, 0.022421807, -0.6570364, -1.143531, -1.2082556, -0.8207696, -0.16331355, 0.4549007, 0.74311733, 0.5657835, 0.0063021425, -0.67219394, -1.1505975, -1.2039077, -0.80705214, -0.14667803, 0.4666303, 0.74442434, 0.5560533, -0.009889063, -0.6872312, -0.04021549, -0.08897463, 0.38383725, 1.1558493, 1.8639723, 2.1751647, 1.943068, 1.276841, 0.48982054, -0.047845356, -0.08328398, 0.400172, 1.1751456, 1.8771548, 2.1760337, 1.9312146, 1.25784, 0.4726085, -0.055173356, -0.077281475, -0.306851, 0.67213166, 1.5478692, 1.9084885, 1.5843847, 0.72798884, -0.2579226, -0.9096602, -0.9207015, -0.2858537, 0.6963045, 1.5638486, 1.9087592, 1.5688194, 0.7039081, -0.27919325, -0.9181168, -0.9123668, -0.26464757, 0.7204084, 0.38255206, 0.59372425, 0.3654997, -0.19478396, -0.8236166, -1.2252483, -1.2107856, -0.7870304, -0.15328136, 0.39239937, 0.59336966, 0.35511, -0.21032237, -0.8369957, -1.2301759, -1.2049439, -0.77316695, -0.13791643, 0.40203947, 0.59275097]);
#[rustfmt::skip]
const AVGPOOL3D: (&[usize], &[f32]) = (&[1, 2, 3, 5, 4], &[0.4183278, 0.37979108, -0.16719708, -0.47107038, -0.40218386, 0.018772557, 0.44300854, 0.28762037, -0.023977876, -0.39819798, -0.26718238, 0.1890524, 0.42569464, 0.37166923, -0.18103041, -0.47299033, -0.393425, 0.03376828, 0.44468665, 0.27472484, -0.026621977, 0.0017580589, 0.02970329, 0.01881671, -0.0021385353, -0.026868531, -0.017472625, 0.013139169, 0.028718824, 0.024587125, -0.012570982, -0.031699926, -0.026020924, 0.0027603705, 0.029798776, 0.017943302, -0.0032047827, -0.027293697, -0.01664733, 0.014106114, -0.039932966, -0.40477973, -0.25499445, 0.20361668, 0.43258008, 0.363127, -0.19465905, -0.47437537, -0.3842212, 0.048725888, 0.44586188, 0.26151866, -0.055842906, -0.41090375, -0.24251813, 0.21795067, 0.43897635, 0.35417417, -0.20806758, -0.47522402, 0.450273, 0.33507758, -0.23416384, -0.47530875, -0.354047, 0.093200624, 0.44635996, 0.22018716, -0.103122264, -0.4264628, -0.20350175, 0.25941047, 0.45516062, 0.32495537, -0.24682207, -0.47454473, -0.34317255, 0.10783702, 0.44551614, 0.2058909, -0.023329755, 0.0067269653, 0.029843181, 0.014257054, -0.0074214935, -0.028681358, -0.01316755, 0.017803827, 0.030606696, 0.021395734, -0.016932106, -0.0317141, -0.022589028, 0.0077023706, 0.029769858, 0.0132925315, -0.008457661, -0.028948074, -0.012257884, 0.018680474, -0.11867249, -0.4306919, -0.19001614, 0.27266425, 0.4595335, 0.3144657, -0.25920123, -0.4732441, -0.33191007, 0.12235145, 0.44416854, 0.19136181, -0.13408852, -0.43443394, -0.17631565, 0.2856097, 0.46338674, 0.30362046, -0.2712872, -0.4714083]);
#[rustfmt::skip]
const MAXPOOL3D: (&[usize], &[f32]) = (&[1, 2, 4, 3, 3], &[0.98544973, 0.98544973, 0.6569866, 0.9906074, 0.9906074, 0.6569866, 0.9906074, 0.9906074, 0.6819636, 0.99464476, 0.99464476, 0.6569866, 0.99464476, 0.99464476, 0.7061695, 0.9975574, 0.9975574, 0.6819636, 0.99464476, 0.99464476, 0.72957677, 0.999342, 0.999342, 0.752159, 0.9975574, 0.9975574, 0.752159, 0.7979521, 0.72957677, 0.72957677, 0.999342, 0.999342, 0.752159, 0.7772356, 0.752159, 0.752159, 0.9999965, 0.9999965, 0.7738907, 0.9995202, 0.9995202, 0.7738907, 0.9995202, 0.9995202, 0.79474723, 0.9999965, 0.9999965, 0.7738907, 0.9995202, 0.9995202, 0.8147051, 0.9995202, 0.9995202, 0.79474723, 0.99791354, 0.99791354, 0.8337416, 0.99791354, 0.99791354, 0.8518353, 0.99517846, 0.99517846, 0.8518353, 0.6858295, 0.8337416, 0.8337416, 0.991318, 0.991318, 0.8518353, 0.6609721, 0.8518353, 0.8518353]);
#[rustfmt::skip]
const MAXPOOL3D_IDX: (&[usize], &[i64]) = (&[1, 2, 4, 3, 3], &[2, 2, 10, 20, 20, 10, 20, 20, 28, 38, 38, 10, 38, 38, 46, 56, 56, 28, 38, 38, 64, 74, 74, 82, 56, 56, 82, 66, 64, 64, 74, 74, 82, 84, 82, 82, 2, 2, 10, 20, 20, 10, 20, 20, 28, 2, 2, 10, 20, 20, 46, 20, 20, 28, 38, 38, 64, 38, 38, 82, 56, 56, 82, 66, 64, 64, 74, 74, 82, 84, 82, 82]);
#[rustfmt::skip]
const ADAPTIVE_AVG3D: (&[usize], &[f32]) = (&[1, 2, 2, 3, 4], &[-0.42048776, 0.23583262, 0.6022027, 0.20291558, -0.16243745, -0.36447552, -0.10232517, 0.28362897, 0.6845167, 0.35659316, -0.4358813, -0.66393185, -0.6608291, -0.1471437, 0.5657206, 0.55215746, 0.090716876, -0.26968712, -0.29079708, 0.05479698, 0.51337606, 0.5854986, -0.09305332, -0.64122546, -0.37993914, -0.6159596, -0.065420516, 0.55684024, 0.4072367, 0.15601401, -0.30058786, -0.3697022, -0.2819915, 0.36237136, 0.5540021, 0.044081107, 0.032536983, -0.52028257, -0.4157137, 0.21046796, 0.3480517, 0.32210335, -0.11811607, -0.40101132, -0.5982672, -0.0032706459, 0.6077019, 0.44134372]);
#[rustfmt::skip]
const ADAPTIVE_MAX1D: (&[usize], &[f32]) = (&[2, 4], &[0.98544973, 0.98544973, 0.33498815, -0.63126665, 0.98816824, 0.98816824, 0.31909835, -0.6181371]);
#[rustfmt::skip]
const ADAPTIVE_MAX1D_IDX: (&[usize], &[i64]) = (&[2, 4], &[2, 2, 4, 8, 2, 2, 4, 8]);
#[rustfmt::skip]
const CONV3D: (&[usize], &[f32]) = (&[1, 6, 2, 3, 2], &[0.90645456, -0.97352105, 1.6407335, 2.8040066, 0.19495153, 0.93431276, -0.03480637, 0.9072779, 1.8984191, 1.0526254, 0.8835465, 0.77078056, 0.5860939, -1.3772305, 1.07561, 2.391556, -0.36693785, 0.3060733, -0.5458312, 0.43652865, 1.3624266, 0.5663587, 0.48375726, 0.281959, 0.06401208, -1.9737827, 0.30655196, 1.7692201, -1.1262386, -0.52262163, -1.2534585, -0.23526561, 0.62120175, -0.12154046, -0.1172898, -0.40720773, -0.043982506, 0.7681544, -1.6673553, -0.28068602, -0.7600322, -2.931828, -0.38100344, -0.65614486, -0.17149585, -0.93577856, -1.8897339, -0.86519617, -0.24940008, 0.68766254, -1.9673629, -0.6014198, -0.79064834, -3.0670474, -0.6419183, -0.8357937, -0.28959942, -1.1222088, -2.0432131, -1.0329466, 0.010317266, 1.068069, -1.7944665, -0.45542747, -0.35368228, -2.7243905, -0.4359237, -0.5476558, 0.05761391, -0.8395568, -1.7234461, -0.73201895]);
#[rustfmt::skip]
const CONV3D_SAME: (&[usize], &[f32]) = (&[1, 3, 3, 4, 4], &[-2.0020914, -2.298526, -0.7216687, 1.190177, 2.849342, 5.3867283, 4.639851, 1.1239023, -1.4808139, -4.8051767, -5.327504, -1.8861954, -0.39906287, 2.243288, 4.7984304, 3.3884468, 0.82293206, -2.0417972, -2.8011885, -0.4124316, -2.9405947, 0.30338106, 3.73554, 2.6461673, 3.949712, 1.5359412, -2.1917953, -2.2925549, -4.3638964, -4.2300997, -1.194488, 0.52545726, 1.2926437, -0.27470887, -1.3726432, -0.75506955, -2.898314, -2.0345592, 0.29574913, 1.1095479, 2.9270525, 2.8799632, 0.8969166, -0.58992755, -2.3917258, -3.4097502, -2.682361, -1.0804162, -2.1097498, -2.573628, -1.0902722, 0.92794293, 2.7964506, 5.491204, 4.965074, 1.4516807, -1.3616773, -4.776052, -5.558918, -2.2039402, -0.4730335, 2.108531, 4.799363, 3.553012, 1.0278, -1.8571974, -2.865649, -0.5917443, -3.1539028, -0.0482788, 3.5822792, 2.7387366, 4.1474147, 1.9274461, -1.9254845, -2.2740676, -4.366987, -4.4155307, -1.4002056, 0.45607546, 1.45826, -0.05171521, -1.2572323, -0.75146866, -3.0029025, -2.2860303, 0.0694537, 1.0273259, 2.9945204, 3.0992453, 1.1508999, -0.44653767, -2.3634174, -3.463961, -2.805478, -1.1908987, -2.2078679, -2.8370917, -1.4539454, 0.66151273, 2.7309146, 5.5708466, 5.2678447, 1.7728941, -1.2363832, -4.7253304, -5.7651925, -2.511719, -0.54486513, 1.9642396, 4.778592, 3.7015104, 1.2280195, -1.6641994, -2.9171498, -0.76838166, -3.3529472, -0.39971817, 3.4128203, 2.8189213, 4.326363, 2.3102362, -1.6504658, -2.245298, -4.3503313, -4.5809937, -1.5995921, 0.3846316, 1.6172823, 0.17151257, -1.1361359, -0.7444696, -3.0939112, -2.5271633, -0.15715638, 0.940458, 3.0484467, 3.3045135, 1.3996783, -0.30112892, -2.3244212, -3.502507, -2.9159086, -1.2959955]);
#[rustfmt::skip]
const CONV_DIL_UNEQUAL: (&[usize], &[f32]) = (&[1, 6, 7, 4], &[1.7826715, 1.1099017, 0.3074546, -0.61195546, 2.7051237, 1.4722538, 0.63656116, 0.4169176, 3.709595, 2.0850573, 1.5474064, 2.2185736, 2.4327033, 1.5404272, 2.087893, 3.6607144, 0.47200283, 0.7125032, 2.099346, 3.8678315, -0.4281357, 0.40401238, 1.1561935, 1.9458389, -0.92686707, 0.30424225, 0.7502208, 0.6796903, -1.4058428, -0.10901412, 0.32239187, 0.1470468, -1.079667, 0.020222992, 0.013778448, -0.9622406, -0.4577678, -0.07142842, -0.46654966, -2.2801166, 1.5287609, 0.5588514, -0.4881216, -1.8768079, 3.0209148, 1.1301179, -0.09875414, -0.43922237, 2.3338735, 1.1808219, 0.7398055, 1.1823052, 1.567401, 0.8936217, 1.1183155, 2.1664298, 0.7750282, 0.1009413, 0.45533994, 1.5568593, -0.4861828, -0.39563355, 0.44675216, 1.6800668, -2.1365445, -0.91324973, 0.034764826, 1.2471272, -2.9228163, -1.0232143, -0.4833178, -0.6138811, -2.5118332, -0.78859484, -0.8991587, -2.3140419, -0.89814913, -0.53276384, -0.8269155, -2.076131, 0.39662316, -0.13471407, -0.8140545, -1.8320715, -1.8286921, -1.0763721, -0.22986114, 0.63080657, -2.6784446, -1.4234796, -0.5913201, -0.45106936, -3.5116632, -1.9332621, -1.5578221, -2.3484259, -2.1298213, -1.3306764, -2.0255675, -3.6735637, -0.15926898, -0.49809104, -1.9513986, -3.717054, 0.5977771, -0.30636817, -1.023938, -1.7261533, 1.0189453, -0.2337783, -0.62746614, -0.44938976, 0.84637314, -0.46707273, -0.8700098, -0.58943677, 0.4403692, -0.60902536, -0.57312936, 0.47047752, -0.3283019, -0.5463209, -0.040607393, 1.7446263, -2.3166966, -1.2104206, -0.0709427, 1.2213385, -3.7123466, -1.7783477, -0.51658094, -0.29731613, -2.8491833, -1.7281995, -1.3738394, -1.8924143, -2.004935, -1.4016752, -1.7168878, -2.8084366, -1.6087433, -0.99694824, -1.4249775, -2.5770423, -0.33732426, -0.502412, -1.3718522, -2.5959694, 1.2942185, -0.057752788, -0.95841527, -2.0219145, 1.9774784, 0.029380381, -0.45916456, -0.15330195, 1.4564165, -0.21336883, -0.07050365, 1.4674286, -0.19709146, -0.45717442, -0.10763508, 1.1331604, -1.4950767, -0.868885, -0.14782459, 0.8077569]);
#[rustfmt::skip]
const CONV_BF16: (&[usize], &[f32]) = (&[1, 3, 5, 6], &[-1.2109375, -0.16699219, 0.13085938, 0.36523438, 0.4296875, -0.46484375, 2.015625, 1.765625, 0.93359375, -0.34179688, -1.453125, -1.671875, -0.3359375, -0.29492188, 0.97265625, 1.78125, 1.7578125, 2.015625, -1.6796875, -1.4765625, -1.890625, -1.40625, -0.26953125, -0.29882812, 2.1875, 1.75, 0.19140625, -1.4609375, -2.421875, -1.796875, -1.2734375, -0.23242188, 0.12109375, 0.41601562, 0.515625, -0.38671875, 1.9765625, 1.7421875, 0.875, -0.40234375, -1.4921875, -1.7109375, -0.25976562, -0.23242188, 1.0234375, 1.796875, 1.7265625, 1.984375, -1.7265625, -1.515625, -1.8828125, -1.359375, -0.20605469, -0.22949219, 2.1875, 1.7734375, 0.19628906, -1.4765625, -2.453125, -1.8515625, -1.3359375, -0.296875, 0.107910156, 0.4609375, 0.59765625, -0.30664062, 1.953125, 1.71875, 0.82421875, -0.4609375, -1.5234375, -1.75, -0.19335938, -0.17285156, 1.0703125, 1.8125, 1.703125, 1.953125, -1.7578125, -1.546875, -1.875, -1.3125, -0.14550781, -0.15820312, 2.171875, 1.8046875, 0.20996094, -1.484375, -2.484375, -1.8984375]);
#[rustfmt::skip]
const BILINEAR_BF16: (&[usize], &[f32]) = (&[1, 2, 7, 9], &[0.0, 0.32226562, 0.703125, 0.9296875, 0.921875, 0.7734375, 0.42382812, -0.0078125, -0.3515625, -0.43554688, -0.30273438, -0.11230469, 0.11816406, 0.30859375, 0.44921875, 0.48632812, 0.40625, 0.31835938, -0.58203125, -0.67578125, -0.73828125, -0.6171875, -0.36132812, -0.04638672, 0.296875, 0.55078125, 0.71875, 0.56640625, 0.33398438, 0.01574707, -0.32617188, -0.5703125, -0.7265625, -0.7109375, -0.52734375, -0.34960938, 0.4453125, 0.46875, 0.46289062, 0.34179688, 0.1484375, -0.06933594, -0.28515625, -0.41992188, -0.5, -0.119628906, 0.13671875, 0.44921875, 0.671875, 0.71875, 0.65625, 0.42382812, 0.10644531, -0.15332031, -0.734375, -0.71875, -0.640625, -0.40039062, -0.078125, 0.25585938, 0.546875, 0.69140625, 0.76171875, 0.8359375, 0.5625, 0.17285156, -0.28515625, -0.6484375, -0.90625, -0.9609375, -0.78125, -0.58984375, 0.45117188, 0.47070312, 0.45898438, 0.33007812, 0.1328125, -0.0859375, -0.296875, -0.42578125, -0.5, -0.09423828, 0.16210938, 0.47070312, 0.6796875, 0.71875, 0.64453125, 0.40429688, 0.083496094, -0.17773438, -0.7421875, -0.71484375, -0.62890625, -0.37890625, -0.053955078, 0.27929688, 0.5625, 0.69921875, 0.76171875, -0.04296875, -0.20019531, -0.38085938, -0.47851562, -0.45703125, -0.36523438, -0.17578125, 0.043945312, 0.21679688, 0.6953125, 0.515625, 0.24414062, -0.103515625, -0.40625, -0.6484375, -0.7421875, -0.65234375, -0.54296875, 0.21972656, 0.4296875, 0.66015625, 0.73828125, 0.640625, 0.44140625, 0.118652344, -0.21289062, -0.46289062]);
#[rustfmt::skip]
const AVGPOOL_BF16: (&[usize], &[f32]) = (&[1, 2, 3, 3], &[-0.13476562, 0.099121094, 0.27929688, 0.0022277832, -0.0022583008, -0.005279541, -0.12890625, 0.10839844, 0.27734375, 0.20996094, 0.16796875, -0.19628906, -0.0042419434, -0.003036499, 0.004119873, 0.20996094, 0.16015625, -0.20410156]);
#[rustfmt::skip]
const LINEAR_BF16: (&[usize], &[f32]) = (&[3, 5], &[3.53125, 4.46875, 3.390625, 0.80859375, -2.125, 0.6953125, 2.5, 3.171875, 2.4375, 0.609375, -2.03125, -0.39453125, 1.4140625, 2.59375, 2.625]);
#[rustfmt::skip]
const CONVT3D: (&[usize], &[f32]) = (&[1, 6, 6, 6, 5], &[0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 2.0223248, 1.81861, 2.2422593, 2.0389953, 2.3614197, -2.2845197, -2.2210577, 4.399213, 9.378122, 5.7833657, -0.14770514, 0.38400787, -0.2893495, -0.39896458, -0.77211875, 5.4999423, 6.9184966, 0.6367617, -5.5167947, -3.1910605, 1.7881327, 0.9898638, 1.8351195, 2.2449467, 2.6257107, -1.5480008, -2.7726738, 0.3420413, 3.7235458, 2.9854236, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.31018353, 1.282764, 0.3632837, -0.29939765, -0.64377266, 6.6020656, 10.340574, 6.7905774, 0.47452205, -0.36634403, 1.1594591, 0.124953926, 1.0124078, 1.8513672, 2.1195586, -4.36141, -8.669775, -7.197311, -1.9121819, 0.46034366, 1.0369954, 2.0138826, 1.2610052, 0.3427139, 0.18169731, 3.411726, 5.8045845, 5.512707, 3.0557745, 1.4933205, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.9092974, 0.28936267, -1.3187709, -1.162247, -0.031443536, 1.0559727, -2.0871813, -4.3489466, -3.558103, -0.6661717, 0.83819026, 1.3951299, 2.8175757, 3.195853, 2.4987276, 1.349658, 3.0378351, 5.6319857, 6.0760894, 4.09017, 1.6228693, 0.61370766, -0.45867902, -1.3280454, -1.1451547, -0.067213, 0.06803149, -1.4222405, -2.1419518, -1.4266131, 0.18977445, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, -1.1817961, -0.7442298, 1.9173727, 3.8782084, 1.9203786, 0.38000038, 1.0780424, -3.286168, -5.903838, -4.7029405, 2.7230668, 2.7720444, 0.22529116, -2.2264168, -0.7130835, -0.41351768, -2.375481, 2.1111054, 5.80581, 5.33895, -2.2895393, -2.8194013, -0.68178797, 1.9774842, 1.0835212, 0.57908416, 1.7268004, -0.16455194, -1.7775095, -1.8332143, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 3.2515767, 4.2010946, 2.719634, 0.16009054, 0.33138096, -1.8071446, -5.4969487, -2.275189, 2.2176328, 3.2896364, -2.1777437, -3.4371958, -2.7830784, -0.6190326, -0.047856957, 3.0062134, 6.9602785, 4.9795623, 0.8578833, -0.841123, 2.5123942, 3.936244, 4.185057, 2.6665754, 1.4189363, -0.6139909, -2.351045, -1.5895903, 0.12047696, 0.8411747, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, 0.42737988, -0.6976545, -0.7328682, -0.24562779, 0.5581386, 0.42082232, 2.8611004, 6.6207395, 6.4869056, 3.5031817, 0.76048684, 1.3069646, 1.6320771, 1.3971593, 0.7061391, 0.4165084, -1.2602463, -4.7204084, -6.0925927, -4.3983316, -1.1809808, -0.10511455, -0.6825577, -0.72710836, -0.22868511, 0.45442408, 0.99657893, 2.4807885, 3.5023718, 3.0777383, 1.54181, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, 0.302685, 0.051953584, -3.1359756, -4.969191, -3.2582579, 2.9874833, 2.1990507, 0.111349374, -2.148906, 0.19862553, -1.582787, -2.1653674, 1.1529907, 3.808894, 2.6103346, -3.9728491, -3.3537524, -1.7316853, 0.5846355, -1.2562284, 1.6873543, 3.0359256, -0.029406726, -3.2010934, -2.653408, 2.0442004, 2.0768814, 0.92648196, -0.7798413, 0.01613465, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -2.589574, -4.5483027, -2.0902107, 1.2307545, 1.3972313, -3.627583, -3.5339441, -3.3299942, -1.6800811, -1.9525744, 2.1999195, 4.5424623, 2.9756577, -0.11083071, -0.9722321, 2.336849, 2.5386117, 3.1232743, 2.118827, 1.5108509, -2.5486877, -5.004353, -4.509887, -2.0145354, -0.55774903, -1.6764257, -2.2652192, -2.7641714, -2.0832758, -1.269322, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, -0.25554112, 1.5328287, 3.1775343, 2.5149739, 0.54939675, -0.39540592, 0.21333072, -1.4295794, -2.081426, -1.8745301, -0.5303913, -1.6548903, -3.4149907, -3.5492876, -2.1344843, -0.68461084, -0.6313485, 0.36814728, 1.3491628, 1.5754609, 0.70129395, 0.59308517, 2.2651913, 3.180827, 2.4802854, 0.6928818, -0.005432397, -0.056626946, -0.39790872, -0.6722327, -0.69343996, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, 0.15978426, 0.18619096, 0.9301746, 0.85183406, 0.83943105, -3.596604, -2.8678057, 3.4939816, 7.827647, 3.780072, -1.669694, -1.2550172, -2.2926426, -2.6368513, -2.7521422, 3.496649, 4.1702976, -2.100608, -7.7684135, -4.8145485, -0.19189084, -0.9997328, 0.21163166, 0.9386139, 1.1682765, -3.223532, -4.079006, -0.8452529, 2.401188, 1.2976353, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -1.1472507, -0.039593935, -1.2847176, -2.310467, -2.6279626, 4.9540644, 8.046011, 4.036541, -2.2562256, -2.3479564, -0.8247308, -2.1042066, -0.96920455, 0.23678124, 0.6054212, -6.3430233, -10.171372, -8.071136, -2.5597668, -0.86808366, -0.4771418, 0.82630324, -0.06742221, -1.3142862, -1.6914725, 1.8837252, 4.147584, 3.493942, 0.8121958, -0.48332047, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -0.8182771, -1.7056175, -3.4416611, -2.9597185, -1.4706225, -0.41607624, -3.8846529, -5.49973, -4.2635756, -1.4070436, -0.6457635, -0.07691908, 1.5833523, 1.711899, 0.65046453, -0.5920346, 1.5538812, 3.6630342, 3.4920428, 1.2938406, -0.49389815, -1.3279848, -2.7206311, -3.444813, -2.9336941, -1.6468195, -1.8541396, -3.2107797, -3.5735905, -2.6405342, -1.2929043, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -2.3352003, -1.7625577, 0.5734014, 2.1711693, 0.2402187, -0.9639709, -0.91249156, -5.736174, -8.330556, -6.3805237, 1.042907, 0.84691375, -1.4522913, -3.5369728, -1.9231906, -2.0911002, -3.5730484, 1.5413105, 5.462255, 4.314553, -3.4996464, -3.7029507, -1.7061853, 0.62451404, -0.48561853, -0.64488673, 0.37383026, -1.8792871, -3.7170582, -3.505825, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, 1.682437, 2.261546, 0.79795665, -1.5094359, -1.0312344, -3.728822, -7.412458, -3.4550166, 1.6588612, 2.4056487, -3.540359, -4.428354, -3.667066, -1.6496122, -1.4406236, 2.1222258, 6.3226633, 3.679128, -1.1632699, -2.7832992, 1.1196277, 2.213895, 2.2428806, 0.7484922, -0.12353641, -2.2968512, -4.2691283, -3.250991, -1.1723739, -0.36348164, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -0.9961646, -1.9732308, -1.6427591, -1.1793805, -0.62983274, -1.0674417, 1.9273477, 5.668341, 4.8044825, 1.2124894, -1.1968501, -0.18129945, -0.22504145, -0.56017756, -1.1003653, -1.0330437, -3.2175832, -6.9098735, -7.620168, -5.2150908, -2.0884147, -1.5546668, -1.8027091, -1.6345422, -1.1661361, -0.8553909, -0.1689102, 1.5433376, 2.3062863, 1.5160408, -0.101129234, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.29290956, -0.91404986, -4.084108, -5.6651726, -3.647328, 2.039351, 1.2570873, -0.09493321, -1.7341317, 0.2881831, -1.9718571, -2.1829798, 1.2425479, 3.7518597, 2.191113, -3.8832912, -3.0178213, -2.0585732, -0.46297228, -2.2248597, 1.2681328, 2.2871222, -0.9980377, -4.145632, -3.2223353, 1.3348852, 1.1323434, 0.23862642, -1.0991468, -0.21497637, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -3.1585016, -4.8676076, -2.1024334, 1.3197216, 1.1405679, -3.6398058, -2.906011, -3.00665, -2.0250416, -2.7089071, 1.943256, 4.1449833, 2.219325, -1.081943, -1.6676337, 1.5805162, 1.0463866, 1.6916655, 1.2095009, 1.2003438, -3.2440896, -5.6840158, -4.820394, -2.0214922, -0.7386368, -2.056679, -2.272176, -2.675948, -2.153006, -1.6975871, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, -0.7055403, 1.196559, 2.5893822, 1.626185, -0.43365887, -1.0337144, -0.675458, -2.9456916, -3.2846622, -2.4106314, -0.6696265, -2.2931988, -3.908041, -3.6885228, -2.0660615, -0.893481, -0.7705837, 0.95499194, 1.8636793, 1.5640229, 0.104466796, 0.38421512, 2.0344725, 2.584, 1.5864052, -0.0232023, -0.52884555, -0.95050716, -1.3800777, -1.4924028, -1.1604766]);
#[rustfmt::skip]
const CONV1D_SAME: (&[usize], &[f32]) = (&[1, 3, 7], &[1.6923991, 2.164931, 1.8337755, 1.6689448, 1.0594829, 0.22384244, 0.050425053, 1.6810952, 1.3569446, 0.5986747, -0.26449817, -0.249475, -0.7732997, -0.11992112, 0.9060348, -0.06929779, -0.9143181, -2.0883825, -1.4556179, -1.4324985, -0.24560478]);
