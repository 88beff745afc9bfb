//! Disks for guests: `./x run --disk IMAGE[:ro]` attaches a raw image file as a virtio-blk
//! device (`/dev/vda`, `/dev/vdb`, ... in the order given), and `./x disk create` makes a fresh
//! ext2 image, optionally filled from a host directory, with the host's e2fsprogs.

use crate::Result;
use crate::qemu::VirtioTransport;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One disk of a boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// The raw image file.
    pub image: PathBuf,
    /// Attach read-only (the guest sees `VIRTIO_BLK_F_RO`; its writes fail with `EROFS`).
    pub read_only: bool,
    /// Writes go to a temporary overlay QEMU drops at exit (`snapshot=on`), not to the image:
    /// how a forked process's VM gets its parent's disks.
    pub snapshot: bool,
}

impl Disk {
    /// A writable disk.
    pub fn new(image: impl Into<PathBuf>) -> Disk {
        Disk { image: image.into(), read_only: false, snapshot: false }
    }

    /// Parses `--disk IMAGE[:ro]`; the image must exist.
    pub fn parse(text: &str) -> Result<Disk> {
        let (path, read_only) = match text.strip_suffix(":ro") {
            Some(path) => (path, true),
            None => (text, false),
        };
        let image = PathBuf::from(path);
        if !image.is_file() {
            return Err(format!("--disk {text}: {} is not a file (create one with `./x disk create`)", image.display()).into());
        }
        Ok(Disk { image, read_only, snapshot: false })
    }

    /// QEMU's arguments for the `index`th disk on `transport`. The host's page cache stays on
    /// (`cache=writeback`, QEMU's default) and the guest sees a volatile write cache, so its
    /// flushes become `fdatasync` on the image: what survives a host crash is what the guest
    /// flushed.
    pub fn qemu_args(&self, index: usize, transport: VirtioTransport) -> Vec<String> {
        let id = format!("disk{index}");
        let drive = format!(
            "file={},if=none,id={id},format=raw,cache=writeback,readonly={}{}",
            self.image.display(),
            if self.read_only { "on" } else { "off" },
            // A snapshot reader (a forked process's VM) must not ask the parent's QEMU, which
            // keeps writing the image, for a consistent read: QEMU's image locks would refuse
            // the child at `cont` ("Failed to get shared write lock").
            if self.snapshot { ",snapshot=on,file.locking=off" } else { "" }
        );
        let mut args = vec!["-drive".to_string(), drive];
        let device = match transport {
            VirtioTransport::Pci => format!("virtio-blk-pci,drive={id},disable-legacy=on"),
            VirtioTransport::Mmio => {
                // virtio-mmio version 2 (modern), as for the other devices.
                args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
                format!("virtio-blk-device,drive={id}")
            }
            VirtioTransport::MmioLegacy => format!("virtio-blk-device,drive={id}"),
        };
        args.extend(["-device".into(), device]);
        args
    }
}

/// The e2fsprogs tools, installed with the system's package manager on first use.
pub fn ensure_e2fsprogs() -> Result<()> {
    crate::linux::ensure_packages(&[], &[("mke2fs", "e2fsprogs"), ("e2fsck", "e2fsprogs"), ("debugfs", "e2fsprogs")])
}

/// Makes `image`, a fresh ext2 file system of `bytes`, holding a copy of `from` (a host
/// directory) if given, with `block_size`-byte blocks (`None`: mke2fs's choice). Replaces an
/// existing file.
pub fn create_ext2(image: &Path, bytes: u64, from: Option<&Path>, block_size: Option<u32>) -> Result<()> {
    ensure_e2fsprogs()?;
    if bytes < 64 * 1024 {
        return Err(format!("an ext2 image needs at least 64 KiB, not {bytes} bytes").into());
    }
    let _ = std::fs::remove_file(image);
    let mut command = Command::new("/usr/sbin/mke2fs");
    command.args(["-q", "-F", "-t", "ext2"]);
    if let Some(block_size) = block_size {
        command.args(["-b", &block_size.to_string()]);
    }
    if let Some(dir) = from {
        if !dir.is_dir() {
            return Err(format!("{}: not a directory", dir.display()).into());
        }
        command.arg("-d").arg(dir);
    }
    command.arg(image).arg(format!("{}k", bytes / 1024));
    let output = command.output().map_err(|e| format!("mke2fs: {e}"))?;
    if !output.status.success() {
        return Err(format!("mke2fs {}: {}", image.display(), String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    Ok(())
}

/// Runs `e2fsck -fn` on `image`; returns its report when it finds a problem.
pub fn check_ext2(image: &Path) -> Result<std::result::Result<(), String>> {
    ensure_e2fsprogs()?;
    let output = Command::new("/usr/sbin/e2fsck").args(["-fn"]).arg(image).output().map_err(|e| format!("e2fsck: {e}"))?;
    if output.status.success() {
        Ok(Ok(()))
    } else {
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok(Err(format!("e2fsck -fn {} (status {:?}):\n{report}", image.display(), output.status.code())))
    }
}

/// Parses a size such as `64M`, `1G`, `512K` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let number: u64 = digits.parse().map_err(|_| format!("bad size `{text}` (e.g. 64M)"))?;
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        _ => return Err(format!("bad size unit in `{text}` (K, M or G)").into()),
    };
    Ok(number.checked_mul(scale).ok_or_else(|| format!("size `{text}` is too large"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_attach_on_the_boots_transport_and_read_only_is_passed_on() {
        let disk = Disk { image: "/tmp/a.img".into(), read_only: true, snapshot: false };
        let pci = disk.qemu_args(1, VirtioTransport::Pci).join(" ");
        assert_eq!(pci, "-drive file=/tmp/a.img,if=none,id=disk1,format=raw,cache=writeback,readonly=on -device virtio-blk-pci,drive=disk1,disable-legacy=on");
        let mmio = Disk::new("/tmp/b.img").qemu_args(0, VirtioTransport::Mmio).join(" ");
        assert!(mmio.contains("readonly=off") && mmio.contains("force-legacy=false") && mmio.ends_with("virtio-blk-device,drive=disk0"), "{mmio}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").is_err() && parse_size("M").is_err() && parse_size("99999999999G").is_err());
    }

    #[test]
    fn missing_images_are_refused_with_a_hint() {
        let e = Disk::parse("/nonexistent/disk.img:ro").unwrap_err().to_string();
        assert!(e.contains("./x disk create"), "{e}");
    }
}
