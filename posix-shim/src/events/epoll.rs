//! epoll.

use super::*;

/// An epoll instance: the watched descriptors with their event masks and user data.
pub struct Epoll {
    interest: Mutex<alloc::collections::BTreeMap<u64, Interest>>,
}

/// One watched descriptor: its event mask, user data, and the open object it referred to when
/// added. Closing the descriptor ends the registration (the object is gone, or the number now
/// names another object), as on Linux once the file is closed.
struct Interest {
    events: u32,
    data: u64,
    object: alloc::sync::Weak<Object>,
    /// `EPOLLET`: the object's change count when it was last reported; it is reported again
    /// only after it changed (a new arrival), even if it stayed ready.
    reported_at: Option<u64>,
    /// `EPOLLONESHOT` fired: nothing more is reported until `EPOLL_CTL_MOD` re-arms it.
    disarmed: bool,
}

impl Interest {
    fn live(&self, fd_number: u64) -> Option<Arc<Object>> {
        let object = self.object.upgrade()?;
        fd::get(fd_number).ok().filter(|current| Arc::ptr_eq(current, &object))
    }
}

const EPOLLERR: u32 = 0x8;
const EPOLLHUP: u32 = 0x10;
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLWAKEUP: u32 = 1 << 29;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;
/// The event bits `epoll_ctl` takes: `EPOLLIN`, `EPOLLPRI`, `EPOLLOUT`, `EPOLLERR`, `EPOLLHUP`,
/// `EPOLLRDNORM`..`EPOLLWRBAND`, `EPOLLMSG`, `EPOLLRDHUP`, and the input flags above.
const EPOLL_EVENTS: u32 = 0x3fff | EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET;

impl Epoll {
    pub(super) fn watched(&self) -> alloc::vec::Vec<u64> {
        self.interest.lock().keys().copied().collect()
    }

    /// The ready events: `(events, data)` per ready descriptor, at most `max`. With `consume`,
    /// edge-triggered and one-shot entries are marked reported (an `epoll_wait`); without, it
    /// only looks (`poll` on the epoll descriptor).
    fn collect(&self, max: usize, consume: bool) -> alloc::vec::Vec<(u32, u64)> {
        let mut out = alloc::vec::Vec::new();
        // One pass: drops the registrations whose descriptor was closed, and checks the rest
        // until `max` are ready.
        self.interest.lock().retain(|&f, entry| {
            let Some(object) = entry.live(f) else { return false };
            if out.len() >= max || entry.disarmed {
                return true;
            }
            // The count first: a change after it makes the next wait report again (at worst
            // once too often, never once too few).
            let changes = changes(&object);
            let ready = readiness(&object) as u32 & (entry.events | EPOLLERR | EPOLLHUP) & 0x3fff;
            if ready == 0 || entry.events & EPOLLET != 0 && entry.reported_at == Some(changes) {
                return true;
            }
            out.push((ready, entry.data));
            if consume {
                entry.reported_at = Some(changes);
                entry.disarmed = entry.events & EPOLLONESHOT != 0;
            }
            true
        });
        out
    }

