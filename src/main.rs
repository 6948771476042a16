//! The `tpipe` binary: everything lives in the library; this only picks the kinds and maps the
//! result to an exit code.

fn main() -> std::process::ExitCode {
    tpipe::cli::main(tpipe::kinds::builtin_registry())
}
