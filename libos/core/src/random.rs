//! The kernel's random numbers: one CSPRNG (ChaCha20, `rand_chacha`) that every user takes
//! bytes from (`getrandom`, `AT_RANDOM`, `/dev/urandom`, TCP initial sequence numbers), seeded
//! by the machine's real entropy sources.
//!
//! **Sources.** The CPU's random-number instruction ([`crate::hal::Platform::hardware_random`]:
//! x86 `RDSEED`/`RDRAND`, aarch64 `RNDR`) is read at boot ([`seed_from_platform`]); a virtio-rng
//! device (the `libos-virtio-rng` driver) hands its bytes to [`add_entropy`]. Each source is
//! *credited*: once 32 bytes (256 bits) from credited sources are mixed in, the generator is
//! **seeded**. Bytes nobody can vouch for (what a program writes to `/dev/urandom`, the cycle
//! counter at boot) are mixed in with [`add_randomness`] without credit.
//!
//! **Before seeding** (a machine with no source), as on Linux: [`fill`] fails with `EAGAIN`
//! (what `getrandom(GRND_NONBLOCK)` returns), [`wait_seeded`] blocks until a source is found
//! (so a plain `getrandom` blocks; with every source probed at boot that may be for ever, which
//! is why the boot says so once, loudly: [`report`]), and [`fill_insecure`] returns bytes from
//! the generator keyed by whatever uncredited randomness there is (`GRND_INSECURE`,
//! `/dev/urandom`, `AT_RANDOM`): unpredictable across boots only as far as the cycle counter is
//! (under `-icount` it is not at all). Nothing returns predictable bytes while claiming to be
//! seeded.
//!
//! **Mixing.** New entropy `E` (taken 32 bytes at a time) replaces the key `K` by
//! `G_K(32 bytes) xor E`: uniform if `E` is, secret if `K` was, so a bad source cannot undo a
//! good one. **Fast key erasure**: after every output the key is replaced by the generator's
//! next 32 bytes, so a later look at the state does not reveal earlier outputs.
//!
//! [`Pool`] is the state machine (host-tested); the free functions use one global pool under an
//! [`IrqSpinLock`], filling at most [`CHUNK`] bytes per lock hold so interrupts are never masked
//! for long.

use crate::blocking::WaitQueue;
use crate::sync::{IrqSpinLock, Once};
use crate::{Errno, Result};
use core::sync::atomic::{AtomicBool, Ordering};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Credited bytes needed before the generator counts as seeded (256 bits).
pub const SEED_BYTES: usize = 32;
/// The most bytes produced under one hold of the global pool's lock.
pub const CHUNK: usize = 4096;
/// How many credited sources are remembered by name.
const MAX_SOURCES: usize = 4;

/// The generator and what seeded it.
pub struct Pool {
    rng: ChaCha20Rng,
    credited: usize,
    sources: [Option<&'static str>; MAX_SOURCES],
}

impl Pool {
    /// An unseeded pool keyed by `initial` (uncredited: whatever the caller could find).
    pub fn new(initial: [u8; 32]) -> Pool {
        Pool { rng: ChaCha20Rng::from_seed(initial), credited: 0, sources: [None; MAX_SOURCES] }
    }

    /// Mixes `bytes` into the key (see the module docs); with `source`, credits them to it.
    pub fn mix(&mut self, bytes: &[u8], source: Option<&'static str>) {
        for chunk in bytes.chunks(32) {
            let mut key = [0u8; 32];
            self.rng.fill_bytes(&mut key);
            for (k, e) in key.iter_mut().zip(chunk) {
                *k ^= e;
            }
            self.rng = ChaCha20Rng::from_seed(key);
        }
        if let Some(source) = source.filter(|_| !bytes.is_empty()) {
            self.credited = self.credited.saturating_add(bytes.len());
            if !self.sources.contains(&Some(source))
                && let Some(slot) = self.sources.iter_mut().find(|s| s.is_none())
            {
                *slot = Some(source);
            }
        }
    }

    /// True once [`SEED_BYTES`] credited bytes were mixed in.
    pub fn is_seeded(&self) -> bool {
        self.credited >= SEED_BYTES
    }

    /// The credited sources, in the order they first gave bytes.
    pub fn sources(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.iter().flatten().copied()
    }

    /// Fills `out` if seeded, else `EAGAIN` (and `out` is untouched).
    pub fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        if !self.is_seeded() {
            return Err(Errno::EAGAIN);
        }
        self.fill_insecure(out);
        Ok(())
    }

