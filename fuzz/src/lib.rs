//! Shared parts of the fuzz targets: the simulated host, the fuzzed policy, and checks of
//! invariants (requirement laws, what an edit of the tenant's tree may change).

pub mod json_tree;
pub mod laws;
pub mod policy;
pub mod sim;
