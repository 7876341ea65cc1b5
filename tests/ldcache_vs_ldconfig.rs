//! The in-process ld cache update against glibc's own ldconfig, on real caches: this machine's
//! libraries, indexed by its ldconfig with its own `/etc/ld.so.conf`, are the "image"; fake
//! driver libraries with real sonames (built here) are injected. Extending the image's cache
//! in-process must give exactly the entries, in exactly the order, that ldconfig run with the
//! driver directory on its command line gives; and glibc's own cache reader must read it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gpuhook::ldcache::{self, CacheEntry, LdCache};
use support::*;

struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(name: &str) -> Work {
        let dir =
            std::env::temp_dir().join(format!("gpuhook-ldcache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Work { dir }
    }

    /// A shared library `file` in `dir` with soname `soname`.
    fn library(&self, dir: &str, file: &str, soname: &str) -> PathBuf {
        let dir = self.dir.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let source = self.dir.join("f.c");
        std::fs::write(&source, "int gpuhook_test_symbol(void) { return 1; }\n").unwrap();
        sh(Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.join(file))
            .arg(format!("-Wl,-soname,{soname}"))
            .arg(&source));
        dir
    }

    /// ldconfig's cache of `conf`'s directories (and `first`, on its command line).
    fn ldconfig(&self, name: &str, conf: &Path, first: &[&Path]) -> Vec<u8> {
        let out = self.dir.join(name);
        sh(Command::new(ldconfig_path())
            .arg("-X")
            .arg("-f")
            .arg(conf)
            .arg("-C")
            .arg(&out)
            .args(first));
        std::fs::read(out).unwrap()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ldconfig_path() -> PathBuf {
    [
        "/sbin/ldconfig.real",
        "/sbin/ldconfig",
        "/usr/sbin/ldconfig",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("ldconfig")
}

fn prerequisites_here(test: &str) -> bool {
    let have = which("gcc").is_some() && Path::new("/etc/ld.so.conf").is_file();
    if !have && std::env::var_os("CI").is_some() {
        panic!("{test}: needs gcc and the system's /etc/ld.so.conf");
    }
    if !have {
        eprintln!("\n!!!!!!!! {test}: NOT RUN: needs gcc and /etc/ld.so.conf !!!!!!!!\n");
    }
    have
}

/// What the hook adds for a driver directory: the entries the driver root's cache lists for
/// its libraries (their flags and OS version, as the inventory reads them), at `dir/soname`.
fn driver_entries(work: &Work, driver_dir: &Path) -> Vec<CacheEntry> {
    let empty = work.dir.join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let host = ldcache::parse(&work.ldconfig("host.cache", &empty, &[driver_dir])).unwrap();
    let prefix = format!("{}/", driver_dir.display());
    host.entries
        .into_iter()
        .filter(|e| e.path.starts_with(prefix.as_bytes()))
        .collect()
}

fn show(cache: &LdCache) -> Vec<String> {
    cache
        .entries
        .iter()
        .map(|e| {
            format!(
                "{} {:#x} {} os={} hwcap={:#x}",
                String::from_utf8_lossy(&e.soname),
                e.flags,
                String::from_utf8_lossy(&e.path),
                e.osversion,
                e.hwcap
            )
        })
        .collect()
}

#[test]
fn extending_a_real_cache_gives_what_ldconfig_gives() {
    if !prerequisites_here("extending_a_real_cache_gives_what_ldconfig_gives") {
        return;
    }
    let work = Work::new("real");
    // One with a soname link to make, one whose file is its soname, one with a long name.
    let driver = work.library("drv", "libcuda.so.580.159.04", "libcuda.so.1");
    work.library("drv", "libnvidia-ml.so.580.159.04", "libnvidia-ml.so.1");
    work.library(
        "drv",
        "libnvidia-gpucomp.so.580.159.04",
        "libnvidia-gpucomp.so.580.159.04",
    );
    let conf = Path::new("/etc/ld.so.conf");
    let image = work.ldconfig("image.cache", conf, &[]);
    let expected = ldcache::parse(&work.ldconfig("expected.cache", conf, &[&driver])).unwrap();

    let mut cache = ldcache::parse(&image).unwrap();
    assert!(
        cache.entries.len() > 20,
        "a real cache: {} entries",
        cache.entries.len()
    );
    let added = driver_entries(&work, &driver);
    assert_eq!(added.len(), 3, "{added:?}");
    cache.add(added);
    let ours = work.dir.join("ours.cache");
    std::fs::write(&ours, ldcache::write(&cache)).unwrap();
    let ours_read = ldcache::parse(&std::fs::read(&ours).unwrap()).unwrap();
    assert_eq!(show(&ours_read), show(&expected));
    assert_eq!(ours_read.generator, expected.generator);

    // glibc's own reader takes the file and finds the driver's libraries in it.
    let printed = sh(Command::new(ldconfig_path()).arg("-p").arg("-C").arg(&ours));
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.starts_with(&format!("{} libs found in cache", expected.entries.len())),
        "{printed}"
    );
    let libcuda = format!(
        "libcuda.so.1 (libc6,x86-64) => {}/libcuda.so.1",
        driver.display()
    );
    assert!(printed.contains(&libcuda), "{printed}");
}

#[test]
fn an_image_library_of_the_same_soname_comes_after_the_drivers_as_with_ldconfig() {
    if !prerequisites_here(
        "an_image_library_of_the_same_soname_comes_after_the_drivers_as_with_ldconfig",
    ) {
        return;
    }
    let work = Work::new("same-soname");
    let driver = work.library("drv", "libcuda.so.580.159.04", "libcuda.so.1");
    // The image's own libcuda.so.1 (an old copy, or the compat package) in a directory its
    // ld.so.conf lists, and an older soname beside it.
    let image_dir = work.library("image-lib", "libcuda.so.470.1", "libcuda.so.1");
    work.library("image-lib", "libnvidia-ml.so.470.1", "libnvidia-ml.so.1");
    let conf = work.dir.join("image.conf");
    std::fs::write(
        &conf,
        format!("{}\ninclude /etc/ld.so.conf\n", image_dir.display()),
    )
    .unwrap();
    let image = work.ldconfig("image.cache", &conf, &[]);
    let expected = ldcache::parse(&work.ldconfig("expected.cache", &conf, &[&driver])).unwrap();

    let mut cache = ldcache::parse(&image).unwrap();
    cache.add(driver_entries(&work, &driver));
    let ours = ldcache::parse(&ldcache::write(&cache)).unwrap();
    assert_eq!(show(&ours), show(&expected));
    let first_libcuda = ours
        .entries
        .iter()
        .find(|e| e.soname == b"libcuda.so.1")
        .unwrap();
    assert!(first_libcuda
        .path
        .starts_with(driver.to_str().unwrap().as_bytes()));
}
