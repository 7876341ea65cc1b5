//! A Kubernetes node without the kubelet: a private containerd with its CRI plugin (own root,
//! state and socket; cgroupfs; no CNI, so pods use the host's network), registered with
//! gpuhook the way the README says, and a CRI client that makes the calls the kubelet makes
//! (`k8s-cri`'s generated gRPC client over the Unix socket).
//!
//! Only `tests/cri.rs` includes this module (`#[path]`), so the other test binaries are not
//! compiled against the gRPC crates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::support::engines::{Daemon, Outcome};
use crate::support::{gpuhook_bin, gpuhook_runtime_bin, rootfs_template, sh};

/// The pause image of the sandboxes, also the image of every test container.
pub const IMAGE: &str = "localhost/gpuhook-pause:1";
/// The namespace CRI keeps its containers and images in.
const CRI_NAMESPACE: &str = "k8s.io";
/// Prefix of the node's directory (host mounts below it are the engine's own: see watch.rs).
pub const DIR_PREFIX: &str = "gpuhook-cri-";

/// A private containerd with CRI, and a CRI client for it.
pub struct CriNode {
    pub daemon: Daemon,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    /// Pods not removed yet (removed on drop, before containerd stops).
    pods: std::cell::RefCell<Vec<String>>,
}

/// What a test pod's one container is given, as the kubelet passes it after the device
/// plugin's `Allocate` (env, mounts, annotations).
#[derive(Default, Clone)]
pub struct PodRequest<'a> {
    pub runtime_handler: &'a str,
    pub env: Vec<(String, String)>,
    /// `(host path, container path)`, read-only.
    pub mounts: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// A pod whose container started, and what the container saw.
pub struct PodRun {
    pub container_id: String,
    pub seen: Outcome,
}

impl CriNode {
    /// Starts containerd with `config.toml` made of the node's private settings, then
    /// `gpuhook configure --runtime containerd` over it; gpuhook's config is
    /// `gpuhook_config` (read by every shim and hook run, so a test may rewrite it between
    /// pods). Imports the pause image.
    pub fn start(gpuhook_config: &Path) -> CriNode {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let config = root.join("config.toml");
        std::fs::write(&config, private_containerd_config(&root)).unwrap();
        sh(Command::new(gpuhook_bin())
            .args(["configure", "--runtime", "containerd", "--config"])
            .arg(&config)
            .arg("--runtime-path")
            .arg(gpuhook_runtime_bin()));
        let socket = root.join("containerd.sock");
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(&config)
            .env("GPUHOOK_CONFIG", gpuhook_config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ready_socket = socket.clone();
        let daemon = Daemon::start(dir, command, || {
            ready_socket.exists()
                && runtime
                    .block_on(async {
                        let channel = connect(&ready_socket).await?;
                        RuntimeServiceClient::new(channel)
                            .version(VersionRequest::default())
                            .await
                            .map_err(|e| e.to_string())
                    })
                    .is_ok()
        });
        let channel = runtime.block_on(connect(&socket)).unwrap();
        let node = CriNode {
            daemon,
            runtime,
            channel,
            pods: Default::default(),
        };
        node.import_image();
        node
    }

    pub fn dir(&self) -> &Path {
        self.daemon.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    fn cri(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// Builds the pause image as an OCI archive and imports it as `ctr -n k8s.io images
    /// import` does for an air-gapped node; CRI then lists it.
    fn import_image(&self) {
        let archive = self.dir().join("pause.tar");
        crate::oci_image::write_archive(rootfs_template(), &archive, IMAGE, self.dir());
        sh(Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args([
                "-n",
                CRI_NAMESPACE,
                "images",
                "import",
                "--snapshotter",
                "native",
            ])
            .arg(&archive)
            .stdout(Stdio::null()));
        let listed = self
            .runtime
            .block_on(ImageServiceClient::new(self.channel.clone()).image_status(
                ImageStatusRequest {
                    image: Some(image_spec()),
                    verbose: false,
                },
            ))
            .unwrap();
        assert!(
            listed.into_inner().image.is_some(),
            "CRI does not list the imported {IMAGE}"
        );
    }

    /// RunPodSandbox (handler `request.runtime_handler`), CreateContainer (`sleep`),
    /// StartContainer, then ExecSync of `script`; the pod is left running (see `remove_pod`).
    /// `Err` carries the first failed call's status, as the kubelet would report it.
    pub fn run_pod(
        &self,
        name: &str,
        request: &PodRequest,
        script: &str,
    ) -> Result<PodRun, String> {
        let sandbox = sandbox_config(name, &self.dir().join("pods").join(name));
        let pod_id = self
            .runtime
            .block_on(self.cri().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(sandbox.clone()),
                runtime_handler: request.runtime_handler.to_string(),
            }))
            .map_err(|s| format!("RunPodSandbox: {}", s.message()))?
            .into_inner()
            .pod_sandbox_id;
        self.pods.borrow_mut().push(pod_id.clone());
        let container_id = self
            .runtime
            .block_on(self.cri().create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container_config(name, request)),
                sandbox_config: Some(sandbox),
            }))
            .map_err(|s| format!("CreateContainer: {}", s.message()))?
            .into_inner()
            .container_id;
        self.runtime
            .block_on(self.cri().start_container(StartContainerRequest {
                container_id: container_id.clone(),
            }))
            .map_err(|s| format!("StartContainer: {}", s.message()))?;
        let exec = self
            .runtime
            .block_on(self.cri().exec_sync(ExecSyncRequest {
                container_id: container_id.clone(),
                cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
                timeout: 60,
            }))
            .map_err(|s| format!("ExecSync: {}", s.message()))?
            .into_inner();
        Ok(PodRun {
            container_id,
            seen: Outcome {
                success: exec.exit_code == 0,
                stdout: String::from_utf8_lossy(&exec.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&exec.stderr).into_owned(),
            },
        })
    }

    /// StopPodSandbox then RemovePodSandbox, as the kubelet does when a pod is deleted.
    pub fn remove_pod(&self, pod_id: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.cri().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod_id.to_string(),
            }))
            .map_err(|s| format!("StopPodSandbox: {}", s.message()))?;
        self.runtime
            .block_on(self.cri().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod_id.to_string(),
            }))
            .map_err(|s| format!("RemovePodSandbox: {}", s.message()))?;
        self.pods.borrow_mut().retain(|p| p != pod_id);
        Ok(())
    }

    /// Removes every pod still there (a failed case's), as `remove_pod` does.
    pub fn remove_all_pods(&self) -> Result<(), String> {
        let pods = self.pods.borrow().clone();
        pods.iter().try_for_each(|pod| self.remove_pod(pod))
    }

    /// Mount points below the node's directory (the pods' rootfs and shm mounts while pods
    /// exist).
    pub fn mounts(&self) -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(self.dir()))
            .map(str::to_string)
            .collect()
    }

    /// Processes whose command line names this node's socket (its containerd shims).
    pub fn shims(&self) -> Vec<String> {
        let socket = self.socket().display().to_string();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&socket) && !c.starts_with("containerd --config"))
            .collect()
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        // Shims outlive containerd: take the pods down through CRI first.
        let _ = self.remove_all_pods();
    }
}

