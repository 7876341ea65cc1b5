//! CDI: the Container Device Interface. `generate` writes gpuhook's plan as a CDI spec;
//! `registry` reads specs from the spec directories and resolves device names into the edits
//! the runtime shim applies in `cdi` mode.

pub mod generate;
pub mod hooks;
pub mod registry;
pub mod spec;
pub mod vendor;

pub use generate::{
    generate, generate_imex_channels, DeviceNameStrategy, GenerateOptions, Generated,
    IMEX_CHANNEL_KIND,
};
pub use registry::{CdiError, Registry};
pub use spec::Spec;
