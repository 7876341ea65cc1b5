//! The hook's configuration file (`/etc/gpuhook/config.toml`).
//!
//! Every key has a default, so an absent file means "all defaults". Key names follow the
//! incumbent's `config.toml` where one exists, so operators can carry their settings over.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::request::DriverCapability;

/// Where the config is read from when neither `--config` nor `GPUHOOK_CONFIG` names a file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gpuhook/config.toml";
/// Environment variable that overrides [`DEFAULT_CONFIG_PATH`] (used by tests and packagers).
pub const CONFIG_ENV: &str = "GPUHOOK_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration. Field docs are the reference for `config/config.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Skip every `NVIDIA_REQUIRE_*` check, as if each container set `NVIDIA_DISABLE_REQUIRE`.
    pub disable_require: bool,
    /// Capabilities a container may receive; requests for others are dropped, `all` means these.
    pub supported_driver_capabilities: Vec<DriverCapability>,
    /// Honour `NVIDIA_VISIBLE_DEVICES` from containers without `CAP_SYS_ADMIN`.
    pub accept_nvidia_visible_devices_envvar_when_unprivileged: bool,
    /// Honour the volume-mount request channel (`/var/run/nvidia-container-devices/<dev>`).
    pub accept_nvidia_visible_devices_as_volume_mounts: bool,
    /// Where driver files, device nodes and driver state are read from.
    pub driver: DriverConfig,
    /// How the hook changes the container.
    pub hook: HookConfig,
    /// Logging.
    pub log: LogConfig,
    /// The runtime shim (`gpuhook-runtime`).
    pub runtime: RuntimeConfig,
    /// CDI: spec directories and how requests name CDI devices.
    pub cdi: CdiConfig,
    /// GPU memory caps and compute shares.
    pub memory: crate::memcap::MemoryConfig,
}

/// How the runtime shim gives a container its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeMode {
    /// CDI when the request names CDI devices (`nvidia.com/gpu=0`, CDI annotations), else
    /// legacy.
    Auto,
    /// Add the gpuhook prestart hook (and the GPUs' device rules) to the spec.
    Legacy,
    /// Apply CDI specs; bare names (`0`, `all`) get `cdi.default-kind`.
    Cdi,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CdiConfig {
    /// Where CDI specs are read from; later directories win for the same device.
    pub spec_dirs: Vec<PathBuf>,
    /// Kind for bare device names in cdi mode, and of the specs `gpuhook cdi generate` writes.
    pub default_kind: String,
    /// Annotation key prefixes whose values are CDI device names.
    pub annotation_prefixes: Vec<String>,
}

