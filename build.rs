//! With the `cuda` feature, compiles lore's own CUDA kernels (`src/adapt/kernels.cu`) to PTX
//! with `nvcc` (see docs/benchmarks.md, "Adapt on a GPU", for the toolchain). The default
//! build needs nothing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // The `lore` binary is linked position-dependent on Linux: a position-independent one has
    // about 60,000 relocations for the loader to apply on every start (0.7 ms of each `lore`
    // command; docs/benchmarks.md, "`lore blame` against `git blame --porcelain`"). Libraries
    // are still loaded at random addresses.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/adapt/kernels.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("adapt_kernels.ptx");
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&out)
        .arg("src/adapt/kernels.cu")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{nvcc} failed on src/adapt/kernels.cu ({s})"),
        Err(e) => panic!(
            "the cuda feature needs nvcc to build src/adapt/kernels.cu ({nvcc}: {e}); \
             see docs/benchmarks.md"
        ),
    }
}
