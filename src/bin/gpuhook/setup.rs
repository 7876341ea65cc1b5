//! `gpuhook configure` and `gpuhook install`: registering gpuhook with the container engines.

use std::path::Path;
use std::process::ExitCode;

use gpuhook::configure::{self, Engine, Registration};

use crate::{fail, COMPAT_HOOK_NAME};

pub fn configure(
    engine: Engine,
    path: &Path,
    registration: &Registration,
    dry_run: bool,
) -> ExitCode {
    if dry_run {
        let rendered = configure::read_current(path).and_then(|current| {
            configure::render(engine, current.as_deref().unwrap_or(""), path, registration)
        });
        return match rendered {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(None, &e.to_string()),
        };
    }
    match configure::apply(engine, path, registration) {
        Ok(configure::Outcome::AlreadyConfigured) => {
            println!(
                "{}: runtime {:?} already configured; nothing changed",
                path.display(),
                registration.name
            );
            ExitCode::SUCCESS
        }
        Ok(configure::Outcome::Written { backup }) => {
            let backup = backup
                .map(|b| format!(" (previous file saved as {})", b.display()))
                .unwrap_or_default();
            println!(
                "{}: runtime {:?} added{backup}; {}",
                path.display(),
                registration.name,
                engine.restart_hint()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(None, &e.to_string()),
    }
}

pub fn unconfigure(engine: Engine, path: &Path, name: &str, dry_run: bool) -> ExitCode {
    if dry_run {
        let rendered = configure::read_current(path).and_then(|current| {
            configure::render_removal(engine, current.as_deref().unwrap_or(""), path, name)
        });
        return match rendered {
            Ok(Some(text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!("{}: would be removed (nothing else in it)", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(None, &e.to_string()),
        };
    }
    match configure::apply_removal(engine, path, name) {
        Ok(configure::Removal::NotPresent) => {
            println!("{}: no runtime {name:?}; nothing changed", path.display());
            ExitCode::SUCCESS
        }
        Ok(configure::Removal::Written) => {
            println!(
                "{}: runtime {name:?} removed; {}",
                path.display(),
                engine.restart_hint()
            );
            ExitCode::SUCCESS
        }
        Ok(configure::Removal::FileRemoved) => {
            println!(
                "{}: removed (runtime {name:?} was all it held); {}",
                path.display(),
                engine.restart_hint()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(None, &e.to_string()),
    }
}

pub fn install(bin_dir: &Path, force: bool) -> ExitCode {
    let Ok(own) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return fail(None, "cannot find this gpuhook binary's path");
    };
    let link = bin_dir.join(COMPAT_HOOK_NAME);
    if let Ok(existing) = link.canonicalize() {
        if existing == own {
            println!("{} already points at {}", link.display(), own.display());
            return ExitCode::SUCCESS;
        }
        if !force {
            return fail(None, &format!(
                "{} exists and is not gpuhook (NVIDIA's nvidia-container-toolkit package?): remove that package, or pass --force to replace it",
                link.display()
            ));
        }
    }
    let _ = std::fs::remove_file(&link);
    match std::os::unix::fs::symlink(&own, &link) {
        Ok(()) => {
            println!(
                "{} -> {}; restart dockerd so `docker run --gpus` finds it",
                link.display(),
                own.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(None, &format!("cannot create {}: {e}", link.display())),
    }
}
