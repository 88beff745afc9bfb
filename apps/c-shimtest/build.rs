//! Compiles `c/shimtest.c`, `c/net.c`, `c/disk.c`, `c/posix.c`, `c/procfs.c`, `c/xattr.c`, `c/mounts.c`, `c/random.c`, `c/memory.c`, `c/smp.c` and `c/smp_files.c` with musl and links it (see posix-shim/c-app-build.rs).
#[path = "../../posix-shim/c-app-build.rs"]
mod c_app;

fn main() {
    c_app::build(&["c/shimtest.c", "c/net.c", "c/disk.c", "c/posix.c", "c/procfs.c", "c/xattr.c", "c/mounts.c", "c/random.c", "c/memory.c", "c/smp.c", "c/smp_files.c"], &[]);
}
