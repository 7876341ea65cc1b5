//! The container's ld cache updated in-process (`hook.ldcache-update = "in-process"`, the
//! default): the image's `/etc/ld.so.cache` gets an entry for each injected driver library,
//! and each library's directory its soname link, exactly as ldconfig run on those directories
//! would make them (`tests/ldcache_vs_ldconfig.rs` compares the two), without a child process
//! and without scanning the image's directories: the cost follows the request, not the image.
//!
//! What the image gives is read, never followed or run: `/etc` is checked as for ldconfig
//! ([`super::ldconfig::check_etc`]); the cache is opened `O_NOFOLLOW | O_NONBLOCK` through
//! `/etc`'s fd, must be a regular file on the image's own filesystem of at most
//! [`crate::ldcache::MAX_CACHE_BYTES`], and is parsed by the bounded, fuzzed
//! [`crate::ldcache::parse`]. The new cache is written as the container's root into
//! `/etc/ld.so.cache~` (created `O_EXCL | O_NOFOLLOW`) and renamed over the old one, as
//! ldconfig does. Links are created through each directory's fd, never replacing anything.
//!
//! Where ldconfig would do more than add these entries, it runs instead (the reason goes to
//! the log): a directory to index that holds none of the injected libraries (the image's CUDA
//! compat libraries, which only ldconfig reads), a soname name the image already uses for
//! something else, or a cache that is not a regular file or that this parser refuses.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::rootfs::{resolve_error, retry, FsIdentity, Rootfs};
use super::{ldconfig, ApplyError};
use crate::inventory::resolve_in_root;
use crate::ldcache::{self, CacheEntry, LdCache};
use crate::plan::CachedLibrary;

const CACHE_NAME: &str = "ld.so.cache";
/// ldconfig's own temporary name.
const TEMP_NAME: &str = "ld.so.cache~";

/// How the cache was updated.
#[derive(Debug, PartialEq, Eq)]
pub enum Update {
    /// In-process: the cache now holds this many entries.
    InProcess { entries: usize },
    /// Left to ldconfig, for this reason.
    Ldconfig { reason: String },
}

/// A soname link to make: in `dir` (an open directory), `soname` -> `file_name`.
struct Link<'a> {
    dir: &'a OwnedFd,
    library: &'a CachedLibrary,
}

/// Updates the cache for `libraries`, indexed under `dirs`, as the container's root `ids`;
/// or says why ldconfig must do it (nothing was changed then).
pub fn update(
    rootfs: &mut Rootfs,
    libraries: &[CachedLibrary],
    dirs: &[PathBuf],
    ids: (u32, u32),
) -> Result<Update, ApplyError> {
    let ldconfig_for = |reason: String| Ok(Update::Ldconfig { reason });
    if let Some(dir) = dirs
        .iter()
        .find(|d| !libraries.iter().any(|l| &l.dir == *d))
    {
        return ldconfig_for(format!("{} holds the image's own libraries", dir.display()));
    }
    let etc = open_dir(&ldconfig::check_etc(rootfs, ids)?, Path::new("/etc"))?;
    // Each indexed directory on the image's own filesystem, opened once.
    let dir_fds = dirs
        .iter()
        .map(|dir| {
            let fd = resolve_in_root(rootfs.fd(), dir).map_err(|e| resolve_error(dir, e))?;
            rootfs.rules.check(&fd, dir)?;
            Ok((dir, open_dir(&fd, dir)?))
        })
        .collect::<Result<Vec<_>, ApplyError>>()?;
    // The new cache, made before anything is changed (a cache only ldconfig can take sends
    // the work there with the rootfs untouched).
    let added = libraries.iter().map(entry_for).collect();
    let data = match read_image_cache(rootfs, &etc)? {
        // No cache: the driver's entries make a new one.
        Ok(image) => image.unwrap_or_else(|| ldcache::write(&LdCache::default())),
        Err(reason) => return ldconfig_for(reason),
    };
    let new_cache = match LdCache::add_to_bytes(&data, added) {
        Ok(parts) => parts,
        Err(e) => {
            return ldconfig_for(format!(
                "the image's /etc/ld.so.cache is not read in-process: {e}"
            ))
        }
    };
    let mut links = Vec::new();
    for library in libraries.iter().filter(|l| l.soname != l.file_name) {
        let Some((_, dir)) = dir_fds.iter().find(|(d, _)| **d == library.dir) else {
            continue;
        };
        match link_needed(dir, library)? {
            Ok(true) => links.push(Link { dir, library }),
            Ok(false) => {}
            Err(reason) => return ldconfig_for(reason),
        }
    }
    for link in links {
        make_link(rootfs, &link)?;
    }
    write_cache(&etc, &new_cache.slices(), rootfs.owner())?;
    Ok(Update::InProcess {
        entries: ldcache::entry_count(&new_cache.head),
    })
}

/// What ldconfig records for a library: its soname, at `dir/soname`.
fn entry_for(library: &CachedLibrary) -> CacheEntry {
    let path = library.dir.join(&library.soname);
    CacheEntry {
        flags: library.flags,
        soname: library.soname.as_bytes().to_vec(),
        path: path.as_os_str().as_bytes().to_vec(),
        osversion: library.osversion,
        hwcap: 0,
    }
}

