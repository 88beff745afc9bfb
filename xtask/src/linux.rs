//! The Linux guest baseline: a Debian kernel and a busybox initramfs that runs one static C
//! benchmark program from `bench/c/` and powers off, on the same QEMU machines libos boots on.
//!
//! Everything is built by `./x` from Debian packages and cached under `target/linux-baseline/`:
//!
//! 1. host tools on first use ([`ensure_host_tools`]): musl-gcc for x86_64; the arm64 dpkg
//!    architecture, `gcc-aarch64-linux-gnu` and `musl-dev:arm64` for `aarch64-linux-musl-gcc`;
//! 2. per arch, `apt-get download` of the kernel the `linux-image-cloud-<arch>` metapackage
//!    depends on (the version apt offers now) and of `busybox-static`, unpacked with `dpkg-deb -x`.
//!    An arm64 kernel that comes gzip-compressed is unpacked to a raw `Image` so the runner can
//!    check the RAM size against the Image header as it does for libos;
//! 3. the C programs compiled statically with musl;
//! 4. an uncompressed newc cpio initramfs ([`Cpio`], written here: the format is a 110-byte ASCII
//!    header per file, simpler than driving the `cpio` tool) holding busybox, the programs, the
//!    virtio modules and `/init` ([`INIT_SCRIPT`]).
//!
//! The kernel command line picks the program, its arguments and the modules to `insmod` (in
//! dependency order, resolved from each module's `depends=` field): only workloads with a device
//! load drivers. `/init` prints `[bench] exit status: N` and reboots; with `-no-reboot` QEMU ends.

use crate::arch::Arch;
use crate::qemu::{Exit, Machine, Outcome, VmConfig};
use crate::{Result, root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `/init` of the initramfs. Options come from the kernel command line (`bench.prog=`,
/// `bench.args=` comma-separated, `bench.modules=` comma-separated and already in dependency
/// order, `bench.net=ADDRESS/PREFIX` to bring up eth0, `bench.mounts=` comma-separated
/// `FSTYPE:SOURCE:PATH[:OPTIONS]` mounted in order, e.g. `virtiofs:data:/mnt`,
/// `tmpfs:none:/tmp`, `virtiofs:data:/mnt:dax=always`).
pub const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# Linux guest baseline: run one benchmark program, report its status, power off.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev
for word in $($bb cat /proc/cmdline); do
    case $word in
        bench.prog=*) prog=${word#bench.prog=} ;;
        bench.args=*) args=${word#bench.args=} ;;
        bench.modules=*) modules=${word#bench.modules=} ;;
        bench.net=*) net=${word#bench.net=} ;;
        bench.mounts=*) mounts=${word#bench.mounts=} ;;
    esac
done
for module in $(echo "$modules" | $bb tr , ' '); do
    $bb insmod /modules/$module.ko || echo "[bench] insmod $module failed"
done
for mount in $(echo "$mounts" | $bb tr , ' '); do
    fstype=${mount%%:*}; rest=${mount#*:}; source=${rest%%:*}; path=${rest#*:}
    options=; case $path in *:*) options="-o ${path#*:}"; path=${path%%:*} ;; esac
    $bb mkdir -p "$path" && $bb mount -t "$fstype" $options "$source" "$path" || echo "[bench] mount $mount failed"
    echo "[bench] mounted $($bb grep " $path " /proc/mounts)"
done
if [ -n "$net" ]; then
    $bb ip link set lo up
    $bb ip link set eth0 up && $bb ip addr add "$net" dev eth0 || echo "[bench] network setup failed"
fi
/bin/$prog $(echo "$args" | $bb tr , ' ')
echo "[bench] exit status: $?"
$bb reboot -f
"#;

/// The fixed part of the kernel command line (the program and its options are appended).
/// `quiet` keeps the console short; `panic=-1` turns a panic into a reboot, which ends QEMU.
pub fn base_cmdline(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "console=ttyS0 quiet panic=-1",
        Arch::Aarch64 => "console=ttyAMA0 quiet panic=-1",
    }
}

/// Debian's name of an architecture.
fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// The static musl C compiler of an architecture.
fn musl_cc(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "musl-gcc",
        Arch::Aarch64 => "aarch64-linux-musl-gcc",
    }
}

