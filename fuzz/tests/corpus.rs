//! Replays the kept corpus (`fuzz/corpus/TARGET/*`: seeds, and every input that once found a
//! bug) through each target's body, without libFuzzer: part of the host tests, so a fixed bug
//! stays fixed even where nobody runs `./x fuzz`.
//!
//! `cargo test -p libos-fuzz -- --ignored write_seeds` rewrites the generated seeds (files named
//! `seed-*`); inputs found by fuzzing are kept under their libFuzzer names.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

#[test]
fn every_target_has_a_corpus_and_replays_it() {
    for &(name, run) in libos_fuzz::TARGETS {
        let dir = corpus(name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: empty corpus");
        for input in inputs {
            let data = std::fs::read(&input).expect("read corpus input");
            run(&data);
        }
    }
}

#[test]
#[ignore = "writes the generated seeds into fuzz/corpus"]
fn write_seeds() {
    for (target, name, bytes) in seeds::all() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
}

mod seeds {
    use libos_vfs::cpio::Builder;

    type Seed = (&'static str, &'static str, Vec<u8>);

    pub fn all() -> Vec<Seed> {
        let mut all = Vec::new();
        all.extend(cpio());
        all.extend(cmdline());
        all.extend(elf());
        all.extend(acpi());
        all.extend(dtb());
        all.push(("mmap", "calls", vec![0, 4, 8, 0, 0, 0, 0, 0, 6, 2, 2, 1, 0, 32, 1, 5, 9, 0, 3, 1, 0, 0, 0, 0, 3, 7, 7]));
        // fuse: create, write, stat, readdir, rename, read, unlink; the second half (damage)
        // is all zeros: nothing damaged.
        let ops = [0u8, 0, 0, 0x10, 0, 0, 0, 4, 0, 0, 0, 0, 3, 2, 0, 0, 0, 2, 2, 0, 0, 0, 8, 0, 1, 0, 0, 1, 1, 0, 0x10, 0, 0, 0, 6, 1, 0, 0, 0];
        let mut fuse = ops.to_vec();
        fuse.extend(vec![0u8; ops.len()]);
        all.push(("fuse", "ops", fuse));
        all
    }

    fn cpio() -> Vec<Seed> {
        let mut sample = Builder::new();
        sample.dir(".", 0o755).dir("etc", 0o755).file("etc/motd", 0o644, b"hello\n").symlink("motd", "etc/motd");
        sample.symlink("lib", "etc").file("lib/through", 0o644, b"inside");
        let mut escape_root = Builder::new();
        escape_root.symlink("a", "/").file("a/x", 0o644, b"escaped");
        let mut escape_up = Builder::new();
        escape_up.symlink("a", "..").file("a/x", 0o644, b"escaped").dir("a/d", 0o755);
        let mut escape_deep = Builder::new();
        escape_deep.dir("d", 0o755).symlink("d/up", "../..").symlink("b", "d/up/outside").file("b/secret", 0o644, b"overwritten");
        vec![
            ("cpio", "sample", sample.finish()),
            ("cpio", "escape-root", escape_root.finish()),
            ("cpio", "escape-up", escape_up.finish()),
            ("cpio", "escape-deep", escape_deep.finish()),
        ]
    }

    fn cmdline() -> Vec<Seed> {
        let lines = [
            "loglevel=info bootstats root=ramfs mount=devfs:/dev -- \"two words\" a\\ b",
            "walltime=1700000000 env=A=1 env=B=\"x y\" mount=virtiofs:data:/mnt",
            "virtiofs_timeout=0 blk_cache=64K blk_timeout=5 sched=rr timeslice=10 ip=10.0.2.15/24,gw=10.0.2.1 -- -x",
        ];
        lines.iter().enumerate().map(|(i, l)| ("cmdline", ["basic", "env", "features"][i], l.as_bytes().to_vec())).collect()
    }

    /// A minimal ELF64 file: header, one `PT_PHDR`-less table of `phdrs` after it.
    fn elf_file(e_type: u16, machine: u16, entry: u64, phdrs: &[[u64; 7]], size: usize) -> Vec<u8> {
        let mut f = vec![0u8; size];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        f[58..60].copy_from_slice(&64u16.to_le_bytes());
        for (i, [p_type, flags, offset, vaddr, filesz, memsz, align]) in phdrs.iter().enumerate() {
            let at = 64 + i * 56;
            f[at..at + 4].copy_from_slice(&(*p_type as u32).to_le_bytes());
            f[at + 4..at + 8].copy_from_slice(&(*flags as u32).to_le_bytes());
            for (j, v) in [offset, vaddr, vaddr, filesz, memsz, align].iter().enumerate() {
                f[at + 8 + j * 8..at + 16 + j * 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        f
    }

    fn elf() -> Vec<Seed> {
        let layout = |base: u64| {
            [[1, 4, 0, base, 0x200, 0x200, 0x1000], [1, 5, 0x1000, base + 0x1000, 0x100, 0x100, 0x1000], [1, 6, 0x2000, base + 0x3000, 0x80, 0x2100, 0x1000]]
        };
        vec![
            ("elf", "exec-x86_64", elf_file(2, 62, 0x40_1010, &layout(0x40_0000), 0x2080)),
            ("elf", "pie-aarch64", elf_file(3, 183, 0x1010, &layout(0), 0x2080)),
        ]
    }

    /// Firmware memory as the acpi target reads it: flags byte 1 (repair checksums), then an
    /// RSDP at 0, an RSDT, a FADT (legacy PM1a and hardware-reduced sleep control), a DSDT
    /// with `\_S5_` and a virtio-mmio device, an MCFG and a MADT.
    fn acpi() -> Vec<Seed> {
        let mut memory = vec![0u8; 0x1000];
        let put = |m: &mut Vec<u8>, at: usize, bytes: &[u8]| m[at..at + bytes.len()].copy_from_slice(bytes);
        put(&mut memory, 0, b"RSD PTR ");
        put(&mut memory, 16, &0x40u32.to_le_bytes());
        let table = |m: &mut Vec<u8>, at: usize, signature: &[u8; 4], len: usize| {
            put(m, at, signature);
            put(m, at + 4, &(len as u32).to_le_bytes());
            m[at + 8] = 2;
        };
        table(&mut memory, 0x40, b"RSDT", 36 + 12);
        for (i, addr) in [0x100u32, 0x300, 0x380].iter().enumerate() {
            put(&mut memory, 0x40 + 36 + 4 * i, &addr.to_le_bytes());
        }
        table(&mut memory, 0x100, b"FACP", 276);
        put(&mut memory, 0x100 + 40, &0x220u32.to_le_bytes());
        put(&mut memory, 0x100 + 64, &0x604u32.to_le_bytes());
        memory[0x100 + 244] = 1;
        put(&mut memory, 0x100 + 248, &0x404u64.to_le_bytes());
        let mut aml = vec![0x08];
        aml.extend_from_slice(b"_S5_");
        aml.extend_from_slice(&[0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00]);
        aml.extend_from_slice(b"LNRO0005");
        aml.extend_from_slice(&[0x86, 0x09, 0x00, 0x01]);
        aml.extend_from_slice(&0xfeb0_0000u32.to_le_bytes());
        aml.extend_from_slice(&0x200u32.to_le_bytes());
        aml.extend_from_slice(&[0x89, 0x06, 0x00, 0x01, 0x01, 0x10, 0, 0, 0, 0x79, 0x00]);
        table(&mut memory, 0x220, b"DSDT", 36 + aml.len());
        put(&mut memory, 0x220 + 36, &aml);
        table(&mut memory, 0x300, b"MCFG", 60);
        put(&mut memory, 0x300 + 44, &0xb000_0000u64.to_le_bytes());
        memory[0x300 + 55] = 0xff;
        table(&mut memory, 0x380, b"APIC", 56);
        put(&mut memory, 0x380 + 44, &[1, 12, 0, 0]);
        put(&mut memory, 0x380 + 48, &0xfec0_0000u32.to_le_bytes());
        let mut input = vec![1u8];
        input.extend_from_slice(&memory);
        let mut unrepaired = vec![0u8];
        unrepaired.extend_from_slice(&memory);
        vec![("acpi", "tables", input), ("acpi", "bad-checksums", unrepaired)]
    }

    fn dtb() -> Vec<Seed> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform/aarch64/src/testdata");
        ["virt-gicv2", "virt-gicv3"]
            .iter()
            .map(|name| ("dtb", *name, std::fs::read(dir.join(format!("{name}.dtb"))).expect("QEMU's DTB")))
            .collect()
    }
}
