//! Real servers: unmodified, event-driven C programs from Debian, built from their Debian
//! source packages as static musl programs for x86_64 and aarch64, to run on libos through
//! posix-shim (`./x run --elf PATH --files servers/rootfs --net user --forward ...`) and to be
//! driven from the host by their own projects' client and benchmark tools.
//!
//! | server | Debian source | program | driven by (host package) |
//! |---|---|---|---|
//! | [`REDIS`] | `redis` 5:7.0.15-1~deb12u10 | `redis-server` | `redis-cli`, `redis-benchmark` (redis-tools) |
//! | [`LIGHTTPD`] | `lighttpd` 1.4.69-1 | `lighttpd` | `ab` (apache2-utils), `curl` |
//!
//! Both run as one process around one epoll loop, configured by files in `servers/rootfs/srv/`:
//! redis (`redis.conf`: `save ""`, `appendonly no`) never forks (it starts three background
//! threads, which wait on futexes); lighttpd (`lighttpd.conf`) has `server.max-worker = 0` and
//! `server.event-handler = "linux-sysepoll"`.
//!
//! [`Server::build`] does everything on first use and nothing afterwards:
//!
//! 1. installs the build tools ([`debian::ensure_build_tools`]) and, once, the `deb-src`
//!    entries apt needs for source packages ([`debian::ensure_deb_src`]);
//! 2. downloads the pinned source package version and unpacks it with Debian's patches into
//!    `/var/cache/libos/servers/PACKAGE-VERSION/source/tree` ([`debian::fetch_source`]);
//! 3. builds a fresh copy of the tree per architecture with the server's recipe
//!    ([`recipes`]), logging to `build.log` in the machine cache directory of that recipe
//!    (`/var/cache/libos/servers/PACKAGE-VERSION-KEY/ARCH/`, `KEY` hashing the recipe's text
//!    and the compiler's version);
//! 4. checks the result is a static ELF executable for that architecture and strips it into
//!    that directory (the unstripped one is `PROGRAM.debug`);
//! 5. copies both into the checkout, `target/servers/PACKAGE-VERSION/ARCH/PROGRAM`, and records
//!    the recipe beside them (`recipe.txt`): a later call with the same recipe returns that
//!    path at once, a changed recipe looks in the machine cache again.
//!
//! The machine cache is why a fresh clone on a machine that built the servers once does not
//! build them again (four builds, about four minutes of both cores here, in every first
//! `./x test`); the copy in the checkout is the path users and the README name.
//!
//! The versions are pinned (the source package's files must match the Debian changelog the
//! report quotes, and the host tools are the same Debian version); moving to a newer Debian
//! release means changing [`Server::version`] here.
//!
//! [`Server::guest_image`] packs a server with the files of `servers/rootfs/` (its
//! configuration and a small site under `/srv`) into an elf-runner image for the integration
//! tests (`tests/tests/servers.rs`); [`host_check`] runs a server natively on the host against
//! its own tools (`./x build-server NAME --host-check`).

pub mod debian;
pub mod host_check;
pub mod recipes;

use crate::arch::Arch;
use crate::{Result, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A server built from a Debian source package.
#[derive(Debug)]
pub struct Server {
    /// The name `./x build-server` takes.
    pub name: &'static str,
    /// Debian's source package.
    pub package: &'static str,
    /// The source package's version (with its epoch, as apt names it).
    pub version: &'static str,
    /// The program built (its file name in the cache and in the guest's `/bin`).
    pub program: &'static str,
    /// A console line that says the server listens.
    pub ready: &'static str,
    /// The host commands that drive it and the Debian packages that provide them.
    pub clients: &'static [(&'static str, &'static str)],
    /// The build for one architecture.
    recipe: fn(Arch) -> recipes::Recipe,
}

/// redis, the key-value store: `redis-server /srv/redis.conf`.
pub const REDIS: Server = Server {
    name: "redis",
    package: "redis",
    version: "5:7.0.15-1~deb12u10",
    program: "redis-server",
    ready: "Ready to accept connections",
    clients: &[("redis-cli", "redis-tools"), ("redis-benchmark", "redis-tools")],
    recipe: recipes::redis,
};

/// lighttpd, the HTTP server: `lighttpd -D -f /srv/lighttpd.conf`.
pub const LIGHTTPD: Server = Server {
    name: "lighttpd",
    package: "lighttpd",
    version: "1.4.69-1",
    program: "lighttpd",
    ready: "server started (lighttpd/1.4.69)",
    clients: &[("ab", "apache2-utils"), ("curl", "curl")],
    recipe: recipes::lighttpd,
};

/// Every server.
pub const ALL: [&Server; 2] = [&REDIS, &LIGHTTPD];

/// The server called `name`.
pub fn find(name: &str) -> Result<&'static Server> {
    ALL.into_iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        format!("no server `{name}` (servers: {})", names.join(", ")).into()
    })
}