async fn connect(socket: &Path) -> Result<Channel, String> {
    let socket = socket.to_path_buf();
    // The URI is a placeholder: the connector dials the Unix socket.
    Endpoint::try_from("http://localhost")
        .map_err(|e| e.to_string())?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

/// containerd 1.6's settings for a node of its own next to whatever else runs here: its own
/// root, state, socket and `opt` directory; a random streaming port (several CRI plugins may
/// run at once); an empty CNI directory (pods use the host's network, so no CNI plugin is
/// called); the `native` snapshotter (overlayfs over the test's tmpfs or overlay `/tmp` is not
/// always possible); the pause image imported above; `restrict_oom_score_adj`, since the CRI
/// plugin gives sandboxes `oomScoreAdj = -998`, which a test machine that is itself a container
/// (no `CAP_SYS_RESOURCE`) cannot set: it keeps scores at or above containerd's own.
fn private_containerd_config(root: &Path) -> String {
    for dir in ["cni/conf", "cni/bin", "pods"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    format!(
        "version = 2\nroot = {:?}\nstate = {:?}\n\n[grpc]\n  address = {:?}\n\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {:?}\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = {IMAGE:?}\n  stream_server_port = \"0\"\n  restrict_oom_score_adj = true\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = {:?}\n  bin_dir = {:?}\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n",
        root.join("root"),
        root.join("state"),
        root.join("containerd.sock"),
        root.join("opt"),
        root.join("cni/conf"),
        root.join("cni/bin"),
    )
}

fn image_spec() -> ImageSpec {
    ImageSpec {
        image: IMAGE.to_string(),
        ..Default::default()
    }
}

/// A pod as the kubelet describes it, with the host's network namespace (no CNI here).
fn sandbox_config(name: &str, log_dir: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An unprivileged container that sleeps (so ExecSync can look inside).
fn container_config(name: &str, request: &PodRequest) -> ContainerConfig {
    let pairs =
        |list: &[(String, String)]| -> HashMap<String, String> { list.iter().cloned().collect() };
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(image_spec()),
        command: vec!["/bin/sleep".into(), "1000000".into()],
        envs: request
            .env
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: request
            .mounts
            .iter()
            .map(|(host, container)| Mount {
                host_path: host.clone(),
                container_path: container.clone(),
                readonly: true,
                ..Default::default()
            })
            .collect(),
        annotations: pairs(&request.annotations),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}
