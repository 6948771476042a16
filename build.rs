//! Link settings of the `tpipe` binary: PyTorch's library path for the `torch` feature, and a
//! position-dependent executable on Linux.

#[path = "crates/tpipe-ml/torch_rpath.rs"]
mod torch_rpath;

fn main() {
    torch_rpath::emit_torch_rpath();
    // The binary holds burn's backends (about 100 MB). As a position-independent executable it
    // has some 200,000 relative relocations that the loader applies at every start, touching
    // ~900 pages: 5 ms of a 20 ms no-op run (README, Performance). Linked at a fixed address it
    // starts in under 2 ms. Only the final link changes, so no dependency is rebuilt.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