/// `target/servers/`: the checkout's copies of the programs (the machine cache in
/// `/var/cache/libos/servers/` holds the sources and builds) and the images packed with them.
pub fn cache_dir() -> PathBuf {
    root().join("target/servers")
}

/// `servers/rootfs/`: the files the servers read in the guest (configuration, site), laid
/// out from `/` (`./x run --files servers/rootfs`).
pub fn rootfs() -> PathBuf {
    root().join("servers/rootfs")
}

/// The ELF `e_machine` of an architecture.
fn elf_machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => 62,
        Arch::Aarch64 => 183,
    }
}

/// Checks that `image` is a static ELF64 executable for `arch`: the right machine, no program
/// interpreter, no dynamic section (so also not static-PIE, which the recipes do not make).
pub fn check_static_elf(image: &[u8], arch: Arch) -> std::result::Result<(), String> {
    let u16_at = |o: usize| image.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| image.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| image.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if image.len() < 64 || &image[..4] != b"\x7fELF" || image[4] != 2 || image[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    let machine = u16_at(18).unwrap_or(0);
    if machine != elf_machine(arch) {
        return Err(format!("ELF machine {machine}, expected {} ({arch})", elf_machine(arch)));
    }
    if u16_at(16) != Some(2) {
        return Err(format!("ELF type {:?}, expected 2 (ET_EXEC, a non-PIE executable)", u16_at(16)));
    }
    let (phoff, phentsize, phnum) = (u64_at(32).unwrap_or(0) as usize, u16_at(54).unwrap_or(0) as usize, u16_at(56).unwrap_or(0));
    for i in 0..usize::from(phnum) {
        match u32_at(phoff + i * phentsize) {
            Some(3) => return Err("it has a program interpreter (PT_INTERP): dynamically linked".into()),
            Some(2) => return Err("it has a dynamic section (PT_DYNAMIC)".into()),
            Some(_) => {}
            None => return Err("its program headers run past the end of the file".into()),
        }
    }
    Ok(())
}


impl Server {
    /// `target/servers/PACKAGE-VERSION` (the version without its epoch).
    pub fn dir(&self) -> PathBuf {
        cache_dir().join(self.dir_name())
    }

    /// Where [`Server::build`] puts the (stripped) program for `arch`.
    pub fn program_path(&self, arch: Arch) -> PathBuf {
        self.dir().join(arch.name()).join(self.program)
    }

    /// The cached program for `arch`, built first if it is missing or its recipe changed.
    pub fn build(&self, arch: Arch) -> Result<PathBuf> {
        let recipe = (self.recipe)(arch);
        let out = self.dir().join(arch.name());
        let program = out.join(self.program);
        let recipe_file = out.join("recipe.txt");
        let up_to_date = || program.is_file() && std::fs::read_to_string(&recipe_file).ok() == Some(recipe.fingerprint());
        if up_to_date() {
            return Ok(program);
        }
        let _lock = crate::build::lock_file(&self.dir().join(".lock"))?;
        if up_to_date() {
            return Ok(program); // another process built it while we waited
        }
        debian::ensure_build_tools(arch)?;
        let cached = self.machine_cache(arch, &recipe)?;
        std::fs::create_dir_all(&out)?;
        let debug = format!("{}.debug", self.program);
        for name in [self.program, debug.as_str()] {
            let from = cached.join(name);
            std::fs::copy(&from, out.join(name)).map_err(|e| format!("copying {}: {e}", from.display()))?;
        }
        std::fs::write(&recipe_file, recipe.fingerprint())?;
        Ok(program)
    }

    /// `PACKAGE-VERSION` (the version without its epoch): the name of this server's
    /// directories.
    fn dir_name(&self) -> String {
        format!("{}-{}", self.package, debian::without_epoch(self.version))
    }

    /// The directory of the machine cache that holds `PROGRAM` and `PROGRAM.debug` built by
    /// `recipe` for `arch`, building them first when it does not exist:
    /// `/var/cache/libos/servers/PACKAGE-VERSION-KEY/ARCH`, `KEY` hashing the recipe's text and
    /// the C compiler's `--version` (a new compiler or recipe builds anew). The source tree is
    /// shared by every recipe, in `PACKAGE-VERSION/source`.
    fn machine_cache(&self, arch: Arch, recipe: &recipes::Recipe) -> Result<PathBuf> {
        let servers = Path::new(crate::dax_qemu::CACHE_ROOT).join("servers");
        let compiler = crate::linux::output_of(Command::new(recipes::musl_cc(arch)).arg("--version"))?;
        let key = crate::dax_qemu::cache_key(&[recipe.fingerprint().as_bytes(), compiler.as_bytes()], &[]);
        let dir = servers.join(format!("{}-{key}", self.dir_name())).join(arch.name());
        if dir.join(self.program).is_file() {
            return Ok(dir);
        }
        let _lock = crate::build::lock_file(&servers.join(format!("{}.lock", self.dir_name())))?;
        if dir.join(self.program).is_file() {
            return Ok(dir); // another checkout built it while we waited
        }
        let started = Instant::now();
        let tree = debian::fetch_source(self.package, self.version, &servers.join(self.dir_name()).join("source"))?;
        // Built beside the final directory and renamed into place once complete, so that an
        // interrupted build never leaves a directory that looks finished.
        let building = dir.with_extension("build");
        if building.exists() {
            std::fs::remove_dir_all(&building)?;
        }
        std::fs::create_dir_all(&building)?;
        let build = building.join("build");
        crate::linux::run_step(Command::new("cp").arg("-a").arg(&tree).arg(&build))?;
        let log = building.join("build.log");
        eprintln!("==> building {} {} for {arch} (log: {}; moved beside the program once built)", self.package, self.version, log.display());
        recipe.run(&build, &log)?;
        let built = build.join(recipe.product);
        let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
        check_static_elf(&bytes, arch).map_err(|e| format!("{} is not a static {arch} executable: {e}", built.display()))?;
        let (program, debug) = (building.join(self.program), building.join(format!("{}.debug", self.program)));
        std::fs::copy(&built, &debug)?;
        crate::linux::run_step(Command::new(debian::binutils(arch, "strip")).arg("-o").arg(&program).arg(&debug))?;
        std::fs::remove_dir_all(&build)?;
        std::fs::write(building.join("recipe.txt"), recipe.fingerprint())?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?; // a build without its program: interrupted before the rename
        }
        std::fs::rename(&building, &dir)?;
        eprintln!(
            "==> built {} for {arch} in {:.1} s: {} ({} bytes stripped)",
            self.program,
            started.elapsed().as_secs_f64(),
            dir.join(self.program).display(),
            std::fs::metadata(dir.join(self.program))?.len()
        );
        Ok(dir)
    }

    /// Installs the host tools that drive this server, when missing.
    pub fn ensure_clients(&self) -> Result<()> {
        debian::ensure_commands(self.clients)
    }

    /// An elf-runner image for `arch` that runs this server: its program as `/bin/PROGRAM`
    /// and the files of [`rootfs`] from `/` in its initial RAM archive, both copied to
    /// `target/servers/PACKAGE-VERSION/ARCH/PROGRAM.image` (and `PROGRAM.image.initrd`), where
    /// no other run's packing can change them under a running test.
    pub fn guest_image(&self, arch: Arch) -> Result<PathBuf> {
        // One elf-runner build at a time in this process: build, then copy, under the lock.
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let program = self.build(arch)?;
        let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = crate::build::lock_file(&cache_dir().join(".elf-runner.lock"))?;
        let built = crate::build::elf_runner_with(arch, true, Some(&program), Some(&rootfs()))?;
        let image = self.dir().join(arch.name()).join(format!("{}.image", self.program));
        crate::build::copy_image(&built, &image)?;
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `p_type`.
    fn elf(machine: u16, e_type: u16, p_type: u32) -> Vec<u8> {
        let mut image = vec![0u8; 64 + 56];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2;
        image[5] = 1;
        image[16..18].copy_from_slice(&e_type.to_le_bytes());
        image[18..20].copy_from_slice(&machine.to_le_bytes());
        image[32..40].copy_from_slice(&64u64.to_le_bytes());
        image[54..56].copy_from_slice(&56u16.to_le_bytes());
        image[56..58].copy_from_slice(&1u16.to_le_bytes());
        image[64..68].copy_from_slice(&p_type.to_le_bytes());
        image
    }

    #[test]
    fn only_static_executables_for_the_arch_pass() {
        assert_eq!(check_static_elf(&elf(62, 2, 1), Arch::X86_64), Ok(()));
        assert_eq!(check_static_elf(&elf(183, 2, 1), Arch::Aarch64), Ok(()));
        assert!(check_static_elf(&elf(183, 2, 1), Arch::X86_64).unwrap_err().contains("machine 183"));
        assert!(check_static_elf(&elf(62, 2, 3), Arch::X86_64).unwrap_err().contains("interpreter"));
        assert!(check_static_elf(&elf(62, 3, 2), Arch::X86_64).unwrap_err().contains("ET_EXEC"));
        assert!(check_static_elf(b"#!/bin/sh\n", Arch::X86_64).is_err());
    }

    #[test]
    fn names_and_cache_paths() {
        assert_eq!(find("redis").map(|s| s.program).ok(), Some("redis-server"));
        assert!(find("nginx").is_err());
        assert!(REDIS.program_path(Arch::Aarch64).ends_with("target/servers/redis-7.0.15-1~deb12u10/aarch64/redis-server"));
    }
}
