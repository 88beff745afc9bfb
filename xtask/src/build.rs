//! Building apps into bootable images with Debian's toolchain and `-Zbuild-std`.

use crate::arch::Arch;
use crate::{Result, root};
use std::path::PathBuf;
use std::process::Command;

/// The apps: every directory under `apps/` with a `Cargo.toml` (the package name is the
/// directory name).
pub fn apps() -> Vec<String> {
    let mut apps: Vec<String> = std::fs::read_dir(root().join("apps"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    apps.sort();
    apps
}

/// Where the guest images are built (separate from the host tools' target directory, so a
/// guest build can run while `cargo test` holds the host one).
pub fn guest_target_dir() -> PathBuf {
    root().join("target/guest")
}

/// The image path of `app` for `arch` (whether or not it is built).
pub fn image_path(app: &str, arch: Arch) -> PathBuf {
    guest_target_dir().join(arch.target()).join("release").join(app)
}

/// The cargo binary of the toolchain `./x` installed (Debian's, with std sources).
pub fn cargo() -> String {
    std::env::var("CARGO").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "/usr/bin/cargo".into())
}

/// Builds `apps` for `arch` and returns their image paths.
///
/// Each app is its own cargo invocation: cargo unifies the features of all packages built
/// together, so building `hello` next to an app that enables `libos/fs-ramfs` would put ramfs
/// into `hello` too. Separate invocations keep every image exactly what its app asked for
/// (cargo caches each feature set of `libos` separately, so rebuilds stay incremental).
pub fn build(apps: &[&str], arch: Arch, quiet: bool) -> Result<Vec<PathBuf>> {
    if !arch.is_supported() {
        return Err(format!("libos has no {arch} platform yet (it arrives with the aarch64 platform issue)").into());
    }
    let known = self::apps();
    for app in apps {
        if !known.iter().any(|k| k == app) {
            return Err(format!("no app `{app}` (apps: {})", known.join(", ")).into());
        }
    }
    if !quiet {
        eprintln!("==> building {} for {arch}", apps.join(", "));
    }
    for app in apps {
        let mut command = Command::new(cargo());
        command
            .current_dir(root())
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["build", "--release", "--target", arch.target()])
            .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
            .arg("--target-dir")
            .arg(guest_target_dir());
        if quiet {
            command.arg("--quiet");
        }
        command.args(["-p", app]);
        let status = command.status().map_err(|e| format!("cannot run {}: {e}", cargo()))?;
        if !status.success() {
            return Err(format!("building {app} for {arch} failed").into());
        }
    }
    Ok(apps.iter().map(|app| image_path(app, arch)).collect())
}

/// Builds one app and returns its image path.
pub fn build_app(app: &str, arch: Arch, quiet: bool) -> Result<PathBuf> {
    Ok(build(&[app], arch, quiet)?.remove(0))
}
