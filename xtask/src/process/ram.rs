//! The VMs' RAM as the host reaches it: every VM's RAM is a shared memory file of its QEMU,
//! which pipe transfers read and write ([`VmRam`]) and a fork's spare QEMU is emptied through
//! ([`clear_ram`]).

use super::{Pid, Vm};
use super::pipes::Ram;
use crate::arch::Arch;
use libos_process_protocol::Segment;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

/// Where guest-physical address 0 of RAM is: x86_64's RAM starts at 0, aarch64 `virt`'s at
/// 1 GiB (the shared memory file holds RAM from its start).
pub(super) fn ram_base(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 0,
        Arch::Aarch64 => 0x4000_0000,
    }
}

/// The VMs' RAM for pipe transfers: each VM's shared memory file, found among its QEMU's open
/// files (`/proc/PID/fd`, its one `memfd:memory-backend-memfd`) at first use.
pub(super) struct VmRam<'a> {
    pub(super) vms: &'a BTreeMap<Pid, Vm>,
    pub(super) base: u64,
}

impl VmRam<'_> {
    fn file(&self, pid: Pid) -> std::io::Result<&std::fs::File> {
        let vm = self.vms.get(&pid).ok_or_else(|| std::io::Error::other("no such VM"))?;
        vm.ram.as_ref().ok_or_else(|| std::io::Error::other("RAM not open"))
    }

    /// Opens every VM's RAM file that is not open yet.
    pub(super) fn open_all(vms: &mut BTreeMap<Pid, Vm>) {
        for vm in vms.values_mut().filter(|vm| vm.ram.is_none()) {
            vm.ram = open_ram(vm.qemu).ok();
        }
    }

    /// Calls `f` with the file offset and length of each piece of `segments` from `skip` on,
    /// `len` bytes in all. Errors: a piece outside RAM.
    fn walk(&self, file: &std::fs::File, segments: &[Segment], mut skip: u64, mut len: usize, mut f: impl FnMut(u64, usize) -> std::io::Result<()>) -> std::io::Result<()> {
        let size = file.metadata()?.len();
        for segment in segments {
            let seg_len = u64::from(segment.len);
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let n = ((seg_len - skip) as usize).min(len);
            let offset = segment.addr.checked_sub(self.base).and_then(|o| o.checked_add(skip)).filter(|&o| o.checked_add(n as u64).is_some_and(|end| end <= size));
            f(offset.ok_or_else(|| std::io::Error::other("a segment outside the VM's RAM"))?, n)?;
            skip = 0;
            len -= n;
            if len == 0 {
                return Ok(());
            }
        }
        if len == 0 { Ok(()) } else { Err(std::io::Error::other("segments shorter than the transfer")) }
    }
}

impl Ram for VmRam<'_> {
    fn read(&self, pid: Pid, segments: &[Segment], skip: u64, out: &mut [u8]) -> std::io::Result<()> {
        let file = self.file(pid)?;
        let mut at = 0;
        self.walk(file, segments, skip, out.len(), |offset, n| {
            file.read_exact_at(&mut out[at..at + n], offset)?;
            at += n;
            Ok(())
        })
    }

    fn write(&self, pid: Pid, segments: &[Segment], skip: u64, data: &[u8]) -> std::io::Result<()> {
        let file = self.file(pid)?;
        let mut at = 0;
        self.walk(file, segments, skip, data.len(), |offset, n| {
            file.write_all_at(&data[at..at + n], offset)?;
            at += n;
            Ok(())
        })
    }
}

/// QEMU `qemu`'s RAM file (the one `memory-backend-memfd` it has; QEMU names the memfd after the backend type).
pub(super) fn open_ram(qemu: u32) -> std::io::Result<std::fs::File> {
    for entry in std::fs::read_dir(format!("/proc/{qemu}/fd"))?.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("/memfd:memory-backend-memfd") {
            return std::fs::OpenOptions::new().read(true).write(true).open(entry.path());
        }
    }
    Err(std::io::Error::other(format!("QEMU {qemu} has no shared RAM file")))
}

/// Empties QEMU `qemu`'s RAM file (every page then reads zero).
pub(super) fn clear_ram(qemu: u32) -> std::io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let ram = open_ram(qemu)?;
    let len = i64::try_from(ram.metadata()?.len()).map_err(std::io::Error::other)?;
    fallocate(&ram, FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, len).map_err(std::io::Error::from)
}
