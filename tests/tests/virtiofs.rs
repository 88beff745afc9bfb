//! What the guest does with a virtio-fs share (the host side, daemons and their lifecycle, is
//! tested in `shares.rs`): the VFS conformance suite on a share, byte-identical files in both
//! directions, fsync durability across a killed QEMU, no host fd leak over many creates and
//! unlinks (FORGET works), `EIO` rather than a hang when virtiofsd dies, a clear boot error for
//! a tag nobody shares, and root on virtio-fs. Every test runs on both architectures (x86_64
//! microvm and aarch64 virt: virtio-mmio v2); `every_transport_carries_a_share` adds legacy
//! virtio-mmio v1 and virtio-pci (q35, aarch64 virt).

use libos_tests::{Boot, TempDir, arches, share_pattern as pattern};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use xtask::arch::Arch;
use xtask::qemu::{Exit, Machine, VirtioTransport};

fn pattern_bytes(size: u64) -> Vec<u8> {
    (0..size).map(pattern).collect()
}

fn assert_pattern_file(path: &Path, size: u64) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(data.len() as u64, size, "{} has the wrong size", path.display());
    if let Some(at) = data.iter().enumerate().position(|(i, &b)| b != pattern(i as u64)) {
        panic!("{}: byte {at} differs from what the guest wrote", path.display());
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

const SIZES: [(&str, u64); 4] = [("empty", 0), ("one", 1), ("mib-plus-one", (1 << 20) + 1), ("64-mib", 64 << 20)];

/// Runs the whole VFS conformance suite on a share of `dir` (every case of the suite, so a case
/// added to the VFS runs here too).
fn conformance_on(dir: &TempDir, arch: Arch) {
    Boot::app("vfs-conformance")
        .share(dir.dir(), "share")
        .args(&["--fs", "virtiofs:share"])
        .timeout(Duration::from_secs(300))
        .on(arch)
        .prints("skipped: privileged_attribute_namespaces: the host daemon decides")
        .prints(&format!("conformance: {} cases on virtiofs", libos_vfs::conformance::CASES.len() - 1))
        .prints(" passed, 0 failed")
        .exits_with(0);
}

/// On the host's tmpfs, like the benchmark's shares.
#[test]
fn conformance_suite_passes_on_a_share() {
    for arch in arches() {
        conformance_on(&TempDir::on_tmpfs("conformance", arch), arch);
    }
}

/// ext4 (the host's root file system here) differs from tmpfs where it matters to FUSE clients:
/// hashed directory cookies, with `i64::MAX` as the end-of-directory mark, which virtiofsd passes
/// on (this test found a collision with the VFS's own `.`/`..` cookies).
#[test]
fn conformance_suite_passes_on_an_ext4_share() {
    for arch in arches() {
        conformance_on(&TempDir::new("conformance-ext4", arch), arch);
    }
}

#[test]
fn files_are_byte_identical_on_host_and_guest() {
    for arch in arches() {
        let dir = TempDir::new("coherence", arch);
        let mut args = Vec::new();
        for (name, size) in SIZES {
            std::fs::write(dir.path(&format!("from-host-{name}")), pattern_bytes(size)).unwrap();
            args.extend(["check".to_string(), format!("/share/from-host-{name}"), size.to_string()]);
            args.extend(["write".to_string(), format!("/share/from-guest-{name}"), size.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let booted = Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .options("mount=virtiofs:share:/share")
            .memory("128M")
            .args(&args)
            .timeout(Duration::from_secs(300))
            .on(arch);
        booted.exits_with(0);
        for (name, size) in SIZES {
            booted.prints(&format!("checked /share/from-host-{name} {size}"));
            assert_pattern_file(&dir.path(&format!("from-guest-{name}")), size);
        }
    }
}

#[test]
fn fsynced_data_survives_a_killed_qemu() {
    for arch in arches() {
        let dir = TempDir::new("durable", arch);
        let size = 3 * (1 << 20) + 17;
        let started = Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .log_fuse_requests()
            .options("mount=virtiofs:share:/share")
            .args(&["durable", "/share/durable", &size.to_string()])
            .start(arch);
        started.wait_for("synced /share/durable", Duration::from_secs(60));
        // The guest's fsync returned: its FUSE_FSYNC must have reached virtiofsd (which
        // fsyncs the host file), else the data below may be there only by luck of the page
        // cache. virtiofsd's debug log has one line per request it received.
        let log = started.running.daemons().expect("a boot with a share has a daemon").log(0);
        let fsyncs = log.lines().filter(|line| line.contains("opcode=Fsync ")).count();
        let writes = log.lines().filter(|line| line.contains("opcode=Write ")).count();
        assert!(fsyncs >= 1, "{arch}: no FUSE_FSYNC reached virtiofsd before `synced` ({writes} WRITEs did); its log ends:\n{}", tail(&log, 20));
        started.running.kill(); // SIGKILL: nothing in the guest or QEMU gets to flush anything
        started.finish();
        assert_pattern_file(&dir.path("durable"), size);
    }
}

#[test]
fn ten_thousand_creates_and_unlinks_leak_no_host_fds() {
    for arch in arches() {
        let dir = TempDir::new("churn", arch);
        let started = Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .options("mount=virtiofs:share:/share")
            .args(&["churn", "/share", "100", "wait-file", "/share/go", "churn", "/share", "10000", "wait-file", "/share/done", "stats"])
            .timeout(Duration::from_secs(300))
            .start(arch);
        let pid = started.running.daemons().expect("a boot with a share has a daemon").pid(0);
        started.wait_for("waiting for /share/go", Duration::from_secs(60));
        let before = open_fds(pid);
        std::fs::write(dir.path("go"), b"").unwrap();
        started.wait_for("waiting for /share/done", Duration::from_secs(280));
        let after = open_fds(pid);
        std::fs::write(dir.path("done"), b"").unwrap();
        let booted = started.finish();
        // virtio-mmio v2's SHMSel/SHMLen read back "no such region" (no host offers DAX).
        booted.exits_with(0).prints("churned 10000").prints("shared memory share: None");
        // Without FORGET virtiofsd keeps one fd per inode it was asked about: 10 000 here.
        assert!(before > 0 && after <= before + 16, "virtiofsd had {before} fds open before and {after} after 10 000 files on {arch}");
        assert!(std::fs::read_dir(dir.dir()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with("churn-")));
    }
}

#[test]
fn a_dead_virtiofsd_gives_eio_not_a_hang() {
    for arch in arches() {
        let dir = TempDir::new("dead", arch);
        std::fs::write(dir.path("file"), b"data").unwrap();
        let started = Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .options("mount=virtiofs:share:/share virtiofs_timeout=3")
            .args(&["until-error", "/share/file"])
            .timeout(Duration::from_secs(60))
            .start(arch);
        started.wait_for("reading", Duration::from_secs(60));
        let pid = started.running.daemons().expect("daemons").pid(0);
        let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        assert!(status.success());
        let booted = started.finish();
        booted.prints("no reply to opcode").prints("read failed: EIO");
        // The guest exits 0; QEMU complains on stderr about the backend it lost, which turns
        // x86's isa-debug-exit status 1 (code 0) into "QEMU failed" for the harness.
        match &booted.outcome.exit {
            Exit::Code(0) => {}
            Exit::QemuFailed(Some(1), stderr) if arch == Arch::X86_64 && stderr.contains("vhost") => {}
            other => panic!("expected exit code 0 on {arch}, got {other:?}\n{}", booted.outcome.console),
        }
    }
}

#[test]
fn unknown_tags_and_missing_devices_stop_the_boot() {
    for arch in arches() {
        let dir = TempDir::new("tags", arch);
        Boot::app("vfs-share")
            .share(dir.dir(), "share")
            .options("mount=virtiofs:other:/x")
            .args(&["stats"])
            .on(arch)
            .prints("no virtio-fs device with tag `other` (tags: share)")
            .exits_with(103);
        Boot::app("vfs-share")
            .options("root=virtiofs:root")
            .args(&["stats"])
            .on(arch)
            .prints("no virtio-fs device for tag `root`: this machine has no virtio-fs device")
            .exits_with(103);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_wordcount_demo_runs_on_a_virtio_fs_root() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/wordcount/example");
    for arch in arches() {
        let dir = TempDir::new("wordcount", arch);
        copy_tree(&example, dir.dir());
        Boot::app("wordcount").root_share(dir.dir()).on(arch).prints("wordcount: report written to /results/report.txt").exits_with(0);
        let report = std::fs::read_to_string(dir.path("results/report.txt")).expect("the guest wrote its report on the host");
        assert!(report.contains("total: 4 lines, 46 words, "), "{report}");
        assert!(report.ends_with("8 the\n3 host\n2 a\n2 and\n2 directory\n"), "{report}");
    }
}

/// One share through a given transport: a host file checked, a guest file written back, three
/// threads with requests in flight at once, and the device's counters.
fn share_through(arch: Arch, name: &str, boot: Boot, expect_transport: &str, expect_interrupts: bool) {
    let dir = TempDir::new(name, arch);
    let size = (1u64 << 20) + 1;
    std::fs::write(dir.path("from-host"), pattern_bytes(size)).unwrap();
    let booted = boot
        .share(dir.dir(), "share")
        .options("mount=virtiofs:share:/share loglevel=info")
        .args(&["check", "/share/from-host", &size.to_string(), "write", "/share/from-guest", &size.to_string(), "parallel", "/share", "3", "stats"])
        .on(arch);
    booted.exits_with(0).prints(expect_transport).prints("checked /share/from-host");
    assert_pattern_file(&dir.path("from-guest"), size);
    let stats = booted.line_after("stats share: ");
    assert_eq!(!stats.contains("interrupts: 0,"), expect_interrupts, "{name} on {arch}: {stats}");
    // No host here offers a DAX window (QEMU 10's vhost-user-fs has no cache size): the
    // transports read the region registers / capabilities and report none.
    booted.prints("shared memory share: None");
}

#[test]
fn every_transport_carries_a_share() {
    for arch in arches() {
        // QEMU's own default for virtio-mmio (the harness asks for version 2).
        let legacy = Boot::app("vfs-share").transport(VirtioTransport::MmioLegacy);
        share_through(arch, "mmio-v1", legacy, "at virtio-mmio v1 @", true);
        match arch {
            // MSI-X through the local APIC; microvm's PCIe host is known from its DSDT only.
            Arch::X86_64 => {
                share_through(arch, "q35", Boot::app("vfs-share").machine(Machine::Q35), "at virtio-pci 00:", true);
                share_through(arch, "microvm-pcie", Boot::app("vfs-share").machine(Machine::MicrovmPcie), "at virtio-pci 00:", true);
            }
            // No GICv2m/ITS driver: the PCI device is polled.
            Arch::Aarch64 => {
                share_through(arch, "pci", Boot::app("vfs-share").transport(VirtioTransport::Pci), "at virtio-pci 00:", false);
            }
        }
    }
}

/// The last `n` lines of `text` (for failure messages).
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
