//! virtio-fs with a DAX window (issue 19): the patched QEMU (`xtask::dax_qemu`, built once into
//! `/var/cache/libos`) gives `vhost-user-fs-pci` a window BAR, our daemon
//! (`tools/virtiofsd-dax`) maps file ranges into it, and the guest reads mapped ranges from
//! memory. Every test runs on both architectures, through PCI (q35-like microvm with PCIe on
//! x86_64, `virt` with PCI on aarch64): byte-identical reads of files up to 1 GiB through a
//! window smaller than them (reclaim), the request and notification counts of cold and warm
//! reads, guest writes seen on the host and host writes seen by the guest while chunks are
//! mapped, a C program's `mmap` of files served by the window's own pages, a file truncated on
//! the host while mapped, the daemon dying, and the whole VFS conformance suite on a DAX share.

use libos_tests::{Boot, TempDir, arches, share_pattern as pattern};
use std::process::Command;
use std::time::Duration;
use xtask::arch::Arch;
use xtask::qemu::Exit;
use xtask::virtiofs::Cache;

const MIB: u64 = 1 << 20;

/// Writes `size` bytes of the pattern to `path`, a MiB at a time.
fn write_pattern_file(path: &std::path::Path, size: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; MIB as usize];
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(MIB) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(offset + i as u64);
        }
        file.write_all(&buf[..n]).unwrap();
        offset += n as u64;
    }
    file.flush().unwrap();
}

/// Fills `path` with `size` bytes of a per-file pseudo-random word stream (xorshift64, fast
/// enough to write a GiB from a debug build) and returns `vfs-share sum`'s hash of them.
fn write_random_file(path: &std::path::Path, size: u64, seed: u64) -> u64 {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut state = seed | 1;
    let (mut hash, mut written) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    while written < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (size - written).min(8) as usize;
        let mut word = [0u8; 8];
        word[..n].copy_from_slice(&state.to_le_bytes()[..n]);
        file.write_all(&word[..n]).unwrap();
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
        written += n as u64;
    }
    file.flush().unwrap();
    hash ^ size
}

/// The numbers of one `round N: ...` line of `vfs-share window-check`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Round {
    setupmapping: u64,
    read: u64,
    getattr: u64,
    requests: u64,
    window_bytes: u64,
    notifications: u64,
    mapped: u64,
}

fn round(console: &str, n: u32) -> Round {
    let prefix = format!("round {n}: ");
    let line = console.lines().find_map(|l| l.trim().strip_prefix(&prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in:\n{console}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let value = |name: &str| -> u64 {
        let at = words.iter().position(|w| *w == name).unwrap_or_else(|| panic!("no {name} in {line}"));
        words[at + 1].parse().unwrap()
    };
    Round {
        setupmapping: value("SETUPMAPPING"),
        read: value("READ"),
        getattr: value("GETATTR"),
        requests: value("requests"),
        window_bytes: value("window-bytes"),
        notifications: value("notifications"),
        mapped: value("mapped"),
    }
}

/// A boot of `vfs-share` with `dir` shared as `share` through a window of `window` bytes,
/// mounted by the app itself at /share (so it can read the mount's counters).
fn dax_boot(dir: &TempDir, window: u64, args: &[&str]) -> Boot {
    let mut all = vec!["mount", "share", "/share"];
    all.extend_from_slice(args);
    Boot::app("vfs-share").share(dir.dir(), "share").dax(window).memory("128M").args(&all).timeout(Duration::from_secs(600))
}

#[test]
fn cold_reads_map_each_chunk_once_and_warm_reads_send_nothing() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-warm", arch);
        let size = 5 * MIB + 123;
        write_pattern_file(&dir.path("file"), size);
        let booted = dax_boot(&dir, 64 * MIB, &["window-check", "/share/file", &size.to_string(), "3"]).on(arch);
        booted.prints("DAX window: 32").prints(&format!("window-checked /share/file {size}")).exits_with(0);
        let cold = round(&booted.outcome.console, 1);
        assert_eq!((cold.setupmapping, cold.read, cold.window_bytes), (3, 0, size), "{arch}: {cold:?}");
        for n in [2, 3] {
            let warm = round(&booted.outcome.console, n);
            // The attribute cache (1 s) may have expired during a slow round under TCG: at
            // most one GETATTR then, and nothing else.
            assert_eq!((warm.setupmapping, warm.read, warm.window_bytes, warm.mapped), (0, 0, size, 3), "{arch}: {warm:?}");
            assert!(warm.requests == warm.getattr && warm.getattr <= 1, "{arch} round {n}: {warm:?}");
            assert!(warm.notifications <= warm.requests, "{arch} round {n}: {warm:?}");
        }
    }
}

