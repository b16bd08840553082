//! The GPU benchmark harness (run by `scripts/gpu-check.sh` on a GPU machine; on a machine
//! without one it prints the table with the GPU columns empty).
//!
//! For every case of every fused op: the maximum error against the f32 reference, then the
//! median time of the fused op and of the unfused candle composition (CUDA events around each
//! call, L2 flushed in between, after a warm-up), GB/s from the case's minimal byte count, that
//! as a share of the card's device-to-device copy bandwidth measured in the same run, and the
//! speed-ups over unfused candle and — when `TORCHLESS_TORCH_TIMINGS` names the JSON written by
//! `scripts/gpu_torch_baseline.py` — over PyTorch eager on the same card.
//!
//! `gpu_kernels --list` prints the cases as JSON for the PyTorch script.

#[cfg(feature = "cuda")]
use std::collections::HashMap;

#[cfg(feature = "cuda")]
use candle_core::Tensor;
use candle_core::{DType, Device, Result};
use torchless_benches::cases::{all, Case, Size};
#[cfg(feature = "cuda")]
use torchless_kernels::testing::compare;
use torchless_kernels::testing::cuda_device;

#[cfg(feature = "cuda")]
const WARMUP: usize = 5;
#[cfg(feature = "cuda")]
const ITERS: usize = 30;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let list = args.iter().any(|a| a == "--list");
    let Some(dev) = cuda_device() else {
        if std::env::var("TORCHLESS_REQUIRE_GPU").as_deref() == Ok("1") {
            eprintln!("error: TORCHLESS_REQUIRE_GPU=1 but no CUDA device is usable");
            std::process::exit(1);
        }
        eprintln!("skipped: no CUDA device; dry run with the GPU columns empty (large sizes are built on a GPU only)");
        let cases = all(&Device::Cpu, Size::Inference)?;
        if list {
            print_list(&cases);
            return Ok(());
        }
        let rows: Vec<Row> = cases.iter().map(|c| Row::empty(c, "inference")).collect();
        print_table(&rows, None, None);
        return Ok(());
    };
    let mut cases: Vec<(&str, Case)> = Vec::new();
    for (label, size) in [("inference", Size::Inference), ("large", Size::Large)] {
        cases.extend(all(&dev, size)?.into_iter().map(|c| (label, c)));
    }
    if list {
        print_list(&cases.iter().map(|(_, c)| c).collect::<Vec<_>>());
        return Ok(());
    }
    measure(&dev, &cases)
}

#[cfg(not(feature = "cuda"))]
fn measure(_dev: &Device, _cases: &[(&str, Case)]) -> Result<()> {
    candle_core::bail!("built without the cuda feature")
}

