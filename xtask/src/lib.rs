//! # xtask: the host side of `./x`
//!
//! `./x` (a POSIX shell script) installs the host tools and then runs this program. It is also a
//! library, so the QEMU integration tests in `tests/` boot images exactly the way `./x run` does.
//!
//! - [`build`]: builds an app into a bootable image for an architecture;
//! - [`qemu`]: turns a [`qemu::VmConfig`] into a QEMU command line, runs it with a timeout,
//!   captures the console and decodes the guest's exit code;
//! - [`accel`]: picks KVM only where a calibration boot shows it is hardware-accelerated;
//! - [`floor`]: generates the minimal PVH kernel used as the wall-clock floor and KVM probe;
//! - [`measure`]: the measurement layer of the suites (icount runs, device-trace counts,
//!   wall-clock spreads, results files, plots, comparison with the previous results);
//! - [`linux`]: the Linux guest baseline (Debian kernel, busybox initramfs, C programs);
//! - [`virtiofs`]: host directories shared with the guest (virtiofsd per share);
//! - [`disk`]: disks (`--disk IMAGE[:ro]` as virtio-blk) and ext2 images made with e2fsprogs;
//! - [`net`]: the guest's virtio-net card (QEMU user network with forwards, or a tap);
//! - [`netns`]: network namespaces holding a tap, deleted however the run ends;
//! - [`servers`]: real C servers (redis, lighttpd) built from Debian source packages as static
//!   musl programs for `./x run --elf`, and the host tools that drive them;
//! - [`dax_qemu`]: QEMU with the virtio-fs DAX window patches of `tools/qemu-dax/`, built
//!   on first use into `/var/cache/libos/`;
//! - [`outside`]: test programs from the Rust registry (pjdfstest, fsx) built as static Linux
//!   programs and booted on libos's ramfs, virtio-fs and ext2 roots;
//! - [`pjdfstest`]: the POSIX file-system test suite pjdfstest on libos's roots and on the
//!   host, side by side (`./x pjdfstest`);
//! - [`fsx`]: the file-system exerciser fsx on libos's roots (`./x fsx`);
//! - [`fuzz`]: `./x fuzz`, the libFuzzer targets of `fuzz/` built and run without cargo-fuzz;
//! - [`bench`](mod@bench): `./x bench` suites, writing `bench/results/`.

pub mod accel;
pub mod arch;
pub mod bench;
pub mod build;
pub mod dax_qemu;
pub mod disk;
pub mod elf;
pub mod floor;
pub mod fsx;
pub mod fuzz;
pub mod linux;
pub mod measure;
pub mod net;
pub mod outside;
pub mod pjdfstest;
pub mod process;
pub mod netns;
pub mod qemu;
pub mod servers;
pub mod virtiofs;

use std::path::PathBuf;

/// The workspace root (this crate lives in `ROOT/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives inside the workspace").to_path_buf()
}

/// An error for the user: printed as `./x: MESSAGE`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