/// The image's cache file (`None` when it has none), or why it is left to ldconfig.
fn read_image_cache(
    rootfs: &Rootfs,
    etc: &OwnedFd,
) -> Result<Result<Option<Vec<u8>>, String>, ApplyError> {
    let inner = Path::new("/etc/ld.so.cache");
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match retry(|| rustix::fs::openat(etc, CACHE_NAME, flags, Mode::empty())) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Ok(None)),
        Err(Errno::LOOP) => return Ok(Err("the image's /etc/ld.so.cache is a symlink".into())),
        Err(e) => return Err(ApplyError::io(format!("open {}", inner.display()), e)),
    };
    let stat = rustix::fs::fstat(&fd)
        .map_err(|e| ApplyError::io(format!("stat {}", inner.display()), e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(Err(
            "the image's /etc/ld.so.cache is not a regular file".into()
        ));
    }
    let limit = ldcache::MAX_CACHE_BYTES as u64;
    if stat.st_size as u64 > limit {
        return Ok(Err(format!(
            "the image's /etc/ld.so.cache holds {} bytes (this reader takes at most {limit})",
            stat.st_size
        )));
    }
    rootfs.rules.check(&fd, inner)?;
    let mut data = Vec::with_capacity(stat.st_size as usize);
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|source| ApplyError::Io {
            what: format!("read {}", inner.display()),
            source,
        })?;
    Ok(Ok(Some(data)))
}

/// Whether `library`'s soname link must be made (`false`: the image, or an earlier run, has it
/// already); or why ldconfig must decide (the name holds something else).
fn link_needed(dir: &OwnedFd, library: &CachedLibrary) -> Result<Result<bool, String>, ApplyError> {
    let path = library.dir.join(&library.soname);
    match retry(|| rustix::fs::readlinkat(dir, library.soname.as_str(), Vec::new())) {
        Err(Errno::NOENT) => Ok(Ok(true)),
        Ok(target) if target.as_bytes() == library.file_name.as_bytes() => Ok(Ok(false)),
        Ok(target) => Ok(Err(format!(
            "the image's {} is a link to {}",
            path.display(),
            target.to_string_lossy()
        ))),
        Err(Errno::INVAL) => Ok(Err(format!(
            "the image's {} is a file, not a link",
            path.display()
        ))),
        Err(e) => Err(ApplyError::io(
            format!("read the link {}", path.display()),
            e,
        )),
    }
}

fn make_link(rootfs: &mut Rootfs, link: &Link) -> Result<(), ApplyError> {
    let library = link.library;
    let made = {
        let _as_owner = FsIdentity::become_(rootfs.owner());
        retry(|| {
            rustix::fs::symlinkat(
                library.file_name.as_str(),
                link.dir,
                library.soname.as_str(),
            )
        })
    };
    made.map_err(|e| {
        let path = library.dir.join(&library.soname);
        ApplyError::io(format!("make the soname link {}", path.display()), e)
    })?;
    let parent = link.dir.try_clone().map_err(|source| ApplyError::Io {
        what: "duplicate a descriptor".into(),
        source,
    })?;
    rootfs.record_created(parent, OsStr::new(&library.soname));
    Ok(())
}

/// Writes `parts` (one after the other) to `/etc/ld.so.cache~` as the container's root and
/// renames it over `/etc/ld.so.cache`; the temporary file is gone whatever fails.
fn write_cache(etc: &OwnedFd, parts: &[&[u8]], owner: (u32, u32)) -> Result<(), ApplyError> {
    let io = |what: &str, e: Errno| ApplyError::io(format!("{what} /etc/{TEMP_NAME}"), e);
    let _as_owner = FsIdentity::become_(owner);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let create = || retry(|| rustix::fs::openat(etc, TEMP_NAME, flags, Mode::from_raw_mode(0o644)));
    let fd = match create() {
        // A leftover of an interrupted ldconfig (or of an image's author).
        Err(Errno::EXIST) => {
            retry(|| rustix::fs::unlinkat(etc, TEMP_NAME, AtFlags::empty()))
                .map_err(|e| io("remove", e))?;
            create()
        }
        other => other,
    }
    .map_err(|e| io("create", e))?;
    // Blocks allocated up front: ext4 flushes a delay-allocated file renamed over another
    // (its auto_da_alloc), which made replacing a large image's cache cost milliseconds.
    // Best effort: a filesystem without fallocate gets the plain write.
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let _ = rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len as u64);
    let written = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644))
        .map_err(|e| io("chmod", e))
        .and_then(|()| {
            let mut file = std::fs::File::from(fd);
            parts
                .iter()
                .try_for_each(|part| file.write_all(part))
                .map_err(|source| ApplyError::Io {
                    what: format!("write /etc/{TEMP_NAME}"),
                    source,
                })
        })
        .and_then(|()| {
            retry(|| rustix::fs::renameat(etc, TEMP_NAME, etc, CACHE_NAME))
                .map_err(|e| io("rename", e))
        });
    if written.is_err() {
        let _ = rustix::fs::unlinkat(etc, TEMP_NAME, AtFlags::empty());
    }
    written
}

/// A readable directory fd for the `O_PATH` fd `fd` of `inner`.
fn open_dir(fd: &OwnedFd, inner: &Path) -> Result<OwnedFd, ApplyError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    retry(|| rustix::fs::openat(fd, ".", flags, Mode::empty()))
        .map_err(|e| ApplyError::io(format!("open the directory {}", inner.display()), e))
}
