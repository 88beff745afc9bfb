//! Compiles `bench/c/shim_ops.c` with musl and links it (see posix-shim/c-app-build.rs).
#[path = "../../posix-shim/c-app-build.rs"]
mod c_app;

fn main() {
    println!("cargo::rerun-if-changed=../../bench/c/bench_common.h");
    c_app::build(&["../../bench/c/shim_ops.c"], &["-I../../bench/c"]);
}
