//! Process groups and sessions across the VMs of a run, with Linux's rules.
//!
//! Each VM keeps its own group and session in memory (a fork copies them), but only the host
//! sees every process, so the host's table is the authority: `setpgid` and `setsid` are
//! decided here (the guest changes its copy when the host says yes), and a signal to a group
//! (`kill(-PGID)`, `kill(0)`) or to everyone (`kill(-1)`) reaches the members this table
//! names. The rules follow Linux's `setpgid`/`setsid` (`kernel/sys.c`):
//!
//! - `setpgid(pid, pgid)`: `pid` 0 is the caller, `pgid` 0 is `pid`; the process must be the
//!   caller or one of its children (`ESRCH`), a child in another session is `EPERM`, a session
//!   leader cannot move (`EPERM`), a child that has called `execve` cannot either (`EACCES`;
//!   the guest reports its `execve`s), and a group other than the process's own number must
//!   already exist in the caller's session (`EPERM`).
//! - `setsid()`: `EPERM` when a group with the caller's number exists (it leads one, or a
//!   process it moved there is still in it); else a new session and group, both the caller's
//!   number.

use libos_process_protocol::Pid;
use std::collections::BTreeMap;

const ESRCH: i32 = nix::errno::Errno::ESRCH as i32;
const EPERM: i32 = nix::errno::Errno::EPERM as i32;
const EACCES: i32 = nix::errno::Errno::EACCES as i32;

/// Where a process stands: its parent, group and session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The parent (re-parented to 1 when it ends, as the host's table does).
    pub parent: Pid,
    /// The process group.
    pub pgid: Pid,
    /// The session.
    pub sid: Pid,
    /// Whether it called `execve` since its fork.
    pub execed: bool,
}

/// A change [`setpgid`] or [`setsid`] made: `pid` is now in group `pgid` of session `sid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    /// The process that moved.
    pub pid: Pid,
    /// Its group now.
    pub pgid: Pid,
    /// Its session.
    pub sid: Pid,
}

/// `setpgid(pid, pgid)` asked by `caller`, against every process's membership: the change to
/// make, or the errno.
pub fn setpgid(processes: &BTreeMap<Pid, Membership>, caller: Pid, pid: Pid, pgid: Pid) -> Result<Moved, i32> {
    let pid = if pid == 0 { caller } else { pid };
    let pgid = if pgid == 0 { pid } else { pgid };
    let me = processes.get(&caller).ok_or(ESRCH)?;
    let target = processes.get(&pid).ok_or(ESRCH)?;
    if pid != caller {
        if target.parent != caller {
            return Err(ESRCH);
        }
        if target.sid != me.sid {
            return Err(EPERM);
        }
        if target.execed {
            return Err(EACCES);
        }
    }
    if target.sid == pid {
        return Err(EPERM); // a session leader stays where it is
    }
    if pgid != pid && !processes.values().any(|p| p.pgid == pgid && p.sid == me.sid) {
        return Err(EPERM);
    }
    Ok(Moved { pid, pgid, sid: target.sid })
}

/// `setsid()` asked by `caller`: the change, or `EPERM` when a group numbered like the caller
/// exists.
pub fn setsid(processes: &BTreeMap<Pid, Membership>, caller: Pid) -> Result<Moved, i32> {
    if !processes.contains_key(&caller) {
        return Err(ESRCH);
    }
    if processes.values().any(|p| p.pgid == caller) {
        return Err(EPERM);
    }
    Ok(Moved { pid: caller, pgid: caller, sid: caller })
}

