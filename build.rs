//! Only for the `torch` feature: lets `tpipe` find PyTorch's libraries at run time.

#[path = "crates/tpipe-ml/torch_rpath.rs"]
mod torch_rpath;

fn main() {
    torch_rpath::emit_torch_rpath();
}
