//! Device and dtype choice: `cpu`, `cuda[:N]` or `auto` (CUDA when this build has it and a GPU
//! is present, else the CPU); `f32`, `f16` or `bf16`; and how much memory a device has free,
//! checked before a large buffer sized from user input is allocated.

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use torchless_models::Quantize;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// CUDA device 0 when built with `cuda` and present, else the CPU.
    #[default]
    Auto,
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(DeviceSpec::Cuda)
                    .map_err(|_| Error::Option(format!("bad device {s:?}: expected cuda:N"))),
                None => Err(Error::Option(format!(
                    "unknown device {s:?} (expected cpu, cuda, cuda:N or auto)"
                ))),
            },
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Option(format!(
                        "device cuda:{n} requested but this build has no CUDA support (build with --features cuda)"
                    )));
                }
                Device::new_cuda(n).map_err(|e| Error::Option(format!("cannot open cuda:{n}: {e}")))
            }
            DeviceSpec::Auto => Ok(if cfg!(feature = "cuda") {
                Device::new_cuda(0).unwrap_or(Device::Cpu)
            } else {
                Device::Cpu
            }),
        }
    }
}

/// Parses `f32`, `f16` or `bf16` (also `float32`, `fp16`, `bfloat16`, ...).
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::Option(format!(
            "unknown dtype {other:?} (expected f32, f16 or bf16)"
        ))),
    }
}

/// Parses a `--quantize` value: `int8`, or `none` (also `f32`, `off`) for no quantization.
pub fn parse_quantize(s: &str) -> Result<Option<Quantize>> {
    match s.trim().to_ascii_lowercase().as_str() {
        "int8" | "i8" | "q8" => Ok(Some(Quantize::Int8)),
        "none" | "off" | "no" => Ok(None),
        other => Err(Error::Option(format!(
            "unknown quantization {other:?} (expected int8 or none)"
        ))),
    }
}

/// Bytes `device` can still allocate, when known. For the CPU: `MemAvailable` of
/// `/proc/meminfo`, lowered to what the cgroup (v2) limit leaves (`memory.max` −
/// `memory.current`) when one is set. CUDA is not queried (`None`): the allocation itself
/// fails cleanly there.
pub(crate) fn available_bytes(device: &Device) -> Option<u64> {
    if !device.is_cpu() {
        return None;
    }
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mem = read("/proc/meminfo").and_then(|t| meminfo_available(&t));
    let cgroup = match (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        (Some(max), Some(cur)) => match (max.trim().parse::<u64>(), cur.trim().parse::<u64>()) {
            (Ok(max), Ok(cur)) => Some(max.saturating_sub(cur)),
            _ => None,
        },
        _ => None,
    };
    match (mem, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn meminfo_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// A device's name for messages (`cpu`, `cuda:0`).
pub(crate) fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(2));
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!(parse_dtype("bfloat16").unwrap(), DType::BF16);
        assert!(parse_dtype("f8").is_err());
        assert_eq!(parse_quantize("INT8").unwrap(), Some(Quantize::Int8));
        assert_eq!(parse_quantize("none").unwrap(), None);
        assert!(parse_quantize("int4").is_err());
        assert!(DeviceSpec::Auto.open().is_ok());
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let text = "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:   8000000 kB\n";
        assert_eq!(meminfo_available(text), Some(8_192_000_000));
        assert_eq!(meminfo_available("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots kB\n"), None);
        assert_eq!(
            meminfo_available(&format!("MemAvailable: {} kB\n", u64::MAX)),
            None
        );
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(available_bytes(&Device::Cpu).is_some_and(|b| b > 0));
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }
}
