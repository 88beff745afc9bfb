//! `prctl`: the options programs use at start-up (servers name their threads).

use crate::{thread, user};
use libos::sync::Mutex;
use libos::{Errno, Result};

/// Per-thread `prctl` state: the name (`PR_SET_NAME`), by thread id.
static THREAD_NAMES: Mutex<alloc::collections::BTreeMap<u64, [u8; 16]>> = Mutex::new(alloc::collections::BTreeMap::new());
/// Process-wide `prctl` flags: dumpable, no-new-privs, the parent-death signal.
static PRCTL_FLAGS: Mutex<(u64, u64, u64)> = Mutex::new((1, 0, 0));

/// `prctl(option, arg2, ...)`: thread names, and the flags a single-process system keeps but
/// has no use for (dumpable, no-new-privs, parent-death signal, timer slack). Other options:
/// `EINVAL`, logged once.
pub fn prctl(option: u64, arg: u64) -> Result<u64> {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_GET_PDEATHSIG: u64 = 2;
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_SET_TIMERSLACK: u64 = 29;
    const PR_GET_TIMERSLACK: u64 = 30;
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    const PR_GET_NO_NEW_PRIVS: u64 = 39;
    let tid = thread::gettid();
    let mut flags = PRCTL_FLAGS.lock();
    match option {
        PR_SET_NAME => {
            // SAFETY: checked by `user::read`: the name is at most 16 bytes, NUL-terminated.
            let mut name: [u8; 16] = unsafe { user::read(arg)? };
            name[15] = 0;
            THREAD_NAMES.lock().insert(tid, name);
            Ok(0)
        }
        PR_GET_NAME => {
            let name = THREAD_NAMES.lock().get(&tid).copied().unwrap_or(*b"c-main\0\0\0\0\0\0\0\0\0\0");
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, name)? };
            Ok(0)
        }
        PR_SET_DUMPABLE if arg <= 1 => {
            flags.0 = arg;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(flags.0),
        PR_SET_NO_NEW_PRIVS if arg == 1 => {
            flags.1 = 1;
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(flags.1),
        PR_SET_PDEATHSIG if arg <= 64 => {
            flags.2 = arg;
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(arg, flags.2 as i32)? };
            Ok(0)
        }
        PR_SET_TIMERSLACK => Ok(0),
        PR_GET_TIMERSLACK => Ok(50_000),
        _ => {
            crate::dispatch::log_refused("prctl option", option, Errno::EINVAL);
            Err(Errno::EINVAL)
        }
    }
}

