//! File systems in the guest: the VFS conformance suite on ramfs, the `libos::fs` demo with its
//! initial files, and the `root=`/`mount=` kernel options.

use libos_tests::{Boot, arches};

const BOOT_ERROR: i32 = 103;

#[test]
fn conformance_suite_passes_in_the_guest() {
    for arch in arches() {
        let booted = Boot::app("vfs-conformance").on(arch);
        booted.exits_with(0).does_not_print("FAILED").prints("ok: rename_directories").prints("ok: model");
        let cases = booted.line_after("conformance: ").split(' ').next().and_then(|n| n.parse::<usize>().ok());
        let cases = cases.expect("the first line names the number of cases");
        assert!(cases >= 25, "only {cases} cases ran");
        booted.prints(&format!("conformance: {cases} passed, 0 failed"));
    }
}

#[test]
fn the_suite_is_not_ramfs_specific() {
    for arch in arches() {
        // TinyFs keeps files in one Vec (no holes): the sparse case needs room for 16 MiB.
        let booted = Boot::app("vfs-conformance").args(&["--fs", "tinyfs"]).memory("128M").on(arch);
        booted.exits_with(0).does_not_print("FAILED").prints(" cases on tinyfs\n").prints(" passed, 0 failed");
        Boot::app("vfs-conformance")
            .args(&["--fs", "tinyfs", "--model", "20"])
            .on(arch)
            .exits_with(0)
            .prints("model: 20 sequences of 150 operations agree");
        Boot::app("vfs-conformance").args(&["--fs", "ext9"]).on(arch).exits_with(2).prints("usage: vfs-conformance");
    }
}

#[test]
fn cases_are_picked_by_name() {
    for arch in arches() {
        Boot::app("vfs-conformance").args(&["no_such_case"]).on(arch).exits_with(2).prints("no case `no_such_case`");
        Boot::app("vfs-conformance")
            .args(&["symlink_loops", "mounts"])
            .on(arch)
            .exits_with(0)
            .prints("ok: symlink_loops\nok: mounts\nconformance: 2 passed, 0 failed");
    }
}

#[test]
fn fsdemo_uses_the_std_like_api() {
    for arch in arches() {
        Boot::app("fsdemo")
            .on(arch)
            .exits_with(0)
            .prints("fsdemo: /etc/motd: Welcome to libos: this file came from the image.\n")
            .prints("fsdemo: words.txt has 3 words")
            .prints("fsdemo: app.log has 3 lines, 21 bytes")
            .prints("fsdemo: settings: 10 bytes, 2 links, mode 100644")
            .prints("fsdemo: /data: latest logs settings settings.link")
            .prints("fsdemo: remove_dir(/data) refused: ENOTEMPTY")
            .prints("the hard link still reads \"answer=42\\n\"")
            .prints("fsdemo: the symlink now dangles: Some(ENOENT)")
            .prints("fsdemo: sparse file: 10485763 bytes in 8 blocks")
            .prints("fsdemo: /dev/zero gave [0, 0, 0, 0], /dev/urandom gave 8 bytes")
            .prints("fsdemo: written through /dev/console")
            .prints("fsdemo: /dev/full: Some(ENOSPC)")
            .prints("fsdemo: mount ramfs on /\nfsdemo: mount devfs on /dev\n")
            .prints("fsdemo: root statfs: type 0x858458f6")
            .prints("fsdemo: done");
    }
}

#[test]
fn mounts_come_from_the_command_line() {
    for arch in arches() {
        Boot::app("fsdemo")
            .options("root=ramfs mount=ramfs:/mnt/a mount=ramfs:/mnt/a/b mount=devfs:/dev2")
            .on(arch)
            .exits_with(0)
            .prints("fsdemo: mount ramfs on /mnt/a\nfsdemo: mount ramfs on /mnt/a/b\nfsdemo: mount devfs on /dev2\n");
    }
}

#[test]
fn bad_file_system_options_stop_the_boot() {
    for arch in arches() {
        Boot::app("fsdemo")
            .options("root=ext9")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("libos: cannot boot: unknown file system `ext9` (this image has: ramfs, devfs, proc, sysfs)")
            .does_not_print("fsdemo:");
        Boot::app("fsdemo")
            .options("mount=ramfs:relative")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("kernel option `mount` does not accept `ramfs:relative` (expected FS:/PATH, e.g. ramfs:/tmp)");
        Boot::app("fsdemo")
            .options("mount=tmpfs:/tmp")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("unknown file system `tmpfs`");
        // Initial files need a writable root.
        Boot::app("fsdemo")
            .options("root=devfs")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("libos: cannot boot: initial files: Operation not permitted (EPERM)");
        // An image without file systems says so instead of ignoring the option.
        Boot::app("hello")
            .options("root=ramfs")
            .on(arch)
            .exits_with(BOOT_ERROR)
            .prints("need file systems: build the app with libos feature `fs-ramfs`");
    }
}
