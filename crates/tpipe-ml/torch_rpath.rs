//! Build-script helper shared by tpipe-ml's and tpipe's `build.rs`: with the `torch` feature,
//! records PyTorch's library folder as the binaries' run path, so tests, benches and `tpipe`
//! find libtorch without `LD_LIBRARY_PATH`. torch-sys links libtorch but sets no run path.
//!
//! The folder is found as torch-sys finds it: `$LIBTORCH_LIB/lib` or `$LIBTORCH/lib` when set,
//! else from the Python that `LIBTORCH_USE_PYTORCH=1` points torch-sys at (`python` inside a
//! virtualenv, `python3` otherwise).

use std::path::PathBuf;
use std::process::Command;

pub fn emit_torch_rpath() {
    for variable in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={variable}");
    }
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Some(folder) = torch_lib_folder() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", folder.display());
    } else {
        println!(
            "cargo:warning=could not locate PyTorch's lib folder; set LD_LIBRARY_PATH to it to run"
        );
    }
}

fn torch_lib_folder() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("LIBTORCH_LIB").or_else(|| std::env::var_os("LIBTORCH")) {
        return Some(PathBuf::from(root).join("lib"));
    }
    let python = if std::env::var_os("VIRTUAL_ENV").is_some() {
        "python"
    } else {
        "python3"
    };
    let output = Command::new(python)
        .args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    let folder = String::from_utf8(output.stdout).ok()?;
    let folder = PathBuf::from(folder.trim());
    (output.status.success() && folder.is_dir()).then_some(folder)
}