/// `target/linux-baseline/`.
pub fn cache_dir() -> PathBuf {
    root().join("target/linux-baseline")
}

/// Runs a command, printing it; fails with the command line and its status.
pub(crate) fn run_step(command: &mut Command) -> Result<()> {
    eprintln!("    + {}", format!("{command:?}").replace('"', ""));
    let status = command.status().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed with {status}").into());
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub(crate) fn output_of(command: &mut Command) -> Result<String> {
    let output = command.output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn have_command(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
}

/// Installs the static musl C toolchains for `arches` when missing (apt; for posix-shim's C
/// apps and the baseline's C programs): `musl-gcc` (musl-tools, musl-dev) and `objcopy` for
/// x86_64; `aarch64-linux-musl-gcc` (gcc-aarch64-linux-gnu, musl-dev:arm64, after adding the arm64
/// dpkg architecture) and `aarch64-linux-gnu-objcopy` for aarch64.
pub fn ensure_musl(arches: &[Arch]) -> Result<()> {
    ensure_packages(arches, &[])
}

/// Installs what `apps/elf-runner`'s build script compiles its sample programs with, when
/// missing: musl for both architectures (one sample is the other architecture's program) and
/// glibc's static libraries (`libc6-dev` for x86_64, `libc6-dev-arm64-cross` for aarch64).
pub fn ensure_elf_samples() -> Result<()> {
    ensure_packages(&[Arch::X86_64, Arch::Aarch64], &[("gcc", "gcc")])?;
    let mut packages = Vec::new();
    if !Path::new("/usr/lib/x86_64-linux-gnu/libc.a").is_file() {
        packages.push("libc6-dev");
    }
    if !Path::new("/usr/aarch64-linux-gnu/lib/libc.a").is_file() {
        packages.push("libc6-dev-arm64-cross");
    }
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("==> first use: installing {}", packages.join(" "));
    apt_install(&packages)
}

/// Installs the host tools the baseline needs, on first use (apt, like `xtask/setup.sh`).
pub fn ensure_host_tools(arches: &[Arch]) -> Result<()> {
    ensure_packages(arches, &[("ping", "iputils-ping"), ("ip", "iproute2"), ("dpkg-deb", "dpkg")])
}

/// Installs what the network tests and `./x bench net` run on the host, when missing: `ping`
/// (iputils-ping), `ip` (iproute2), `nft` (nftables: the loss test drops packets with it) and
/// `curl`.
pub fn ensure_net_tools() -> Result<()> {
    ensure_packages(&[], &[("ping", "iputils-ping"), ("ip", "iproute2"), ("nft", "nftables"), ("curl", "curl")])
}

pub(crate) fn ensure_packages(arches: &[Arch], commands: &[(&str, &'static str)]) -> Result<()> {
    let mut packages = Vec::new();
    let mut need_arm64 = false;
    let arm64_musl = Path::new("/usr/lib/aarch64-linux-musl/crt1.o");
    // objcopy: posix-shim/c-app-build.rs renames musl's string routines in the C objects.
    if arches.contains(&Arch::X86_64) && (!have_command("musl-gcc") || !have_command("objcopy")) {
        packages.extend(["musl-tools", "musl-dev", "binutils"]);
    }
    if arches.contains(&Arch::Aarch64)
        && (!have_command("aarch64-linux-musl-gcc") || !arm64_musl.is_file() || !have_command("aarch64-linux-gnu-objcopy"))
    {
        need_arm64 = true;
        packages.extend(["gcc-aarch64-linux-gnu", "binutils-aarch64-linux-gnu", "musl-dev:arm64"]);
    }
    for &(command, package) in commands {
        if !have_command(command) && !packages.contains(&package) {
            packages.push(package);
        }
    }
    let foreign = output_of(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    let add_arm64 = arches.contains(&Arch::Aarch64) && !foreign.lines().any(|l| l.trim() == "arm64");
    if packages.is_empty() && !add_arm64 {
        return Ok(());
    }
    eprintln!("==> first use: installing {}", packages.join(" "));
    if add_arm64 || need_arm64 {
        run_step(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    }
    apt_install(&packages)
}

/// Refreshes apt's package lists and installs `packages` (none: only the refresh).
///
/// apt waits up to two minutes for a lock another apt holds (a second `./x` installing at
/// the same time), and the refresh is tried three times, 10 s apart: one failed refresh of a
/// package list (seen once in a full test run) must not fail the suite.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    const LOCK_WAIT: [&str; 2] = ["-o", "DPkg::Lock::Timeout=120"];
    let mut attempt = 1;
    while let Err(e) = run_step(Command::new("apt-get").args(LOCK_WAIT).args(["update", "-q"])) {
        if attempt == 3 {
            return Err(e);
        }
        eprintln!("==> apt-get update failed ({e}); trying again in 10 s");
        std::thread::sleep(Duration::from_secs(10));
        attempt += 1;
    }
    if !packages.is_empty() {
        run_step(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(LOCK_WAIT).args(["install", "-y", "-q", "--no-install-recommends"]).args(packages))?;
    }
    Ok(())
}

/// The kernel package the `linux-image-cloud-<arch>` metapackage currently depends on.
fn kernel_package(arch: Arch) -> Result<String> {
    let meta = format!("linux-image-cloud-{}", debian_arch(arch));
    let query = if arch == Arch::host() { meta.clone() } else { format!("{meta}:{}", debian_arch(arch)) };
    let depends = output_of(Command::new("apt-cache").args(["depends", &query]))?;
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.split(':').next().unwrap_or(p).to_string())
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("apt-cache depends {query} names no linux-image package (run apt-get update?)").into())
}

/// The static busybox of Debian's `busybox-static` for `arch` (downloaded once into the
/// Linux baseline's cache, which uses the same package).
pub fn ensure_busybox(arch: Arch) -> Result<PathBuf> {
    ensure_packages(&[], &[("dpkg-deb", "dpkg")])?;
    let unpacked = fetch_and_unpack("busybox-static", arch, &cache_dir().join(arch.name()).join("busybox"))?;
    Ok(unpacked.join("bin/busybox"))
}

/// Makes `dir` a root file system for a shell (`./x run --root DIR -- /bin/sh ...`): Debian's
/// static busybox for `arch` as `/bin/busybox`, a link to it for every applet (`/bin/sh`,
/// `/bin/ls`, ...; the list is the host's busybox's, the same package version), and what a
/// Linux root has for programs to find: `/tmp` (1777), `/root` (0700), `/dev`, `/proc` and
/// `/sys` (libos mounts devfs, procfs and its `/sys` on a host root only where these exist,
/// so `> /dev/null` works), and an `/etc/passwd`, `/etc/group` and `/etc/hosts` with root and
/// nobody, unless there already are such files.
pub fn make_busybox_root(arch: Arch, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let busybox = ensure_busybox(arch)?;
    let applets = output_of(Command::new(ensure_busybox(Arch::host())?).arg("--list"))?;
    let bin = dir.join("bin");
    for (sub, mode) in [("bin", 0o755), ("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700)] {
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(mode))?;
    }
    for (name, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ] {
        if !dir.join(name).exists() {
            std::fs::write(dir.join(name), text)?;
        }
    }
    std::fs::copy(&busybox, bin.join("busybox"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/')) {
        let link = bin.join(applet);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    Ok(())
}

/// Downloads `package` for `arch` into `dir` and unpacks it into `dir/unpacked`, once.
fn fetch_and_unpack(package: &str, arch: Arch, dir: &Path) -> Result<PathBuf> {
    let unpacked = dir.join("unpacked");
    let stamp = dir.join(format!("{package}.unpacked"));
    if stamp.exists() {
        return Ok(unpacked);
    }
    std::fs::create_dir_all(&unpacked)?;
    let spec = if arch == Arch::host() { package.to_string() } else { format!("{package}:{}", debian_arch(arch)) };
    // apt's sandbox user cannot write into root's tree; download in a world-writable temp dir.
    let download = dir.join("download");
    std::fs::create_dir_all(&download)?;
    run_step(Command::new("chmod").args(["0777"]).arg(&download))?;
    run_step(Command::new("apt-get").args(["download", "-q", &spec]).current_dir(&download))?;
    for entry in std::fs::read_dir(&download)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run_step(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&unpacked))?;
            std::fs::remove_file(&path)?;
        }
    }
    std::fs::write(&stamp, "")?;
    Ok(unpacked)
}

/// The `depends=` field of a kernel module (`.modinfo` strings are NUL-separated `key=value`).
pub fn module_depends(module: &[u8]) -> Vec<String> {
    module
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"depends="))
        .map(|list| String::from_utf8_lossy(list).split(',').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// `wanted` modules and everything they depend on, dependencies first. `depends_of` gives a
/// module's direct dependencies.
pub fn load_order(wanted: &[&str], depends_of: &dyn Fn(&str) -> Result<Vec<String>>) -> Result<Vec<String>> {
    fn visit(name: &str, depends_of: &dyn Fn(&str) -> Result<Vec<String>>, order: &mut Vec<String>, path: &mut Vec<String>) -> Result<()> {
        if order.iter().any(|m| m == name) {
            return Ok(());
        }
        if path.iter().any(|m| m == name) {
            return Err(format!("kernel modules depend on each other in a cycle: {} -> {name}", path.join(" -> ")).into());
        }
        path.push(name.to_string());
        for dependency in depends_of(name)? {
            visit(&dependency, depends_of, order, path)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for name in wanted {
        visit(name, depends_of, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// A newc ("070701") cpio archive, as the Linux initramfs unpacker reads it.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio { bytes: Vec::new(), next_inode: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime: fixed, so the archive is reproducible
            data.len() as u32,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name.len() as u32 + 1,
            0, // check
        ];
        self.next_inode += 1;
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Header and name, and the data, each padded to 4 bytes.
    fn pad(&mut self) {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
    }

    /// Adds a directory (parents first: the unpacker does not create them).
    pub fn dir(&mut self, name: &str) {
        self.dir_with_permissions(name, 0o755);
    }

    /// Adds a directory with permission bits `permissions`.
    pub fn dir_with_permissions(&mut self, name: &str, permissions: u32) {
        self.entry(name, 0o040_000 | (permissions & 0o7777), &[]);
    }

    /// Adds a file with permission bits `permissions`.
    pub fn file(&mut self, name: &str, permissions: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | permissions, data);
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes());
    }

    /// Adds the tree under the host directory `dir` as `prefix/...` (directories first, names
    /// in sorted order so the archive is reproducible; files and directories keep their
    /// permission bits, symbolic links stay links). `prefix` (empty: the root) itself must
    /// already exist in the archive or the guest.
    pub fn tree(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: not a UTF-8 name", path.display()))?;
            let inside = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            let meta = std::fs::symlink_metadata(&path)?;
            let permissions = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                self.symlink(&inside, target.to_str().ok_or_else(|| format!("{}: the link's target is not UTF-8", path.display()))?);
            } else if meta.is_dir() {
                self.dir_with_permissions(&inside, permissions);
                self.tree(&path, &inside)?;
            } else {
                self.file(&inside, permissions, &std::fs::read(&path)?);
            }
        }
        Ok(())
    }

    /// The finished archive (with its `TRAILER!!!` entry).
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

/// The C benchmark programs in `bench/c/` (one `NAME.c` each, sharing `bench_common.h`).
pub fn programs() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("bench/c"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".c").map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// The virtio modules copied into every initramfs (the workloads pick which to load).
const VIRTIO_MODULES: &[&str] = &["virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtiofs"];

/// A built Linux baseline for one architecture.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// Guest architecture.
    pub arch: Arch,
    /// Kernel package name (for the record).
    pub kernel_package: String,
    /// Kernel image (x86_64 bzImage, arm64 raw Image).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    module_deps: BTreeMap<String, Vec<String>>,
}

impl LinuxGuest {
    /// Builds (or reuses from the cache) the baseline for `arch`.
    pub fn build(arch: Arch) -> Result<LinuxGuest> {
        ensure_host_tools(&[arch])?;
        let dir = cache_dir().join(arch.name());
        std::fs::create_dir_all(&dir)?;
        let kernel_package = kernel_package(arch)?;
        let kernel_root = fetch_and_unpack(&kernel_package, arch, &dir.join("kernel"))?;
        let busybox_root = fetch_and_unpack("busybox-static", arch, &dir.join("busybox"))?;
        let version = kernel_package.trim_start_matches("linux-image-").to_string();
        let vmlinuz = kernel_root.join(format!("boot/vmlinuz-{version}"));
        // arm64 `vmlinuz` is a raw Image (magic `ARMd` at 0x38) in current packages; older ones
        // were gzip-compressed.
        let raw_arm64 = |path: &Path| std::fs::read(path).is_ok_and(|b| b.get(0x38..0x3c) == Some(b"ARMd"));
        let kernel = match arch {
            Arch::X86_64 => vmlinuz,
            Arch::Aarch64 if raw_arm64(&vmlinuz) => vmlinuz,
            Arch::Aarch64 => {
                let image = dir.join(format!("Image-{version}"));
                if !image.exists() {
                    let raw = output_of_bytes(Command::new("gzip").arg("-dc").arg(&vmlinuz))?;
                    std::fs::write(&image, raw)?;
                }
                image
            }
        };

        // Modules: every virtio driver and what it needs, with their dependencies recorded.
        let modules_dir = kernel_root.join(format!("lib/modules/{version}/kernel"));
        let mut module_files = BTreeMap::new();
        collect_modules(&modules_dir, &mut module_files)?;
        let depends_of = |name: &str| -> Result<Vec<String>> {
            let path = module_files.get(name).ok_or_else(|| format!("kernel module {name} is not in {kernel_package}"))?;
            Ok(module_depends(&std::fs::read(path)?))
        };
        let needed = load_order(VIRTIO_MODULES, &depends_of)?;
        let mut module_deps = BTreeMap::new();
        for name in &needed {
            module_deps.insert(name.clone(), depends_of(name)?);
        }

        let mut cpio = Cpio::new();
        for d in ["bin", "dev", "proc", "sys", "modules"] {
            cpio.dir(d);
        }
        cpio.file("init", 0o755, INIT_SCRIPT.as_bytes());
        cpio.file("bin/busybox", 0o755, &std::fs::read(busybox_root.join("bin/busybox"))?);
        cpio.symlink("bin/sh", "busybox");
        for program in programs()? {
            let binary = compile_program(&program, arch)?;
            cpio.file(&format!("bin/{program}"), 0o755, &std::fs::read(binary)?);
        }
        for name in &needed {
            cpio.file(&format!("modules/{name}.ko"), 0o644, &std::fs::read(&module_files[name])?);
        }
        let initrd = dir.join("initramfs.cpio");
        std::fs::write(&initrd, cpio.finish())?;
        Ok(LinuxGuest { arch, kernel_package, kernel, initrd, module_deps })
    }

    /// This guest with more files: the archive `extra` appended to the initramfs as a second
    /// cpio archive (the kernel unpacks concatenated archives in order), written once per
    /// `name` next to the base one (`initramfs-NAME.cpio`). For programs that are not in
    /// `bench/c/`, such as a real server and its configuration.
    pub fn with_files(&self, name: &str, extra: Cpio) -> Result<LinuxGuest> {
        let mut bytes = std::fs::read(&self.initrd).map_err(|e| format!("cannot read {}: {e}", self.initrd.display()))?;
        bytes.extend_from_slice(&extra.finish());
        let initrd = self.initrd.with_file_name(format!("initramfs-{name}.cpio"));
        std::fs::write(&initrd, bytes)?;
        Ok(LinuxGuest { initrd, ..self.clone() })
    }

    /// The modules to `insmod` for `drivers`, in load order.
    pub fn modules_for(&self, drivers: &[&str]) -> Result<Vec<String>> {
        load_order(drivers, &|name| self.module_deps.get(name).cloned().ok_or_else(|| format!("module {name} is not in the initramfs").into()))
    }

    /// The transport module of virtio devices on this arch's machine.
    pub fn virtio_transport(&self) -> &'static str {
        "virtio_pci"
    }

    /// A boot of `program args...` with `modules` loaded. The machine is libos's PCI machine of
    /// the arch (x86_64 `q35`, aarch64 `virt` with GICv3), 256 MiB, TCG.
    pub fn config(&self, program: &str, args: &[String], modules: &[String], options: &str) -> VmConfig {
        let mut config = VmConfig::new(self.arch, self.kernel.clone());
        config.machine = match self.arch {
            Arch::X86_64 => Machine::Q35,
            Arch::Aarch64 => Machine::VirtGicv3,
        };
        config.memory = "256M".into();
        // Linux powers off by rebooting under -no-reboot; /init prints the program's status.
        config.debug_exit = false;
        config.timeout = Duration::from_secs(300);
        let mut cmdline = format!("{} bench.prog={program}", base_cmdline(self.arch));
        if !args.is_empty() {
            cmdline += &format!(" bench.args={}", args.join(","));
        }
        if !modules.is_empty() {
            cmdline += &format!(" bench.modules={}", modules.join(","));
        }
        if !options.is_empty() {
            cmdline += &format!(" {options}");
        }
        config.cmdline = cmdline;
        config.extra_args = vec!["-initrd".into(), self.initrd.display().to_string()];
        config
    }
}

