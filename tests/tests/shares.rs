//! The host side of virtio-fs shares: every boot with `--share` gets its own virtiofsd, wired
//! to QEMU, and nothing outlives the guest, whether it exits or QEMU is killed.
//! (What the guest does with a share is tested in `virtiofs.rs`.)

use libos_tests::{Boot, TempDir, arches};
use xtask::arch::Arch;
use std::path::Path;
use std::time::Duration;
use xtask::qemu::Exit;

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn daemons_serve_the_boot_and_stop_with_it() {
    let tmp = TempDir::new("shares", Arch::host());
    let dir = tmp.dir().to_path_buf();
    for arch in arches() {
        let started = Boot::app("hello").share(&dir, "data").share(std::env::temp_dir(), "tmp").start(arch);
        let daemons = started.running.daemons().expect("a boot with shares has daemons");
        let pids = [daemons.pid(0), daemons.pid(1)];
        assert_ne!(pids[0], pids[1], "one virtiofsd per share");
        started.finish().exits_with(0).prints("Hello from libos");
        for pid in pids {
            assert!(!alive(pid), "virtiofsd {pid} outlived the guest on {arch}");
        }
    }
    drop(tmp);
}

#[test]
fn killing_qemu_stops_the_daemons() {
    for arch in arches() {
        let started = Boot::app("selftest").args(&["hang"]).share(std::env::temp_dir(), "tmp").start(arch);
        started.wait_for("hanging until killed", Duration::from_secs(30));
        let pid = started.running.daemons().expect("daemons").pid(0);
        assert!(alive(pid), "virtiofsd runs while the guest does");
        started.running.kill();
        let booted = started.finish();
        assert!(matches!(booted.outcome.exit, Exit::QemuFailed(..) | Exit::NoCode), "{:?}", booted.outcome.exit);
        assert!(!alive(pid), "virtiofsd {pid} outlived a killed QEMU on {arch}");
    }
}
