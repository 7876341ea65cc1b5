//! The containerd part of `gpuhook doctor`. On a Kubernetes node the kubelet reaches gpuhook
//! only through a runtime handler of containerd's CRI plugin (a RuntimeClass names it), so
//! the config is read the way that plugin reads it, in the file's own format version.

use std::path::Path;

use gpuhook::config::Config;
use gpuhook::configure::containerd::{read_cri_config, CriHandler, RUNC_V2};

use super::Report;

const RUNTIME: &str = "gpuhook-runtime";

/// Checks the runtime handlers of `file` that run gpuhook-runtime.
pub(super) fn check(file: &Path, config: &Config, report: &mut Report) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let cri = match read_cri_config(&text, file) {
        Ok(cri) => cri,
        Err(e) => {
            report.fail(
                &format!("containerd: {e}"),
                "containerd will not start with this file either: fix it, or run gpuhook configure --runtime containerd on a copy to see a valid one",
            );
            return;
        }
    };
    for table in &cri.ignored_cri_tables {
        report.warn(
            &format!(
                "containerd: {} is a version {} file, so containerd ignores its [plugins.{table:?}] tables",
                file.display(),
                cri.version.number()
            ),
            "give the file the version its tables are written for (version = 2 for io.containerd.grpc.v1.cri), or rewrite them",
        );
    }
    let ours: Vec<&CriHandler> = cri
        .handlers
        .iter()
        .filter(|h| {
            h.binary_name
                .as_deref()
                .is_some_and(|b| Path::new(b).file_name() == Some(RUNTIME.as_ref()))
        })
        .collect();
    if ours.is_empty() {
        report.warn(
            &format!("containerd: no gpuhook runtime in {}", file.display()),
            "for Kubernetes (RuntimeClass handler: gpuhook), --runtime=gpuhook and CDI: gpuhook configure --runtime containerd, then restart containerd",
        );
        return;
    }
    for handler in ours {
        check_handler(
            handler,
            cri.default_runtime.as_deref() == Some(handler.name.as_str()),
            file,
            config,
            report,
        );
    }
    if cri.cri_disabled {
        report.warn(
            &format!(
                "containerd: the CRI plugin is in disabled_plugins of {}: no kubelet can use this containerd",
                file.display()
            ),
            "on a Kubernetes node, take it out of disabled_plugins and restart containerd",
        );
    }
}

fn check_handler(
    handler: &CriHandler,
    is_default: bool,
    file: &Path,
    config: &Config,
    report: &mut Report,
) {
    let name = &handler.name;
    let binary = handler.binary_name.as_deref().unwrap_or_default();
    let reconfigure = format!(
        "gpuhook configure --runtime containerd --name {name} --config {}, then restart containerd",
        file.display()
    );
    if !Path::new(binary).is_file() {
        report.fail(
            &format!(
                "containerd: runtime handler {name:?} in {} names {binary}, which does not exist",
                file.display()
            ),
            &format!("reinstall gpuhook, or {reconfigure} (with --runtime-path <path>)"),
        );
        return;
    }
    if handler.runtime_type.as_deref() != Some(RUNC_V2) {
        report.fail(
            &format!(
                "containerd: runtime handler {name:?} has runtime_type {:?}: only {RUNC_V2} runs options.BinaryName",
                handler.runtime_type.as_deref().unwrap_or("")
            ),
            &reconfigure,
        );
        return;
    }
    report.ok(&format!(
        "containerd: runtime registered ({binary}) as CRI runtime handler {name:?}{}: a RuntimeClass with handler: {name} selects it",
        if is_default { ", the default runtime" } else { "" }
    ));
    for prefix in &config.cdi.annotation_prefixes {
        if !handler.passes_annotations(prefix) {
            report.warn(
                &format!("containerd: runtime handler {name:?} does not pass {prefix}* annotations to containers: the device plugin's cdi-annotations strategy cannot work"),
                &format!("add \"{prefix}*\" to its container_annotations ({reconfigure} does it for cdi.k8s.io/)"),
            );
        }
    }
}