/// Files up to 1 GiB through a 64 MiB window: every chunk is mapped, then reclaimed for the
/// next, and every byte is the host's (the small files byte by byte against the pattern, the
/// large ones by a hash of their words that the host computes too).
#[test]
fn files_larger_than_the_window_read_byte_identical() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-large", arch);
        let patterned = [0, 1, 2 * MIB + 1];
        let hashed = [200 * MIB + 4095, 1 << 30];
        let mut args = Vec::new();
        for (i, size) in patterned.iter().enumerate() {
            write_pattern_file(&dir.path(&format!("p{i}")), *size);
            args.extend(["check".to_string(), format!("/share/p{i}"), size.to_string()]);
        }
        let mut sums = Vec::new();
        for (i, size) in hashed.iter().enumerate() {
            sums.push(write_random_file(&dir.path(&format!("h{i}")), *size, 0x9e37_79b9_7f4a_7c15 ^ i as u64));
            args.extend(["sum".to_string(), format!("/share/h{i}")]);
        }
        args.extend(["window-check".to_string(), "/share/p2".to_string(), (2 * MIB + 1).to_string(), "1".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let booted = dax_boot(&dir, 64 * MIB, &args).on(arch);
        booted.exits_with(0);
        for (i, size) in patterned.iter().enumerate() {
            booted.prints(&format!("checked /share/p{i} {size}"));
        }
        for (i, (size, hash)) in hashed.iter().zip(&sums).enumerate() {
            booted.prints(&format!("sum /share/h{i} {size} {hash:016x}"));
        }
        let last = round(&booted.outcome.console, 1);
        assert_eq!(last.read, 0, "{arch}: every read went through the window: {last:?}");
        assert!(last.mapped <= 32, "{arch}: {last:?}");
    }
}

#[test]
fn writes_from_both_sides_show_through_mapped_chunks() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-coherent", arch);
        let size = 3 * MIB;
        write_pattern_file(&dir.path("host"), size);
        // The guest maps the host's file, waits while the host rewrites it in place, and reads
        // the new bytes through the same mapping; it also writes a file of its own (WRITE
        // requests) and reads it back through the window.
        let started = dax_boot(&dir, 16 * MIB, &[
            "window-check", "/share/host", &size.to_string(), "1",
            "wait-file", "/share/go",
            "window-check", "/share/host", &size.to_string(), "1",
            "write", "/share/guest", &size.to_string(),
            "check", "/share/guest", &size.to_string(),
        ])
        .start(arch);
        started.wait_for("waiting for /share/go", Duration::from_secs(300));
        // Rewrite the host file in place with the same pattern shifted by nothing but a
        // different first MiB, then restore the pattern: what the guest checks is that it
        // sees the file as it is now (the pattern), after a change it did not make.
        {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(dir.path("host")).unwrap();
            file.write_all_at(&vec![0xAA; MIB as usize], 0).unwrap();
            let restored: Vec<u8> = (0..MIB).map(pattern).collect();
            file.write_all_at(&restored, 0).unwrap();
        }
        std::fs::write(dir.path("go"), b"").unwrap();
        let booted = started.finish();
        booted.exits_with(0);
        assert_eq!(round(&booted.outcome.console, 1).setupmapping, 2, "{arch}");
        let data = std::fs::read(dir.path("guest")).unwrap();
        assert!(data.iter().enumerate().all(|(i, &b)| b == pattern(i as u64)), "{arch}: the guest's writes reached the host");
    }
}

/// The host shrinks a file the guest has mapped. Reads after the guest learns the new size
/// are short; a read in between (the old size still cached) touches pages past the file's
/// end, where the patched QEMU puts zeros instead of dying of SIGBUS.
#[test]
fn a_file_truncated_on_the_host_while_mapped_reads_short_and_qemu_lives() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-truncate", arch);
        write_pattern_file(&dir.path("file"), 4 * MIB);
        let started = dax_boot(&dir, 16 * MIB, &[
            "window-check", "/share/file", &(4 * MIB).to_string(), "1",
            "wait-file", "/share/go",
            "read-any", "/share/file",
            "sleep-ms", "1500",
            "check", "/share/file", "10000",
        ])
        .start(arch);
        started.wait_for("waiting for /share/go", Duration::from_secs(300));
        std::fs::OpenOptions::new().write(true).open(dir.path("file")).unwrap().set_len(10_000).unwrap();
        std::fs::write(dir.path("go"), b"").unwrap();
        let booted = started.finish();
        booted.prints("read-any /share/file").prints("checked /share/file 10000").exits_with(0);
    }
}

