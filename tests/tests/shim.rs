//! posix-shim in a real guest on every architecture: unmodified static-musl C programs
//! (`apps/c-hello`, `apps/c-shimtest`) started through musl's `_start`, with each Linux
//! system-call family checked by the C program itself (error cases included), stdio buffering
//! and exit flushing, arguments and environment, an unknown system call (ENOSYS, logged once,
//! the program continues), signal delivery (frames, masks, alternate stacks, other threads,
//! interrupted waits), default signal actions and their exit codes, and C code under heavy
//! preemption.

use libos_tests::{Boot, TempDir, arches};

#[test]
fn c_hello_sees_args_env_tls_atexit_and_its_exit_code() {
    for arch in arches() {
        Boot::app("c-hello")
            .options("env=GREETING=hi")
            .args(&["one", "two words", "--exit", "7"])
            .on(arch)
            .exits_with(7)
            .prints("hello from C on libos: argc=5\n")
            .prints("argv[0]=c-hello\nargv[1]=one\nargv[2]=two words\nargv[3]=--exit\nargv[4]=7\n")
            .prints("env HOME=/\n")
            .prints("env GREETING=hi\n")
            .prints("tls 42 0 pid 1\n")
            // Printed by an atexit handler into the still-buffered stdout, flushed by exit().
            .prints("atexit handler ran");
    }
}

#[test]
fn every_system_call_family_passes_its_checks() {
    let families = ["files", "mem", "time", "process", "threads", "signals", "sigdeliver", "events", "enosys"];
    for arch in arches() {
        let booted = Boot::app("c-shimtest").args(&families).on(arch);
        booted.exits_with(0).does_not_print("FAIL");
        for family in &families[..8] {
            booted.prints(&format!("ok {family}\n"));
        }
        booted.prints("ok enosys (program continues)\n");
        // Two calls of the unknown number, one log line naming it.
        let logged = booted.outcome.console.matches("unsupported system call 4000").count();
        assert_eq!(logged, 1, "{arch}: the unknown system call should be logged exactly once:\n{}", booted.outcome.console);
    }
}

/// C programs on 4 CPUs (issue 16): the CPU count from `sysconf`/`sched_getaffinity`, a
/// parallel sum over POSIX threads equal to one thread's, two pinned threads running at the same
/// time (a spin hand-over), `sched_setaffinity`/`sched_getcpu`, and the thread, signal (also to
/// a thread busy on another CPU), timer and preemption families on several CPUs; file
/// operations from a thread on every CPU at once (`smp-files`) on ramfs and on an ext2 disk,
/// which `e2fsck` then finds clean, and on a virtio-fs root. One CPU: the count says 1.
#[test]
fn c_threads_run_on_every_cpu() {
    let families = ["smp=4", "threads", "signals", "sigdeliver", "timers", "preempt", "events", "smp-exits=300", "smp-files=/tmp", "smp-files=/data"];
    let sources = shimtest_sources();
    for arch in arches() {
        let tmp = TempDir::new("smp-files", arch);
        let image = tmp.dir().join("data.img");
        xtask::disk::create_ext2(&image, 32 << 20, None, None).unwrap();
        let booted = Boot::app("c-shimtest").cpus(4).disk(&image, false).options("mount=ext2:vda:/data").args(&families).on(arch);
        booted.exits_with(0).does_not_print("FAIL").prints("ok smp 4 CPUs");
        for family in &families[1..7] {
            booted.prints(&format!("ok {family}"));
        }
        // Threads ending while their joiners unmap their stacks on other CPUs (before the fix,
        // the next mapping zeroed a stack its thread still ran on: a jump to address 0).
        booted.prints("ok smp-exits 1200 threads created, joined and unmapped on 4 CPUs");
        assert_eq!(booted.outcome.console.matches("ok smp-files 4 threads on 4 CPUs").count(), 2, "{arch}: smp-files on /tmp and /data");
        if let Err(report) = xtask::disk::check_ext2(&image).unwrap() {
            panic!("{arch}: e2fsck after smp-files on ext2:\n{report}");
        }
        Boot::app("c-shimtest").cpus(1).args(&["smp=1"]).on(arch).exits_with(0).prints("ok smp 1 CPUs");
        // virtio-fs (not in c-shimtest's image): the same program loaded by elf-runner from a
        // virtio-fs root.
        let root = tmp.dir().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        xtask::linux::compile_static(&sources, arch, &root.join("bin/shimtest")).unwrap();
        Boot::app("elf-runner")
            .root_share(&root)
            .cpus(4)
            .args(&["/bin/shimtest", "smp-files=/tmp"])
            .on(arch)
            .exits_with(0)
            .does_not_print("FAIL")
            .prints("ok smp-files 4 threads on 4 CPUs");
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0, "{arch}: smp-files left files on the share");
    }
}