impl Default for CdiConfig {
    fn default() -> Self {
        CdiConfig {
            spec_dirs: vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")],
            default_kind: "nvidia.com/gpu".into(),
            annotation_prefixes: vec!["cdi.k8s.io/".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// Low-level runtimes to exec, the first found wins: names are looked up in `PATH`,
    /// absolute paths are taken as they are.
    pub runtimes: Vec<String>,
    /// The hook the shim adds to GPU containers' specs. Empty: the `gpuhook` next to
    /// `gpuhook-runtime`, else `/usr/bin/gpuhook`.
    pub hook_path: PathBuf,
    /// `auto`, `legacy` or `cdi`.
    pub mode: RuntimeMode,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            runtimes: ["docker-runc", "runc", "crun"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            hook_path: PathBuf::new(),
            mode: RuntimeMode::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriverConfig {
    /// Root of the driver installation: `/` for distro packages, `/run/nvidia/driver` under
    /// the GPU Operator. Its `etc/ld.so.cache` lists the driver libraries.
    pub root: PathBuf,
    /// Directory holding the NVIDIA device nodes (`nvidia0`, `nvidiactl`, ...).
    pub dev_root: PathBuf,
    /// The driver's procfs directory (`version`, `gpus/<bus id>/information`).
    pub proc_driver_root: PathBuf,
    /// Where sysfs is: each GPU's DRM nodes are listed in
    /// `bus/pci/devices/<bus id>/drm/{card<N>,renderD<N>}` under it (graphics, display).
    pub sysfs_root: PathBuf,
    /// Directories, inside `root`, searched in order for the driver's utilities.
    pub binary_dirs: Vec<PathBuf>,
    /// Directories, inside `root`, searched for `nvidia/<version>/gsp*.bin`.
    pub firmware_dirs: Vec<PathBuf>,
    /// The ld cache, inside `root`, that lists the driver libraries.
    pub ldcache: PathBuf,
    /// Directories, inside `root`, under which the graphics loaders' files are searched
    /// (`vulkan/icd.d/nvidia_icd.json`, `glvnd/egl_vendor.d/10_nvidia.json`, ...).
    pub share_dirs: Vec<PathBuf>,
    /// Directories, inside `root`, holding the X server's modules (`drivers/nvidia_drv.so`,
    /// `extensions/libglxserver_nvidia.so.<version>`) for the `display` capability.
    pub xorg_module_dirs: Vec<PathBuf>,
    /// The host's MPS pipe directory (where `nvidia-cuda-mps-control -d` was started with
    /// `CUDA_MPS_PIPE_DIRECTORY`), inside `root`.
    pub mps_pipe_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HookConfig {
    /// ldconfig that rebuilds the container's ld cache. `@/sbin/ldconfig` is a host path (the
    /// only kind accepted: a container's binary never runs as root on the host).
    pub ldconfig: String,
    /// Leave the device cgroup alone (for runtimes that manage device rules from the spec).
    pub no_cgroups: bool,
    /// Directory holding the cgroup hierarchies on the host.
    pub cgroup_root: PathBuf,
    /// Where CUDA images keep the forward-compatibility driver libraries (inside the
    /// container); empty: never use them.
    pub cuda_compat_dir: PathBuf,
    /// Seconds the ldconfig child may run before it is killed and the start fails.
    pub ldconfig_timeout: u64,
    /// How the container's ld cache gets the driver libraries.
    pub ldcache_update: LdcacheUpdate,
}

/// `hook.ldcache-update`: see [`crate::apply::ld_cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LdcacheUpdate {
    /// Add the libraries' entries to the image's cache in the hook (ldconfig where needed).
    InProcess,
    /// Always rebuild the cache with the confined host ldconfig.
    Ldconfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// File the hook appends one line per container to; empty: no log file.
    pub file: PathBuf,
    /// `error`, `warn`, `info` or `debug`.
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            disable_require: false,
            supported_driver_capabilities: DriverCapability::ALL.to_vec(),
            accept_nvidia_visible_devices_envvar_when_unprivileged: true,
            accept_nvidia_visible_devices_as_volume_mounts: false,
            driver: DriverConfig::default(),
            hook: HookConfig::default(),
            log: LogConfig::default(),
            runtime: RuntimeConfig::default(),
            cdi: CdiConfig::default(),
            memory: crate::memcap::MemoryConfig::default(),
        }
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            root: PathBuf::from("/"),
            dev_root: PathBuf::from("/dev"),
            proc_driver_root: PathBuf::from("/proc/driver/nvidia"),
            sysfs_root: PathBuf::from("/sys"),
            // `/usr/local/nvidia/bin` is where GKE-style and our GPU machine's drivers live.
            binary_dirs: [
                "/usr/bin",
                "/usr/sbin",
                "/bin",
                "/sbin",
                "/usr/local/nvidia/bin",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            share_dirs: ["/etc", "/usr/share", "/usr/local/nvidia/share"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            xorg_module_dirs: [
                "/usr/lib/xorg/modules",
                "/usr/lib64/xorg/modules",
                "/usr/local/nvidia/lib64/xorg/modules",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            mps_pipe_dir: PathBuf::from("/tmp/nvidia-mps"),
            firmware_dirs: [
                "/lib/firmware",
                "/usr/lib/firmware",
                "/usr/local/nvidia/firmware",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            ldcache: PathBuf::from("/etc/ld.so.cache"),
        }
    }
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            ldconfig: "@/sbin/ldconfig".to_string(),
            no_cgroups: false,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cuda_compat_dir: PathBuf::from("/usr/local/cuda/compat"),
            ldconfig_timeout: 10,
            ldcache_update: LdcacheUpdate::InProcess,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            file: PathBuf::from("/var/log/gpuhook.log"),
            level: LogLevel::Info,
        }
    }
}

impl Config {
    /// Parses a config file's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Loads `path`; a missing file at the default location means all defaults, a missing
    /// file that was named explicitly is an error (a typo must not silently drop settings).
    pub fn load(path: &Path, explicitly_named: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicitly_named => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The host ldconfig path, with the `@` (host path) marker removed.
    pub fn host_ldconfig(&self) -> &Path {
        Path::new(self.hook.ldconfig.trim_start_matches('@'))
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if !self.hook.ldconfig.starts_with("@/") {
            return Err(invalid(format!(
                "hook.ldconfig = {:?}: must be a host path written as \"@/absolute/path\"; \
                 running the container's own ldconfig as root on the host is refused",
                self.hook.ldconfig
            )));
        }
        if self.hook.ldconfig_timeout == 0 {
            return Err(invalid(
                "hook.ldconfig-timeout = 0: must be at least 1 (seconds)".into(),
            ));
        }
        if let Some(problem) = self.memory.problem() {
            return Err(invalid(problem));
        }
        let absolute_keys: [(&str, &Path); 6] = [
            ("driver.root", &self.driver.root),
            ("driver.dev-root", &self.driver.dev_root),
            ("driver.proc-driver-root", &self.driver.proc_driver_root),
            ("driver.sysfs-root", &self.driver.sysfs_root),
            ("driver.ldcache", &self.driver.ldcache),
            ("hook.cgroup-root", &self.hook.cgroup_root),
        ];
        for (key, value) in absolute_keys {
            if !value.is_absolute() {
                return Err(invalid(format!(
                    "{key} = {value:?}: must be an absolute path"
                )));
            }
        }
        Ok(())
    }
}

/// toml's messages span several lines (a source excerpt); users get one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^'))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("", Path::new("x.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.host_ldconfig(), Path::new("/sbin/ldconfig"));
    }

    #[test]
    fn shipped_config_file_matches_the_defaults() {
        let text = include_str!("../config/config.toml");
        let config = Config::parse(text, Path::new("config/config.toml")).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn keys_are_read() {
        let config = Config::parse(
            "accept-nvidia-visible-devices-as-volume-mounts = true\n\
             supported-driver-capabilities = [\"utility\"]\n\
             [driver]\nroot = \"/run/nvidia/driver\"\n\
             [hook]\nno-cgroups = true\n[log]\nlevel = \"debug\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert!(config.accept_nvidia_visible_devices_as_volume_mounts);
        assert_eq!(
            config.supported_driver_capabilities,
            vec![DriverCapability::Utility]
        );
        assert_eq!(config.driver.root, PathBuf::from("/run/nvidia/driver"));
        assert!(config.hook.no_cgroups);
        assert_eq!(config.log.level, LogLevel::Debug);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[driver]\nrot = \"/\"\n", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rot"), "{msg}");
        assert!(msg.contains("c.toml"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::parse("[hook]\nno-cgroups = \"yes\"\n", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no-cgroups"), "{msg}");
    }

    #[test]
    fn unknown_capability_is_refused() {
        let err = Config::parse(
            "supported-driver-capabilities = [\"gaming\"]\n",
            Path::new("c"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("gaming"), "{err}");
    }

    #[test]
    fn container_ldconfig_is_refused() {
        let err =
            Config::parse("[hook]\nldconfig = \"/sbin/ldconfig\"\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("hook.ldconfig"), "{err}");
    }

    #[test]
    fn relative_driver_root_is_refused() {
        let err = Config::parse("[driver]\nroot = \"driver\"\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("driver.root"), "{err}");
    }

    #[test]
    fn missing_default_file_is_defaults_but_missing_named_file_is_an_error() {
        let missing = Path::new("/nonexistent/gpuhook.toml");
        assert_eq!(Config::load(missing, false).unwrap(), Config::default());
        assert!(Config::load(missing, true).is_err());
    }
}
