//! pjdfstest, the POSIX file-system test suite from outside this repository (issue 18), as an
//! unmodified static Linux program on libos (`xtask::pjdfstest`: its Rust rewrite from the
//! Rust registry, run by elf-runner under the process host as `./x run --elf` runs it), on
//! each root file system and both architectures. Every one of its 398 cases must pass (there
//! are no `xtask::pjdfstest::KNOWN_FAILURES` left), and be skipped only for the reasons the
//! host run skips them too
//! (`xtask::pjdfstest::EXPECTED_SKIPS`). The ext2 volume must be clean for `e2fsck -fn`
//! afterwards (`run_guest` checks it). `./x pjdfstest` runs the same and the host side by side.
//!
//! The first run builds the suite (about 30 s for x86_64 and 80 s for aarch64, cached in
//! `/var/cache/libos`).

use libos_tests::arches;
use xtask::outside::Root;
use xtask::pjdfstest::run_guest;

/// The cases pjdfstest 0.2.2 has (a run that stops early lists fewer).
const CASES: usize = 398;

fn passes_on(root: Root) {
    for arch in arches() {
        let (report, console) = run_guest(arch, root, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.cases.len(), CASES, "{arch} {}: the run listed {} cases:\n{console}", root.name(), report.cases.len());
        let unexpected = report.unexpected();
        assert!(unexpected.is_empty(), "{arch} {}: {unexpected:#?}", root.name());
        let (passed, failed, skipped) = report.counts();
        eprintln!("pjdfstest on {arch} {}: {passed} passed, {failed} known failures, {skipped} skipped", root.name());
    }
}

#[test]
fn pjdfstest_passes_on_a_ramfs_root() {
    passes_on(Root::Ramfs);
}

#[test]
fn pjdfstest_passes_on_a_virtio_fs_root() {
    passes_on(Root::Virtiofs);
}

#[test]
fn pjdfstest_passes_on_an_ext2_root() {
    passes_on(Root::Ext2);
}