/// `apps/c-shimtest`'s C files, to build them as one static program run by `elf-runner`.
fn shimtest_sources() -> Vec<std::path::PathBuf> {
    ["shimtest", "net", "disk", "posix", "procfs", "xattr", "mounts", "random", "memory", "smp", "smp_files"]
        .iter()
        .map(|name| xtask::root().join(format!("apps/c-shimtest/c/{name}.c")))
        .collect()
}

/// `mprotect` by one CPU reaches a thread on another (a TLB shootdown): a loaded program's
/// thread pinned to the last CPU writes a page of the program's data, then spins without a
/// system call; once the main thread has made it read-only, its next write must fault (a fatal page fault, exit 102),
/// never land through a stale TLB entry. As a loaded ELF (`elf-runner`), whose pages are the
/// platform's program pages with hardware protection.
#[test]
fn mprotect_on_one_cpu_faults_a_writer_on_another() {
    let sources = shimtest_sources();
    for arch in arches() {
        let tmp = TempDir::new("smp-mprotect", arch);
        let program = tmp.dir().join("shimtest");
        xtask::linux::compile_static(&sources, arch, &program).unwrap();
        let image = xtask::build::elf_runner_with(arch, true, Some(&program), None).unwrap();
        Boot::app("elf-runner")
            .with_image(image)
            .cpus(2)
            .args(&["/bin/shimtest", "smp-mprotect"])
            .on(arch)
            .exits_with(102)
            .prints("smp-mprotect: the page is read-only now")
            .prints("violating")
            .does_not_print("FAIL");
    }
}

/// Ownership, permissions, credentials, FIFOs, device nodes, locks and space calls (issue 18),
/// as root and then as uid 1000 (the family drops privileges, so it runs last, on a boot with
/// only the procfs family before it: `/proc/self`, its descriptor links, `/dev/stdout`).
#[test]
fn posix_file_semantics_and_credentials_hold() {
    for arch in arches() {
        Boot::app("c-shimtest").args(&["procfs", "xattr", "posix"]).on(arch).exits_with(0).prints("ok procfs\n").prints("ok xattr\n").prints("ok posix\n").does_not_print("FAIL");
    }
}