/// Checks that a Linux guest run ended with the program's status 0; the error carries the console.
pub fn check_run(what: &str, outcome: &Outcome) -> Result<()> {
    let status = outcome.console.lines().rev().find_map(|l| l.strip_prefix("[bench] exit status: ")?.trim().parse::<i32>().ok());
    match (&outcome.exit, status) {
        (Exit::NoCode | Exit::Code(0), Some(0)) => Ok(()),
        _ => Err(crate::measure::failure(what, outcome)),
    }
}

/// Every `[bench] NAME: NUMBER` line the program printed.
pub fn bench_counters(console: &str) -> crate::measure::Counters {
    console
        .lines()
        .filter_map(|l| {
            let (name, value) = l.strip_prefix("[bench] ")?.split_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn output_of_bytes(command: &mut Command) -> Result<Vec<u8>> {
    let output = command.output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    Ok(output.stdout)
}

fn collect_modules(dir: &Path, found: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_modules(&path, found)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
            found.insert(name.to_string(), path.clone());
        }
    }
    Ok(())
}

/// `bench/c/NAME.c` compiled statically with musl for `arch` (into the baseline's cache, when
/// out of date): the Linux guest runs it, and libos runs the same file through elf-runner.
pub fn compile_program(name: &str, arch: Arch) -> Result<PathBuf> {
    compile(name, arch, &cache_dir().join(arch.name()).join("bin"))
}

/// Compiles the C files `sources` into one static musl program `output` for `arch` (installing
/// musl on first use): what the tests run as an unmodified program from a share or a disk.
pub fn compile_static(sources: &[PathBuf], arch: Arch, output: &Path) -> Result<()> {
    ensure_musl(&[arch])?;
    run_step(Command::new(musl_cc(arch)).args(["-static", "-O2", "-o"]).arg(output).args(sources).arg("-lpthread"))
}

/// Compiles `bench/c/NAME.c` statically with musl for `arch` into `out_dir`, when out of date:
/// when the source or `bench_common.h` differ from what the binary was built from (a hash kept
/// beside it; modification times are not enough where several checkouts share the cache).
fn compile(name: &str, arch: Arch, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)?;
    let source_dir = root().join("bench/c");
    let source = source_dir.join(format!("{name}.c"));
    let binary = out_dir.join(name);
    let stamp = out_dir.join(format!("{name}.source-hash"));
    let mut hasher = std::hash::DefaultHasher::new();
    for input in [&source, &source_dir.join("bench_common.h")] {
        std::hash::Hash::hash(&std::fs::read(input).map_err(|e| format!("reading {}: {e}", input.display()))?, &mut hasher);
    }
    let hash = format!("{:016x}", std::hash::Hasher::finish(&hasher));
    if binary.exists() && std::fs::read_to_string(&stamp).is_ok_and(|built| built == hash) {
        return Ok(binary);
    }
    run_step(Command::new(musl_cc(arch)).args(["-static", "-O2", "-Wall", "-Werror", "-o"]).arg(&binary).arg(&source))?;
    std::fs::write(&stamp, hash)?;
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut cpio = Cpio::new();
        cpio.dir("bin");
        cpio.file("bin/a", 0o755, b"hello");
        cpio.symlink("bin/sh", "a");
        let bytes = cpio.finish();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        // The first header: inode 1, directory mode, size 0, name length 4 ("bin\0").
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(&header[6..14], "00000001");
        assert_eq!(&header[14..22], format!("{:08X}", 0o040_755));
        assert_eq!(&header[54..62], "00000000");
        assert_eq!(&header[94..102], "00000004");
        assert_eq!(&bytes[110..114], b"bin\0");
        // The file's data follows its padded header and name.
        let second = 116; // 110-byte header + "bin\0", padded to 4
        assert_eq!(&bytes[second..second + 6], b"070701");
        assert_eq!(&bytes[second + 54..second + 62], "00000005".as_bytes());
        let data_at = second + (110 + 6usize).div_ceil(4) * 4;
        assert_eq!(&bytes[data_at..data_at + 5], b"hello");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn module_dependencies_load_first() {
        let modinfo = b"\0license=GPL\0depends=virtio_ring,virtio\0vermagic=6.1\0";
        assert_eq!(module_depends(modinfo), ["virtio_ring", "virtio"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        let graph: BTreeMap<&str, Vec<&str>> = [
            ("virtio_blk", vec!["virtio", "virtio_ring"]),
            ("virtio", vec!["virtio_ring"]),
            ("virtio_ring", vec![]),
            ("virtio_pci", vec!["virtio_ring", "virtio"]),
        ]
        .into();
        let depends = |name: &str| -> Result<Vec<String>> { Ok(graph[name].iter().map(|s| s.to_string()).collect()) };
        assert_eq!(load_order(&["virtio_pci", "virtio_blk"], &depends).unwrap(), ["virtio_ring", "virtio", "virtio_pci", "virtio_blk"]);
        let cyclic = |name: &str| -> Result<Vec<String>> { Ok(vec![if name == "a" { "b" } else { "a" }.to_string()]) };
        assert!(load_order(&["a"], &cyclic).is_err());
    }

    #[test]
    fn bench_lines_parse_and_status_is_checked() {
        let console = "[bench] counter-hz: 1000\n[bench] loop-ticks: 42\n[bench] not a number: x\n[bench] exit status: 0\n";
        let counters = bench_counters(console);
        assert_eq!(counters["loop-ticks"], 42);
        assert_eq!(counters["exit status"], 0);
        assert!(!counters.contains_key("not a number"));
        let outcome = |console: &str| Outcome { exit: Exit::NoCode, console: console.into(), stderr: String::new(), wall: Duration::ZERO, forks: Vec::new() };
        assert!(check_run("t", &outcome(console)).is_ok());
        assert!(check_run("t", &outcome("[bench] exit status: 1\n")).is_err());
        assert!(check_run("t", &outcome("kernel panic\n")).is_err());
    }
}
