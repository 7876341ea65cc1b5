//! gpuhook: gives OCI containers NVIDIA GPUs.
//!
//! One pipeline serves every entry point: [`request`] (what the container asks for) and
//! [`inventory`] (what the host has) feed [`plan`] (what goes where, a plain value), which an
//! applier in [`apply`] makes real inside the container.

pub mod accounting;
pub mod apply;
pub mod arch;
pub mod catalog;
pub mod cdi;
pub mod config;
pub mod configure;
pub mod container;
pub mod elf;
pub mod fsutil;
pub mod hook;
pub mod inventory;
pub mod ldcache;
pub mod limits;
pub mod log;
pub mod memcap;
pub mod mps;
pub mod plan;
pub mod request;
pub mod runtime;
pub mod userns;
pub mod vendor;
