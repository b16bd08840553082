//! Every `kernels/cuda/*.cu` compiles for compute_80 and compute_90 to PTX ISA 9.0 (what the
//! driver 580 of our GPU machines accepts); the embedded PTX is the compute_80 build. Register
//! and spill counts for sm_90 go to the log.

use std::path::PathBuf;
use std::process::Command;

fn sources() -> Vec<PathBuf> {
    let dir = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cuda"),
        PathBuf::from("kernels/cuda"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .expect("kernels/cuda (run from the repository root)");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    v.sort();
    v
}

fn nvcc() -> String {
    std::env::var("TORCHLESS_NVCC").unwrap_or_else(|_| "nvcc".into())
}

#[test]
fn embedded_ptx_targets_compute_80_with_isa_9_0() {
    assert_eq!(
        torchless_kernels::ptx::ALL.len(),
        sources().len(),
        "one module per .cu"
    );
    for (name, ptx) in torchless_kernels::ptx::ALL {
        assert!(ptx.contains(".version 9.0"), "{name}: not PTX ISA 9.0");
        assert!(
            ptx.contains(".target sm_80"),
            "{name}: not built for compute_80"
        );
        assert!(ptx.contains(".entry"), "{name}: no kernels");
    }
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    let tmp = std::env::temp_dir().join(format!("torchless-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for src in sources() {
        let inc = src.parent().unwrap();
        for arch in ["compute_80", "compute_90"] {
            let out = tmp.join(format!(
                "{}-{arch}.ptx",
                src.file_stem().unwrap().to_string_lossy()
            ));
            let o = Command::new(nvcc())
                .args(["--ptx", &format!("-arch={arch}"), "-O3", "-std=c++17"])
                .arg(format!("-I{}", inc.display()))
                .arg("-o")
                .arg(&out)
                .arg(&src)
                .output()
                .expect("run nvcc");
            assert!(
                o.status.success(),
                "{}: {}",
                src.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            let ptx = std::fs::read_to_string(&out).unwrap();
            assert!(
                ptx.contains(".version 9.0"),
                "{} {arch}: not PTX ISA 9.0",
                src.display()
            );
        }
        let o = Command::new(nvcc())
            .args([
                "-cubin",
                "-arch=sm_90",
                "-O3",
                "-std=c++17",
                "-Xptxas",
                "-v",
            ])
            .arg(format!("-I{}", inc.display()))
            .arg("-o")
            .arg(tmp.join("k.cubin"))
            .arg(&src)
            .output()
            .expect("run nvcc");
        assert!(
            o.status.success(),
            "{}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        for line in String::from_utf8_lossy(&o.stderr).lines() {
            if line.contains("Compiling entry")
                || line.contains("registers")
                || line.contains("spill")
            {
                eprintln!(
                    "{}: {}",
                    src.file_name().unwrap().to_string_lossy(),
                    line.trim()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn reports_whether_a_gpu_is_present() {
    match torchless_kernels::testing::cuda_device() {
        Some(_) => eprintln!("CUDA device 0 present: GPU paths are tested"),
        None => eprintln!("skipped: no CUDA device, GPU paths not exercised (CPU paths are)"),
    }
}