#[cfg(feature = "cuda")]
fn measure(dev: &Device, cases: &[(&str, Case)]) -> Result<()> {
    let torch = load_torch_timings();
    let timer = Timer::new(dev)?;
    let copy_gbps = timer.copy_bandwidth()?;
    let mut rows = Vec::new();
    for (label, case) in cases {
        let mut row = Row::empty(case, label);
        let out = (case.fused)()?;
        let (max_err, ok) = compare(&out, &(case.reference)()?)?;
        row.max_err = Some((max_err, ok));
        row.fused_us = Some(timer.median_us(&case.fused)?);
        row.unfused_us = Some(timer.median_us(&case.unfused)?);
        row.torch_us = torch
            .as_ref()
            .and_then(|t| t.get(&torch_key(case)).copied());
        println!("{}", serde_json::to_string(&row.json()).unwrap_or_default());
        rows.push(row);
    }
    print_table(
        &rows,
        Some(copy_gbps),
        torch.as_ref().and_then(|t| t.get("copy_gbps").copied()),
    );
    if rows.iter().any(|r| matches!(r.max_err, Some((_, false)))) {
        eprintln!("error: some fused op is outside its tolerance (see max err)");
        std::process::exit(1);
    }
    Ok(())
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn torch_key(c: &Case) -> String {
    serde_json::to_string(&c.torch).unwrap_or_default()
}

fn print_list<C: std::borrow::Borrow<Case>>(cases: &[C]) {
    let v: Vec<serde_json::Value> = cases.iter().map(|c| c.borrow().torch.clone()).collect();
    println!("{}", serde_json::Value::Array(v));
}

/// PyTorch timings keyed by the case's JSON spec, plus `copy_gbps`.
#[cfg(feature = "cuda")]
fn load_torch_timings() -> Option<HashMap<String, f64>> {
    let path = std::env::var("TORCHLESS_TORCH_TIMINGS").ok()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut m = HashMap::new();
    for e in v.get("cases")?.as_array()? {
        let key = serde_json::to_string(e.get("case")?).ok()?;
        m.insert(key, e.get("us")?.as_f64()?);
    }
    if let Some(c) = v.get("copy_gbps").and_then(|c| c.as_f64()) {
        m.insert("copy_gbps".into(), c);
    }
    Some(m)
}

#[cfg(feature = "cuda")]
struct Timer {
    dev: candle_core::CudaDevice,
    flush: Tensor,
}

#[cfg(feature = "cuda")]
impl Timer {
    fn new(dev: &Device) -> Result<Self> {
        let Device::Cuda(cuda) = dev else {
            candle_core::bail!("not a CUDA device")
        };
        // 128 MiB: more than the L2 of any current card.
        let flush = Tensor::zeros(32 << 20, DType::F32, dev)?;
        Ok(Timer {
            dev: cuda.clone(),
            flush,
        })
    }

    fn median_us(&self, f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
        use candle_core::cuda_backend::cudarc::driver::sys::CUevent_flags;
        use candle_core::cuda_backend::WrapErr;
        let stream = self.dev.cuda_stream();
        for _ in 0..WARMUP {
            f()?;
        }
        let mut times = Vec::with_capacity(ITERS);
        for _ in 0..ITERS {
            let _ = (&self.flush + 1.0)?;
            let start = stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .w()?;
            let out = f()?;
            let end = stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .w()?;
            times.push(f64::from(start.elapsed_ms(&end).w()?) * 1000.0);
            drop(out);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// Device-to-device copy bandwidth (read + write bytes per second) of a 1 GiB tensor.
    fn copy_bandwidth(&self) -> Result<f64> {
        let dev = Device::Cuda(self.dev.clone());
        let t = Tensor::zeros(256 << 20, DType::F32, &dev)?;
        let us = self.median_us(&|| t.copy())?;
        Ok(2.0 * (1u64 << 30) as f64 / (us * 1e-6) / 1e9)
    }
}

struct Row {
    size: String,
    op: String,
    shape: String,
    dtype: DType,
    bytes: usize,
    max_err: Option<(f32, bool)>,
    fused_us: Option<f64>,
    unfused_us: Option<f64>,
    torch_us: Option<f64>,
}

impl Row {
    fn empty(c: &Case, size: &str) -> Row {
        Row {
            size: size.into(),
            op: c.op.into(),
            shape: c.shape.clone(),
            dtype: c.dtype,
            bytes: c.bytes,
            max_err: None,
            fused_us: None,
            unfused_us: None,
            torch_us: None,
        }
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "size": self.size, "op": self.op, "shape": self.shape, "dtype": self.dtype.as_str(),
            "bytes": self.bytes, "max_err": self.max_err.map(|e| e.0), "ok": self.max_err.map(|e| e.1),
            "fused_us": self.fused_us, "unfused_us": self.unfused_us, "torch_us": self.torch_us,
        })
    }

    fn gbps(&self) -> Option<f64> {
        self.fused_us
            .map(|us| self.bytes as f64 / (us * 1e-6) / 1e9)
    }
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn print_table(rows: &[Row], copy_gbps: Option<f64>, torch_copy: Option<f64>) {
    println!();
    match copy_gbps {
        Some(c) => println!(
            "device-to-device copy bandwidth: {c:.0} GB/s (candle){}",
            torch_copy.map_or(String::new(), |t| format!(", {t:.0} GB/s (torch)"))
        ),
        None => println!("device-to-device copy bandwidth: - (no GPU)"),
    }
    println!("| size | op | shape | dtype | max err vs ref | µs | GB/s | % of copy BW | vs unfused candle | vs PyTorch |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let err = r.max_err.map_or_else(
            || "-".into(),
            |(e, ok)| format!("{e:.2e}{}", if ok { "" } else { " FAIL" }),
        );
        let pct = r.gbps().zip(copy_gbps).map(|(g, c)| 100.0 * g / c);
        let vs_unfused = r.unfused_us.zip(r.fused_us).map(|(u, f)| u / f);
        let vs_torch = r.torch_us.zip(r.fused_us).map(|(t, f)| t / f);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.size,
            r.op,
            r.shape,
            r.dtype.as_str(),
            err,
            cell(r.fused_us, 1),
            cell(r.gbps(), 0),
            cell(pct, 0),
            vs_unfused.map_or("-".into(), |v| format!("{v:.2}x")),
            vs_torch.map_or("-".into(), |v| format!("{v:.2}x")),
        );
    }
}
