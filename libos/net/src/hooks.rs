//! Hooks for a signal layer above the sockets (posix-shim): Linux interrupts a blocking socket
//! call when a signal arrives, and `poll`/`epoll` there must learn of every socket change. The
//! Rust API has neither notion, so both are hooks, unset (and free) unless a layer installs
//! them once with [`set_signal_hooks`].

use libos_core::sync::Once;

struct Hooks {
    interrupted: fn() -> bool,
    changed: fn(),
}

static HOOKS: Once<Hooks> = Once::new();

/// Installs the hooks (later calls are ignored):
/// - `interrupted`: whether the calling thread has a signal to take; a blocking call then
///   ends with `EINTR`. Runs inside wait conditions (interrupts masked): it must not block.
/// - `changed`: called on every socket state change, possibly from the NIC's interrupt
///   handler: it must not block or allocate.
pub fn set_signal_hooks(interrupted: fn() -> bool, changed: fn()) {
    HOOKS.call_once(|| Hooks { interrupted, changed });
}

/// Whether the calling thread has a signal to take (false without hooks).
pub(crate) fn interrupted() -> bool {
    HOOKS.get().is_some_and(|h| (h.interrupted)())
}

/// Tells the signal layer a socket changed.
pub(crate) fn changed() {
    if let Some(h) = HOOKS.get() {
        (h.changed)();
    }
}