    /// Fills `out` whether seeded or not, then erases the key that produced it.
    pub fn fill_insecure(&mut self, out: &mut [u8]) {
        self.rng.fill_bytes(out);
        let mut key = [0u8; 32];
        self.rng.fill_bytes(&mut key);
        self.rng = ChaCha20Rng::from_seed(key);
    }
}

static POOL: Once<IrqSpinLock<Pool>> = Once::new();
/// Mirrors `Pool::is_seeded` of the global pool, readable without its lock.
static SEEDED: AtomicBool = AtomicBool::new(false);
/// Threads in [`wait_seeded`].
static SEEDED_WAITERS: WaitQueue = WaitQueue::new();

fn pool() -> &'static IrqSpinLock<Pool> {
    POOL.call_once(|| {
        // Uncredited starting key: the cycle counter and where this code runs (differs per
        // boot only where something varies; see the module docs).
        let mut initial = [0u8; 32];
        let counter = crate::hal::try_platform().map_or(0, |p| p.counter());
        initial[..8].copy_from_slice(&counter.to_le_bytes());
        initial[8..16].copy_from_slice(&(pool as fn() -> _ as usize as u64).to_le_bytes());
        IrqSpinLock::new(Pool::new(initial))
    })
}

/// Mixes `bytes` from a real entropy source called `source` into the generator and credits
/// them; wakes [`wait_seeded`] callers once it is seeded.
pub fn add_entropy(bytes: &[u8], source: &'static str) {
    let seeded = {
        let mut pool = pool().lock();
        pool.mix(bytes, Some(source));
        pool.is_seeded()
    };
    if seeded && !SEEDED.swap(true, Ordering::AcqRel) {
        SEEDED_WAITERS.wake_all();
    }
}

/// Mixes in `bytes` nobody vouches for (no credit): they can only add unpredictability.
pub fn add_randomness(bytes: &[u8]) {
    pool().lock().mix(bytes, None);
}

/// Reads the CPU's random-number instruction (if the platform has one) and credits 32 bytes of
/// it under its name. Returns whether it gave them.
pub fn seed_from_platform() -> bool {
    let Some(platform) = crate::hal::try_platform() else { return false };
    let Some(name) = platform.hardware_random_name() else { return false };
    let mut bytes = [0u8; SEED_BYTES];
    for chunk in bytes.chunks_mut(8) {
        let Some(word) = platform.hardware_random() else {
            log::warn!("random: the CPU's {name} instruction failed; not using it");
            return false;
        };
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    add_entropy(&bytes, name);
    true
}

/// True once the generator is seeded by a real source.
pub fn is_seeded() -> bool {
    SEEDED.load(Ordering::Acquire)
}

/// Fills `out` from the seeded generator; `EAGAIN` before it is seeded.
pub fn fill(out: &mut [u8]) -> Result<()> {
    if !is_seeded() {
        warn_unseeded_once();
        return Err(Errno::EAGAIN);
    }
    for chunk in out.chunks_mut(CHUNK) {
        pool().lock().fill(chunk)?;
    }
    Ok(())
}

/// Fills `out` whether the generator is seeded or not (see the module docs: before seeding
/// the bytes are only as unpredictable as the cycle counter).
pub fn fill_insecure(out: &mut [u8]) {
    if out.is_empty() {
        return;
    }
    let counter = crate::hal::try_platform().map_or(0, |p| p.counter());
    if !is_seeded() {
        warn_unseeded_once();
    }
    let mut pool = pool().lock();
    if !pool.is_seeded() {
        // Something that moves between calls, at least.
        pool.mix(&counter.to_le_bytes(), None);
    }
    for chunk in out.chunks_mut(CHUNK) {
        pool.fill_insecure(chunk);
    }
}

/// The queue [`wait_seeded`] blocks on, for callers that need their own (interruptible) wait:
/// wait on it until [`is_seeded`].
pub fn seeded_waiters() -> &'static WaitQueue {
    if !is_seeded() {
        warn_unseeded_once();
    }
    &SEEDED_WAITERS
}

/// Blocks until the generator is seeded (for ever on a machine without a source).
pub fn wait_seeded() {
    if !is_seeded() {
        warn_unseeded_once();
    }
    SEEDED_WAITERS.wait_until(is_seeded);
}

/// Calls `f` with each credited source's name.
pub fn for_each_source(mut f: impl FnMut(&'static str)) {
    pool().lock().sources().for_each(&mut f);
}

/// Set once the "no entropy source" warning was logged.
static WARNED: AtomicBool = AtomicBool::new(false);

const NO_SOURCE: &str = "random: no entropy source (no virtio-rng device, no CPU random instruction): getrandom() blocks, GRND_NONBLOCK gives EAGAIN, /dev/urandom and GRND_INSECURE give unseeded bytes";

/// Logs the missing source at `warn` the first time (boot with `warn`, or first use).
fn warn_unseeded_once() {
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!("{NO_SOURCE}");
    }
}

