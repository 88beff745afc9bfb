//! Program input the kernel must not trust (issue 18, item 8), in a real guest on every
//! architecture: bad but plausible pointers give `EFAULT` instead of a kernel fault, memory a
//! program cannot write is written neither by the kernel nor by a device's DMA, `MAP_SHARED`
//! file mappings reach their file (`msync`, `munmap`, `mremap`, exit), `munmap` during a
//! blocked `read` into the buffer is safe (`apps/c-shimtest/c/memory.c`), and the ELF loader
//! refuses a file whose segments lie over a device window.

use libos_tests::{Boot, TempDir, arches};
use std::process::Command;
use xtask::arch::Arch;

/// The `memory` family with a raw disk of 0x5a bytes as `/dev/vda`, so the family also reads
/// by DMA (`O_DIRECT`) into read-only memory.
#[test]
fn bad_pointers_fault_and_read_only_memory_is_never_written() {
    for arch in arches() {
        let dir = TempDir::new("memory", arch);
        let disk = dir.path("vda.img");
        std::fs::write(&disk, vec![0x5au8; 1 << 20]).unwrap();
        Boot::app("c-shimtest")
            .disk(&disk, true)
            .args(&["memory"])
            .on(arch)
            .exits_with(0)
            .prints("memory: DMA into read-only memory refused\n")
            .prints("ok memory\n")
            .does_not_print("FAIL");
    }
}

/// A shared file mapping left modified at exit (no `munmap`, no `msync`) reaches the disk.
#[test]
fn shared_mappings_are_written_back_at_exit() {
    for arch in arches() {
        let dir = TempDir::new("memory-exit", arch);
        let image = dir.path("vda.img");
        xtask::disk::create_ext2(&image, 4 << 20, None, None).unwrap_or_else(|e| panic!("mke2fs: {e}"));
        Boot::app("c-shimtest")
            .disk(&image, false)
            .options("mount=ext2:vda:/data")
            .args(&["memory-exit"])
            .on(arch)
            .exits_with(0)
            .prints("ok memory-exit\n");
        let output = Command::new("/usr/sbin/debugfs").arg("-R").arg("cat /shared.bin").arg(&image).output().expect("running debugfs");
        let mut expected = vec![b'a'; 8192];
        expected[4096..4096 + 20].copy_from_slice(b"written back at exit");
        assert!(output.stdout == expected, "{arch}: /shared.bin after exit is not what the mapping held ({} bytes)", output.stdout.len());
    }
}

/// A static executable with one read + execute segment at `base` whose code exits with 0.
fn program_at(arch: Arch, base: u64) -> Vec<u8> {
    let (machine, code): (u16, &[u8]) = match arch {
        // mov eax, 231 (exit_group); xor edi, edi; syscall
        Arch::X86_64 => (62, &[0xb8, 0xe7, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]),
        // mov x0, #0; mov x8, #94 (exit_group); svc #0
        Arch::Aarch64 => (183, &[0x00, 0x00, 0x80, 0xd2, 0xc8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]),
    };
    let size = 120 + code.len() as u64;
    let mut f = vec![0u8; 120];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little-endian
    f[6] = 1; // version
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&(base + 120).to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[68..72].copy_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for (i, v) in [0, base, base, size, size, 0x1000].iter().enumerate() {
        f[72 + i * 8..80 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

/// A program linked over the interrupt controller's registers is refused before anything is
/// mapped (else its pages would replace the kernel's view of the device).
#[test]
fn elf_segments_over_device_windows_are_refused() {
    for arch in arches() {
        let (base, what) = match arch {
            Arch::X86_64 => (0xfec0_0000u64, "the interrupt controllers"),
            Arch::Aarch64 => (0x0800_0000, "the interrupt controller"),
        };
        let dir = TempDir::new("elf-device", arch);
        let root = dir.dir().to_path_buf();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/at-device"), program_at(arch, base)).unwrap();
        std::fs::set_permissions(root.join("bin/at-device"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let booted = Boot::app("elf-runner").root_share(&root).args(&["/bin/at-device"]).on(arch);
        drop(dir);
        booted
            .exits_with(126)
            .prints(&format!("posix-shim: cannot run /bin/at-device: page {base:#x} would overlap {what}"));
    }
}
