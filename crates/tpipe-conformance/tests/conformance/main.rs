//! tpipe-ml's training paths against each other and against PyTorch, step by step.
//!
//! PyTorch comes from `TPIPE_TORCH_PYTHON`, the virtualenv `.ci/run` keeps, or `python3`; where
//! none has torch the PyTorch tests say so and pass, unless `TPIPE_REQUIRE_TORCH` is set (CI).

mod fuzzed;
mod paper_net;
mod support;
