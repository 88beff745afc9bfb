//! posix-shim's static ELF loader in a real guest on every architecture: `apps/elf-runner`
//! runs unmodified static Linux binaries built from `apps/c-hello/c/hello.c` (musl and glibc,
//! non-PIE at 4 MiB and static-PIE) from its initial archive (and one from a virtio-fs root), with arguments, environment, TLS,
//! atexit and the exit code; files that are not static executables for the image's machine are
//! refused with one clear line and exit code 126, never a crash; the loaded pages are W^X.

use libos_tests::{Boot, TempDir, arches, expect};

const PROGRAMS: [(&str, &str); 4] = [
    ("hello-musl", "non-PIE"),
    ("hello-musl-pie", "static-PIE"),
    ("hello-glibc", "non-PIE"),
    ("hello-glibc-pie", "static-PIE"),
];

#[test]
fn static_musl_and_glibc_programs_run_unmodified() {
    for arch in arches() {
        for (program, kind) in PROGRAMS {
            let path = format!("/bin/{program}");
            Boot::app("elf-runner")
                .options("env=GREETING=hi loglevel=info")
                .args(&[&path, "one", "two words", "--exit", "7"])
                .on(arch)
                .exits_with(7)
                .prints(&format!("posix-shim: loaded {path} ({kind}, entry 0x"))
                .prints("hello from C on libos: argc=5\n")
                .prints(&format!("argv[0]={path}\nargv[1]=one\nargv[2]=two words\nargv[3]=--exit\nargv[4]=7\n"))
                .prints("env HOME=/\n")
                .prints("env GREETING=hi\n")
                .prints("tls 42 0 pid 1\n")
                .prints("atexit handler ran");
        }
    }
}

#[test]
fn files_that_are_not_static_executables_are_refused() {
    let refused = [
        ("hello-dynamic", "dynamically linked (it has PT_INTERP); only static programs can run"),
        ("hello-truncated", "not a valid ELF file"),
        ("hello-corrupt", "not a valid ELF file"),
        ("not-elf", "not a valid ELF file (Invalid Magic Bytes"),
    ];
    for arch in arches() {
        let other = arches().into_iter().find(|a| *a != arch).map_or_else(|| "?".to_string(), |a| a.to_string());
        Boot::app("elf-runner")
            .args(&["/bin/hello-wrong-arch"])
            .on(arch)
            .exits_with(126)
            .prints(&format!("posix-shim: cannot run /bin/hello-wrong-arch: built for another machine ({other}, this image runs {arch})"));
        for (program, why) in refused {
            Boot::app("elf-runner")
                .args(&[&format!("/bin/{program}")])
                .on(arch)
                .exits_with(126)
                .prints(&format!("posix-shim: cannot run /bin/{program}: {why}"))
                .does_not_print("hello from C");
        }
        Boot::app("elf-runner")
            .args(&["/bin/missing"])
            .on(arch)
            .exits_with(127)
            .prints("posix-shim: cannot read /bin/missing: No such file or directory");
        Boot::app("elf-runner").on(arch).exits_with(2).prints("posix-shim: usage: elf-runner PATH");
    }
}

/// The loader maps text read + execute, read-only data read-only, data read-write and never
/// executable, and `mprotect` on them is applied (writable + executable refused): a program
/// (`apps/elf-runner/c/wx.c`) that writes its code, writes its read-only data, calls into its
/// data or writes a page it made read-only faults (the kernel's fatal-exception report, exit code 102; no
/// signal delivery for faults yet).
#[test]
fn loaded_programs_are_write_xor_execute() {
    const FATAL_EXCEPTION: i32 = 102;
    for arch in arches() {
        for (mode, header, what, before) in [
            ("write-code", expect::data_fault_header(arch), "write violating page protection", ""),
            ("rodata", expect::data_fault_header(arch), "write violating page protection", ""),
            ("run-data", expect::fetch_fault_header(arch), "instruction fetch violating page protection", ""),
            // mprotect applies to the program's pages: W+X refused, read-only enforced (also on
            // the kernel's side: a read() into the page it checked before now gives EFAULT).
            (
                "mprotect",
                expect::data_fault_header(arch),
                "write violating page protection",
                "wx: mprotect rwx -1 Permission denied\nwx: mprotect read-only 0, read() before 16, after -1 Bad address\n",
            ),
        ] {
            Boot::app("elf-runner")
                .args(&["/bin/wx", mode])
                .on(arch)
                .exits_with(FATAL_EXCEPTION)
                .prints(&format!("wx: {mode}\n{before}"))
                .prints(header)
                .prints(what)
                .does_not_print("NOT PROTECTED");
        }
    }
}

/// The sample program `name` that `apps/elf-runner`'s build script compiled for `arch` (the
/// newest, should several build directories exist).
fn sample(name: &str, arch: xtask::arch::Arch) -> std::path::PathBuf {
    libos_tests::image("elf-runner", arch); // builds the samples on first use
    let build = xtask::build::guest_target_dir(arch).join(arch.target()).join("release/build");
    std::fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("{}: {e}", build.display()))
        .filter_map(|e| Some(e.ok()?.path().join("out").join(name)))
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no {name} under {}", build.display()))
}

/// Issue 8: a program "taken from the image's initial archive or from a virtio-fs root".
#[test]
fn a_program_on_a_virtio_fs_root_runs() {
    for arch in arches() {
        let tmp = TempDir::new("elf-root", arch);
        let root = tmp.dir().to_path_buf();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy(sample("hello-glibc", arch), root.join("bin/hello")).unwrap();
        // Read into the program's static buffer: pages the loader mapped, not identity-mapped,
        // which virtio-fs fills by DMA (the device must get their real frames).
        let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(root.join("data.bin"), &data).unwrap();
        let checksum = data.iter().fold(0u64, |sum, &b| sum.wrapping_mul(31).wrapping_add(u64::from(b)));
        let booted = Boot::app("elf-runner")
            .root_share(&root)
            .args(&["/bin/hello", "shared", "--cat", "/data.bin", "--exit", "6"])
            .on(arch);
        drop(tmp);
        booted
            .exits_with(6)
            .prints("argv[1]=shared\n")
            .prints(&format!("cat /data.bin: 300000 bytes, checksum {checksum}\n"))
            .prints("atexit handler ran");
    }
}
