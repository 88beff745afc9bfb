//! The app's arguments: `args()[0]` is the app's name, the rest come after `--` on the kernel
//! command line (`./x run APP -- ARGS` puts them there). [`vars`]: the `env=` options.

use alloc::string::String;
use alloc::vec::Vec;
use libos_core::sync::Once;

static ARGS: Once<Vec<String>> = Once::new();
static VARS: Once<Vec<String>> = Once::new();

/// Sets the environment (once, at boot) from the kernel command line's `env=` options.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_vars(vars: Vec<String>) {
    VARS.call_once(|| vars);
}

/// The environment, as `NAME=VALUE` strings, from the kernel command line's `env=NAME=VALUE`
/// options (in order). C programs (posix-shim) see them in `environ`.
pub fn vars() -> impl Iterator<Item = &'static str> {
    VARS.get().map(Vec::as_slice).unwrap_or(&[]).iter().map(String::as_str)
}

/// Sets the arguments (once, at boot).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_args(args: Vec<String>) {
    ARGS.call_once(|| args);
}

/// The app's arguments, starting with its name.
pub fn args() -> impl Iterator<Item = &'static str> {
    ARGS.get().map(Vec::as_slice).unwrap_or(&[]).iter().map(String::as_str)
}