/// Who `kill(target, ...)` from `caller` reaches besides the caller itself (whose own
/// signal its guest delivers): for `target` -1 every process but 1 and the caller, for 0 the
/// members of the caller's group, for `-PGID` the members of that group, for a pid that
/// process. Empty: `ESRCH`, unless the caller is one of the receivers (its guest knows).
pub fn receivers(processes: &BTreeMap<Pid, Membership>, caller: Pid, target: i64) -> Vec<Pid> {
    let own_group = processes.get(&caller).map(|p| i64::from(p.pgid));
    let group = match target {
        0 => own_group,
        -1 => None,
        t if t < 0 => Some(-t),
        _ => None,
    };
    processes
        .iter()
        .filter(|&(&pid, _)| pid != caller)
        .filter(|&(&pid, p)| match (target, group) {
            (-1, _) => pid != 1,
            (_, Some(group)) => i64::from(p.pgid) == group,
            (t, None) => t > 0 && i64::from(pid) == t,
        })
        .map(|(&pid, _)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 leads session 1 and group 1; 2 and 3 are its children in group 1; 4 is 2's child.
    fn family() -> BTreeMap<Pid, Membership> {
        BTreeMap::from([
            (1, Membership { parent: 0, pgid: 1, sid: 1, execed: false }),
            (2, Membership { parent: 1, pgid: 1, sid: 1, execed: false }),
            (3, Membership { parent: 1, pgid: 1, sid: 1, execed: false }),
            (4, Membership { parent: 2, pgid: 1, sid: 1, execed: false }),
        ])
    }

    #[test]
    fn a_process_makes_its_own_group_and_its_parent_moves_a_sibling_in() {
        let mut table = family();
        let moved = setpgid(&table, 2, 0, 0).unwrap();
        assert_eq!(moved, Moved { pid: 2, pgid: 2, sid: 1 });
        table.get_mut(&2).unwrap().pgid = 2;
        assert_eq!(setpgid(&table, 1, 3, 2), Ok(Moved { pid: 3, pgid: 2, sid: 1 }));
        assert_eq!(setpgid(&table, 2, 4, 2), Ok(Moved { pid: 4, pgid: 2, sid: 1 }));
    }

    #[test]
    fn linux_errors_for_strangers_leaders_and_missing_groups() {
        let mut table = family();
        assert_eq!(setpgid(&table, 2, 3, 0), Err(ESRCH), "3 is not 2's child");
        assert_eq!(setpgid(&table, 1, 4, 0), Err(ESRCH), "a grandchild is not a child");
        assert_eq!(setpgid(&table, 1, 9, 0), Err(ESRCH));
        assert_eq!(setpgid(&table, 1, 0, 0), Err(EPERM), "1 leads its session");
        assert_eq!(setpgid(&table, 2, 0, 7), Err(EPERM), "no group 7");
        table.get_mut(&2).unwrap().execed = true;
        assert_eq!(setpgid(&table, 1, 2, 0), Err(EACCES), "a child that called execve");
        assert_eq!(setpgid(&table, 2, 0, 0).map(|m| m.pgid), Ok(2), "but it may move itself");
        table.get_mut(&2).unwrap().execed = false;
        let leader = setsid(&table, 3).unwrap();
        assert_eq!(leader, Moved { pid: 3, pgid: 3, sid: 3 });
        let entry = table.get_mut(&3).unwrap();
        entry.pgid = 3;
        entry.sid = 3;
        assert_eq!(setpgid(&table, 1, 3, 1), Err(EPERM), "a child in another session");
        assert_eq!(setpgid(&table, 2, 0, 3), Err(EPERM), "group 3 is in another session");
        assert_eq!(setsid(&table, 3), Err(EPERM), "3 leads a group");
        assert_eq!(setsid(&table, 1), Err(EPERM));
    }

    #[test]
    fn a_process_whose_number_names_a_group_cannot_start_a_session() {
        let mut table = family();
        table.get_mut(&2).unwrap().pgid = 2;
        table.get_mut(&4).unwrap().pgid = 2;
        // 2 moves back to group 1, but 4 still holds group 2.
        table.get_mut(&2).unwrap().pgid = 1;
        assert_eq!(setsid(&table, 2), Err(EPERM));
        assert_eq!(setsid(&table, 4), Ok(Moved { pid: 4, pgid: 4, sid: 4 }));
    }

    #[test]
    fn group_and_broadcast_signals_skip_the_caller_and_init() {
        let mut table = family();
        table.get_mut(&3).unwrap().pgid = 3;
        let none = Vec::<Pid>::new();
        assert_eq!(receivers(&table, 2, -1), [3, 4], "everyone but 1 and the caller");
        assert_eq!(receivers(&table, 1, -1), [2, 3, 4]);
        assert_eq!(receivers(&table, 2, 0), [1, 4], "the caller's group, group 1, is not -1");
        assert_eq!(receivers(&table, 4, -3), [3]);
        assert_eq!(receivers(&table, 3, -3), none, "only the caller: its guest delivers");
        assert_eq!(receivers(&table, 3, 0), none);
        assert_eq!(receivers(&table, 2, -7), none);
        assert_eq!(receivers(&table, 2, 4), [4]);
        assert_eq!(receivers(&table, 2, 9), none);
        assert_eq!(receivers(&table, 9, 0), none, "an unknown caller has no group");
    }
}