/// A C program's `mmap(MAP_SHARED)` of files on a DAX share gets the window itself
/// (`apps/elf-runner/c/mapfile.c`, `direct`): the host file's bytes over three chunks, stores
/// seen by `pread` at once and `pwrite`s seen in the mapping at once, system calls with buffers
/// in the mapping, and the window's slots back after `munmap` (20 rounds of three chunks through
/// a window of four). What it stored is in the host files afterwards. The same program on a
/// share without a window (`copy`: mappings are copies there) passes the checks that hold for
/// copies.
#[test]
fn a_c_programs_file_mappings_are_the_windows_own_pages() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-mmap", arch);
        let host: Vec<u8> = (0..5 * MIB + 100).map(|i| (i % 251 + i / 4096) as u8).collect();
        std::fs::write(dir.path("host.bin"), &host).unwrap();
        Boot::app("elf-runner")
            .share(dir.dir(), "share")
            .dax(8 * MIB)
            .options("mount=virtiofs:share:/share loglevel=info")
            .args(&["/bin/mapfile", "/share", "direct"])
            .timeout(Duration::from_secs(600))
            .on(arch)
            .prints("DAX window of 8 MiB, 4 chunks of 2 MiB")
            .does_not_print("stays device memory")
            .does_not_print("FAIL")
            .prints("mapfile: ok\n")
            .exits_with(0);
        let rw = std::fs::read(dir.path("rw.bin")).unwrap();
        assert_eq!((rw[10], rw[4096 + 5]), (b'M', b'P'), "{arch}: stores through the mapping are in the host file");
        assert_eq!(rw[4 * MIB as usize + 4096], b'A' + 19, "{arch}: the last round's store is in the host file");
        assert!(std::fs::read(dir.path("host.bin")).unwrap() == host, "{arch}: the read-only mappings changed nothing");

        let plain = TempDir::on_tmpfs("mmap-copy", arch);
        std::fs::write(plain.path("host.bin"), &host).unwrap();
        Boot::app("elf-runner")
            .share(plain.dir(), "share")
            .options("mount=virtiofs:share:/share")
            .args(&["/bin/mapfile", "/share", "copy"])
            .on(arch)
            .does_not_print("FAIL")
            .prints("mapfile: ok\n")
            .exits_with(0);
        let rw = std::fs::read(plain.path("rw.bin")).unwrap();
        assert_eq!((rw[10], rw[4096 + 5]), (b'M', b'P'), "{arch}: stores through a copy reach the host file at munmap");
    }
}

#[test]
fn a_dead_daemon_gives_eio_not_a_hang() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-dead", arch);
        std::fs::write(dir.path("file"), b"data").unwrap();
        // `--cache=never`: every read asks for the size first, so it needs the daemon.
        let started = Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .dax(4 * MIB)
            .cache(Cache::Never)
            .options("mount=virtiofs:share:/share virtiofs_timeout=3")
            .args(&["until-error", "/share/file"])
            .timeout(Duration::from_secs(120))
            .start(arch);
        started.wait_for("reading", Duration::from_secs(120));
        let pid = started.running.daemons().expect("daemons").pid(0);
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
        let booted = started.finish();
        booted.prints("read failed: EIO");
        match &booted.outcome.exit {
            Exit::Code(0) => {}
            Exit::QemuFailed(Some(1), stderr) if arch == Arch::X86_64 && stderr.contains("vhost") => {}
            other => panic!("expected exit code 0 on {arch}, got {other:?}\n{}", booted.outcome.console),
        }
    }
}

#[test]
fn conformance_suite_passes_on_a_dax_share() {
    for arch in arches() {
        let dir = TempDir::on_tmpfs("dax-conformance", arch);
        Boot::app("vfs-conformance")
            .share(dir.dir(), "share")
            .dax(8 * MIB)
            .options("loglevel=info")
            .args(&["--fs", "virtiofs:share"])
            .timeout(Duration::from_secs(600))
            .on(arch)
            .prints("DAX window of 8 MiB, 4 chunks of 2 MiB")
            .does_not_print("skipped:")
            .prints(&format!("conformance: {} cases on virtiofs", libos_vfs::conformance::CASES.len()))
            .prints(" passed, 0 failed")
            .exits_with(0);
    }
}