/// Logs, once at the end of boot, what seeded the generator, or that nothing did and what that
/// means for programs: at `warn` (shown by default) with `warn`, else at `info`, and then at
/// `warn` the first time something asks for random bytes.
pub fn report(warn: bool) {
    if is_seeded() {
        let mut names: [&str; MAX_SOURCES] = [""; MAX_SOURCES];
        let mut count = 0;
        for_each_source(|name| {
            names[count] = name;
            count += 1;
        });
        log::info!("random: seeded from {}", Joined(&names[..count]));
    } else if warn {
        warn_unseeded_once();
    } else {
        log::info!("{NO_SOURCE}");
    }
}

struct Joined<'a>(&'a [&'a str]);

impl core::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseeded_pool_refuses_secure_bytes_until_credited() {
        let mut pool = Pool::new([7; 32]);
        let mut out = [0u8; 16];
        assert_eq!(pool.fill(&mut out), Err(Errno::EAGAIN));
        assert_eq!(out, [0; 16], "a refused fill leaves the buffer alone");
        // Uncredited bytes never seed it.
        pool.mix(&[1; 64], None);
        assert!(!pool.is_seeded());
        // Credited, but not enough yet.
        pool.mix(&[2; 16], Some("test-rng"));
        assert!(!pool.is_seeded());
        pool.mix(&[3; 16], Some("test-rng"));
        assert!(pool.is_seeded());
        assert_eq!(pool.sources().collect::<Vec<_>>(), ["test-rng"]);
        pool.fill(&mut out).unwrap();
        assert_ne!(out, [0; 16]);
    }

    #[test]
    fn entropy_changes_the_stream_and_outputs_never_repeat() {
        let output = |entropy: &[u8]| {
            let mut pool = Pool::new([0; 32]);
            pool.mix(entropy, Some("a"));
            let mut first = [0u8; 32];
            let mut second = [0u8; 32];
            pool.fill(&mut first).unwrap();
            pool.fill(&mut second).unwrap();
            assert_ne!(first, second);
            first
        };
        // Same start and same entropy: same bytes (deterministic given the seed); one bit of
        // entropy different: different bytes.
        let mut entropy = [0x5au8; 32];
        let a = output(&entropy);
        assert_eq!(a, output(&entropy));
        entropy[31] ^= 1;
        assert_ne!(a, output(&entropy));
    }

    #[test]
    fn fast_key_erasure_moves_the_key_on_every_fill() {
        // Two pools in the same state diverge as soon as one of them produces output, so the
        // state after a fill is not the state that produced it.
        let mut a = Pool::new([9; 32]);
        let mut b = Pool::new([9; 32]);
        let mut out_a = [0u8; 64];
        a.fill_insecure(&mut out_a);
        let mut out_b = [0u8; 32];
        b.fill_insecure(&mut out_b);
        assert_eq!(out_a[..32], out_b, "same key, same first bytes");
        let (mut next_a, mut next_b) = ([0u8; 32], [0u8; 32]);
        a.fill_insecure(&mut next_a);
        b.fill_insecure(&mut next_b);
        assert_ne!(next_a, next_b, "after different-sized fills the keys differ");
        assert_ne!(next_b, out_a[32..], "the rekeyed stream is not the old stream continued");
    }

    #[test]
    fn sources_are_remembered_once_each_and_bounded() {
        let mut pool = Pool::new([0; 32]);
        for name in ["a", "b", "a", "c", "d", "e"] {
            pool.mix(&[1; 8], Some(name));
        }
        assert_eq!(pool.sources().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        pool.mix(&[], Some("empty"));
        assert!(!pool.sources().any(|s| s == "empty"));
    }

    #[test]
    fn global_pool_is_unseeded_until_a_source_credits_it() {
        // The only test touching the global pool (the process shares it).
        let mut out = [0u8; 8];
        assert_eq!(fill(&mut out), Err(Errno::EAGAIN));
        fill_insecure(&mut out);
        let mut big = vec![0u8; CHUNK * 2 + 5];
        fill_insecure(&mut big);
        assert!(big[CHUNK * 2..].iter().any(|&b| b != 0));
        add_entropy(&[0xa5; SEED_BYTES], "test");
        assert!(is_seeded());
        wait_seeded(); // returns at once now
        fill(&mut big).unwrap();
        let mut names = Vec::new();
        for_each_source(|n| names.push(n));
        assert_eq!(names, ["test"]);
    }
}