/// The same procfs and posix families on the other roots a user boots with (issue 18: ramfs, virtio-fs and
/// disks): `apps/c-shimtest`'s C files as one static program, run by `elf-runner` from a
/// virtio-fs share as `/`, then from an ext2 disk as `/` (made by e2fsprogs from a fresh tree,
/// checked with `e2fsck -fn` afterwards). Both roots have `/dev` (device nodes open devfs's
/// devices), a sticky `/tmp` and `/root`. The mounts family (`mount`, `umount2`, `ETXTBSY`,
/// which needs `execve`, so a loaded program) runs there and on elf-runner's ramfs root.
#[test]
fn posix_file_semantics_hold_on_virtio_fs_and_ext2_roots() {
    use std::os::unix::fs::PermissionsExt;
    let sources = shimtest_sources();
    for arch in arches() {
        let tmp = TempDir::new("posix-roots", arch);
        let program = tmp.dir().join("shimtest");
        xtask::linux::compile_static(&sources, arch, &program).unwrap();
        let tree = |name: &str| {
            let root = tmp.dir().join(name);
            for dir in ["bin", "tmp", "root", "etc", "dev", "proc", "sys"] {
                std::fs::create_dir_all(root.join(dir)).unwrap();
            }
            std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
            std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
            std::fs::copy(&program, root.join("bin/shimtest")).unwrap();
            root
        };
        let image = tmp.dir().join("root.img");
        xtask::disk::create_ext2(&image, 64 << 20, Some(&tree("disk-tree")), None).unwrap();
        let share = tree("share");
        let on_share = Boot::app("elf-runner").root_share(&share);
        let on_disk = Boot::app("elf-runner").disk(&image, false).options("root=ext2:vda");
        let in_memory = Boot::app("elf-runner").with_image(xtask::build::elf_runner_with(arch, true, Some(&program), None).unwrap());
        for boot in [on_share, on_disk, in_memory] {
            let families = boot.args(&["/bin/shimtest", "procfs", "xattr", "mounts", "posix"]).on(arch);
            families.exits_with(0).prints("ok procfs\n").prints("ok xattr\n").prints("ok mounts\n").prints("ok posix\n").does_not_print("FAIL");
        }
        if let Err(report) = xtask::disk::check_ext2(&image).unwrap() {
            panic!("{arch}: e2fsck after the posix family:\n{report}");
        }
    }
}

#[test]
fn stdio_is_buffered_and_flushed_at_exit() {
    for arch in arches() {
        let booted = Boot::app("c-shimtest").args(&["stdio"]).on(arch);
        booted.exits_with(3);
        let console = &booted.outcome.console;
        let stderr_at = console.find("unbuffered stderr first\n").expect("the stderr line");
        let stdout_at = console.find("buffered line 1\nbuffered line 2 without newline").expect("the flushed stdout");
        assert!(stderr_at < stdout_at, "{arch}: fully buffered stdout must come out at exit, after stderr:\n{console}");
    }
}

#[test]
fn default_signal_actions_end_the_program_with_the_signal_status() {
    for arch in arches() {
        Boot::app("c-shimtest")
            .args(&["kill"])
            .on(arch)
            .exits_with(128 + 15)
            .prints("posix-shim: terminated by signal 15 (status 143)")
            .does_not_print("still alive");
        Boot::app("c-shimtest").args(&["abort"]).on(arch).exits_with(128 + 6).prints("posix-shim: terminated by signal 6 (status 134)");
    }
}

#[test]
fn c_threads_survive_heavy_preemption() {
    // A 1 ms slice preempts the FP-heavy, red-zone-using C threads hundreds of times; every
    // result is compared with the value the thread computed first.
    for arch in arches() {
        Boot::app("c-shimtest").options("timeslice=1").args(&["preempt"]).on(arch).exits_with(0).prints("ok preempt\n");
    }
}

#[test]
fn c_threads_pass_under_the_cooperative_scheduler() {
    for arch in arches() {
        Boot::app("c-shimtest").options("sched=coop").args(&["threads"]).on(arch).exits_with(0).prints("ok threads\n");
    }
}

#[test]
fn timers_send_their_signals_and_sa_restart_restarts_interrupted_calls() {
    // alarm/setitimer, POSIX timers (SIGEV_SIGNAL, SIGEV_THREAD_ID, musl's SIGEV_THREAD,
    // TIMER_ABSTIME, overruns, timer_delete), SA_RESTART on a pipe read and EINTR for poll and
    // nanosleep, and signals reaching a thread busy in program code (registers intact). The
    // last needs preemption, so the cooperative scheduler runs the family without it
    // (`timers-waiting`: the timer thread then runs only while the program waits).
    for arch in arches() {
        for (options, family) in [("", "timers"), ("sched=coop", "timers-waiting")] {
            Boot::app("c-shimtest").options(options).args(&[family]).on(arch).exits_with(0).prints("ok timers\n").does_not_print("FAIL");
        }
    }
}
