//! `NVIDIA_REQUIRE_*` against the host: the driver and CUDA versions, and each selected GPU's
//! architecture and brand.

use super::PlanError;
use crate::inventory::{Gpu, Inventory};
use crate::request::{ContainerRequest, HostFacts};

/// Every requirement must hold for every selected GPU (with no GPU, for the host alone).
pub fn check(
    request: &ContainerRequest,
    inventory: &Inventory,
    gpus: &[&Gpu],
) -> Result<(), PlanError> {
    let base = HostFacts {
        cuda: inventory.cuda_version.clone(),
        driver: Some(inventory.driver_version.clone()),
        arch: None,
        brand: None,
    };
    // arch and brand are per GPU: every selected GPU must meet them.
    let per_gpu: Vec<HostFacts> = if gpus.is_empty() {
        vec![base]
    } else {
        gpus.iter()
            .map(|g| HostFacts {
                arch: g.arch.clone(),
                brand: g.brand.clone(),
                ..base.clone()
            })
            .collect()
    };
    for requirement in &request.requirements {
        for facts in &per_gpu {
            if let Err(condition) = requirement.check(facts) {
                let hint = match condition.key {
                    crate::request::RequirementKey::Cuda => {
                        "; update your driver or use an earlier CUDA image".to_string()
                    }
                    _ => String::new(),
                };
                return Err(PlanError::Requirement {
                    name: requirement.name.clone(),
                    text: requirement.text.clone(),
                    condition: condition.to_string(),
                    host: describe_facts(facts),
                    hint,
                });
            }
        }
    }
    Ok(())
}

fn describe_facts(facts: &HostFacts) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &facts.cuda {
        parts.push(format!("cuda {c}"));
    }
    if let Some(d) = &facts.driver {
        parts.push(format!("driver {d}"));
    }
    if let Some(a) = &facts.arch {
        parts.push(format!("arch {a}"));
    }
    if let Some(b) = &facts.brand {
        parts.push(format!("brand {b}"));
    }
    parts.join(", ")
}