    /// Whether `target` is among the descriptors this epoll watches, directly or through nested
    /// epolls; `ELOOP` past Linux's nesting limit (`EPOLL_MAX_NESTS`, 4).
    fn reaches(&self, target: &Arc<Object>, depth: usize) -> Result<bool> {
        if depth > 4 {
            return Err(Errno::ELOOP);
        }
        let watched: alloc::vec::Vec<Arc<Object>> = self.interest.lock().iter().filter_map(|(&f, i)| i.live(f)).collect();
        for object in watched {
            if Arc::ptr_eq(&object, target) {
                return Ok(true);
            }
            if let Object::Epoll(inner) = &*object
                && inner.reaches(target, depth + 1)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether an `epoll_wait` would report something now (`poll` on the epoll descriptor).
    pub(super) fn has_ready(&self) -> bool {
        !self.collect(1, false).is_empty()
    }
}

/// `epoll_create1(flags)` (and `epoll_create(size)` with flags 0).
pub fn epoll_create1(flags: u64) -> Result<u64> {
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    fd::insert(Object::Epoll(Epoll { interest: Mutex::new(alloc::collections::BTreeMap::new()) }), flags & O_CLOEXEC != 0)
}

/// `epoll_ctl(epfd, op, fd, event)`.
pub fn epoll_ctl(epfd: u64, op: u64, fd_number: u64, event: u64) -> Result<u64> {
    const ADD: u64 = 1;
    const DEL: u64 = 2;
    const MOD: u64 = 3;
    let object = fd::get(epfd)?;
    let target = fd::get(fd_number)?;
    let Object::Epoll(epoll) = &*object else { return Err(Errno::EINVAL) };
    if Arc::ptr_eq(&object, &target) {
        return Err(Errno::EINVAL);
    }
    let read_event = || -> Result<(u32, u64)> {
        // SAFETY: checked by `user::read`; `struct epoll_event` is packed on x86_64 (12 bytes)
        // and 16 bytes with padding on aarch64.
        #[cfg(not(target_arch = "aarch64"))]
        let (events, data) = unsafe { (user::read::<u32>(event)?, user::read::<u64>(event + 4)?) };
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        let (events, data) = unsafe { (user::read::<u32>(event)?, user::read::<u64>(event + 8)?) };
        // EPOLLEXCLUSIVE wakes one of several epoll instances watching the same file: here
        // every instance re-checks on each change, which is allowed (more wake-ups, never
        // fewer). As on Linux it is only valid with ADD, and not with ONESHOT.
        if events & EPOLLEXCLUSIVE != 0 && (op != ADD || events & EPOLLONESHOT != 0) {
            return Err(Errno::EINVAL);
        }
        Ok((events & EPOLL_EVENTS, data))
    };
    // An epoll inside an epoll must not close a loop (or nest deeper than Linux allows).
    if op == ADD
        && let Object::Epoll(inner) = &*target
        && inner.reaches(&object, 1)?
    {
        return Err(Errno::ELOOP);
    }
    let mut interest = epoll.interest.lock();
    // A registration whose descriptor was closed (or now names another file) is gone, as on
    // Linux; only this descriptor's is looked at, not the whole list.
    if interest.get(&fd_number).is_some_and(|i| i.live(fd_number).is_none()) {
        interest.remove(&fd_number);
    }
    match op {
        ADD => {
            let (events, data) = read_event()?;
            if interest.contains_key(&fd_number) {
                return Err(Errno::EEXIST);
            }
            interest.insert(fd_number, Interest { events, data, object: Arc::downgrade(&target), reported_at: None, disarmed: false });
        }
        MOD => {
            let (events, data) = read_event()?;
            let entry = interest.get_mut(&fd_number).ok_or(Errno::ENOENT)?;
            if entry.events & EPOLLEXCLUSIVE != 0 {
                return Err(Errno::EINVAL);
            }
            *entry = Interest { events, data, object: entry.object.clone(), reported_at: None, disarmed: false };
        }
        DEL => {
            interest.remove(&fd_number).ok_or(Errno::ENOENT)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    drop(interest);
    changed();
    Ok(0)
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)` / `epoll_pwait` (with a signal mask).
pub fn epoll_pwait(epfd: u64, events: u64, max: u64, timeout_ms: u64, sigmask: u64, sigsetsize: u64) -> Result<u64> {
    let object = fd::get(epfd)?;
    let Object::Epoll(epoll) = &*object else { return Err(Errno::EINVAL) };
    if max == 0 || max > i32::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    #[cfg(not(target_arch = "aarch64"))]
    const EVENT_SIZE: u64 = 12;
    #[cfg(target_arch = "aarch64")]
    const EVENT_SIZE: u64 = 16;
    user::check_access(events, max.saturating_mul(EVENT_SIZE), libos::hal::Access::Write)?;
    if sigmask != 0 {
        if sigsetsize != 8 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: checked by `user::read`.
        let mask: u64 = unsafe { user::read(sigmask)? };
        crate::signal::set_temporary_mask(mask);
    }
    let ms = timeout_ms as i32;
    let deadline = (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64));
    let mut ready = alloc::vec::Vec::new();
    wait_ready(deadline, epoll.watched(), || {
        ready = epoll.collect(max as usize, true);
        ready.len() as u64
    })?;
    for (i, (ev, data)) in ready.iter().enumerate() {
        let at = events + i as u64 * EVENT_SIZE;
        // SAFETY: in the range checked above.
        unsafe {
            user::write(at, *ev)?;
            user::write(at + EVENT_SIZE - 8, *data)?;
        }
    }
    Ok(ready.len() as u64)
}

