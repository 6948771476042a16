//! Choosing the burn device a run executes on.

use burn::tensor::Device;

use crate::error::MlError;

/// Which backend runs the work: the one enum tpipe's kinds and command line use too (it lives in
/// `tpipe-backend`, a crate all of them can see; this crate names it `BackendChoice`).
pub use tpipe_backend::Backend as BackendChoice;

/// A device ready for work and the name reports show for it.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedBackend {
    /// The device without autodiff.
    pub device: Device,
    /// `native`, `flex`, `torch`, or `wgpu (<adapter name>)`.
    pub name: String,
    /// Whether the native CPU path runs the work instead of burn on `device`.
    pub native: bool,
}

/// Whether this build contains the wgpu backend.
pub fn wgpu_compiled() -> bool {
    cfg!(feature = "wgpu")
}

/// Whether this build contains the LibTorch backend.
pub fn torch_compiled() -> bool {
    cfg!(feature = "torch")
}

/// The device for `choice`. Every run starts here, so this is also where the process-wide
/// allocator tuning happens.
pub(crate) fn resolve(choice: BackendChoice) -> Result<ResolvedBackend, MlError> {
    crate::allocator::tune_for_training();
    match choice {
        BackendChoice::Flex => Ok(flex()),
        BackendChoice::Native => Ok(native()),
        BackendChoice::Torch => torch(),
        BackendChoice::Cpu => fastest_cpu(),
        BackendChoice::Wgpu => wgpu(),
        BackendChoice::Auto => {
            if wgpu_compiled() && gpu_adapter_present() {
                wgpu()
            } else {
                fastest_cpu()
            }
        }
    }
}

/// The native path: it trains the grid's nets faster than flex and than LibTorch (see the
/// README's "Performance").
fn fastest_cpu() -> Result<ResolvedBackend, MlError> {
    Ok(native())
}

#[cfg(feature = "torch")]
// burn 0.22 marks burn-tch deprecated in favour of its CubeCL CPU backend, which cannot build
// here (its build script downloads LLVM); tpipe-ml pins burn 0.22.1, where burn-tch works.
#[allow(deprecated)]
fn torch() -> Result<ResolvedBackend, MlError> {
    Ok(ResolvedBackend {
        device: Device::libtorch(),
        name: "torch".to_string(),
        native: false,
    })
}

#[cfg(not(feature = "torch"))]
fn torch() -> Result<ResolvedBackend, MlError> {
    Err(MlError::BackendUnavailable {
        backend: "torch",
        reason: "this build lacks it (hint: build tpipe with `--features torch` against PyTorch \
                 2.9.0, see the README's \"Performance\")"
            .to_string(),
    })
}

fn flex() -> ResolvedBackend {
    ResolvedBackend {
        device: Device::flex(),
        name: "flex".to_string(),
        native: false,
    }
}

fn native() -> ResolvedBackend {
    ResolvedBackend {
        // Not used for the work; a device keeps `ResolvedBackend` one shape for every path.
        device: Device::flex(),
        name: "native".to_string(),
        native: true,
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<ResolvedBackend, MlError> {
    Err(MlError::BackendUnavailable {
        backend: "wgpu",
        reason: "this build lacks it (hint: build tpipe-ml with `--features wgpu`)".to_string(),
    })
}

#[cfg(not(feature = "wgpu"))]
fn gpu_adapter_present() -> bool {
    false
}

/// The wgpu device, initialised once per process: burn refuses to initialise a wgpu runtime
/// twice, and its first use costs shader compilation anyway.
#[cfg(feature = "wgpu")]
fn wgpu() -> Result<ResolvedBackend, MlError> {
    use std::sync::OnceLock;
    /// Why wgpu could not start, kept for every later call in the process.
    #[derive(Clone)]
    struct WgpuFailed(String);
    static DEVICE: OnceLock<Result<ResolvedBackend, WgpuFailed>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let attempt = std::panic::catch_unwind(|| {
                let device = Device::wgpu_options()
                    .init()
                    .map_err(|error| WgpuFailed(format!("{error}")))?;
                let adapter = device
                    .identity()
                    .map(|identity| identity.name)
                    .unwrap_or_else(|| "unknown adapter".to_string());
                Ok(ResolvedBackend {
                    device,
                    name: format!("wgpu ({adapter})"),
                    native: false,
                })
            });
            attempt.unwrap_or_else(|panic| Err(WgpuFailed(panic_message(&panic))))
        })
        .clone()
        .map_err(|WgpuFailed(reason)| MlError::BackendUnavailable {
            backend: "wgpu",
            reason: format!(
                "{reason} (hint: install a Vulkan driver; `mesa-vulkan-drivers` gives lavapipe \
                 on the CPU, selected with CUBECL_WGPU_DEFAULT_DEVICE=Cpu)"
            ),
        })
}

/// Whether wgpu sees an adapter other than a software rasteriser. Enumerating does not open
/// the devices, so this is cheap after the first call's adapter probe.
#[cfg(feature = "wgpu")]
fn gpu_adapter_present() -> bool {
    use burn::tensor::{DeviceKind, DeviceType};
    use std::sync::OnceLock;
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let software = Device::wgpu(DeviceKind::Cpu);
            Device::enumerate(DeviceType::Wgpu)
                .into_iter()
                .any(|device| device != software)
        })
        .unwrap_or(false)
    })
}

#[cfg(feature = "wgpu")]
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "the backend panicked".to_string())
}
