#[path = "torch_rpath.rs"]
mod torch_rpath;

fn main() {
    torch_rpath::emit_torch_rpath();
}
