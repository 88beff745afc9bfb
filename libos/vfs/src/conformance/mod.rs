//! The conformance suite: named cases any [`FileSystem`] runs through a [`Vfs`](crate::Vfs), on the host
//! (`cargo test`) and in a guest (the `vfs-conformance` app), plus a randomized model test.
//!
//! A file system crate hooks in with a [`FileSystemFactory`] that makes a fresh, empty instance
//! per case, and one test:
//!
//! ```ignore
//! #[test]
//! fn conformance() {
//!     let report = libos_vfs::conformance::run_all(&MyFactory, &mut |name, result| {
//!         if let Err(why) = result { eprintln!("FAILED {name}: {why}") }
//!     });
//!     assert_eq!(report.failed, 0);
//! }
//! ```
//!
//! Each case returns `Err(message)` naming the file, line and the check that failed (expected
//! and actual errno included). Cases use only the public VFS API, so they are reusable unchanged
//! for any file system; what they require beyond POSIX is listed on each case.

mod cases;
mod model;
mod tiny;

use crate::node::FileSystem;
use alloc::string::String;
use alloc::sync::Arc;

pub use model::{ModelConfig, run_model};
pub use tiny::TinyFs;

/// Makes fresh, empty instances of the file system under test.
pub trait FileSystemFactory {
    /// A name for reports.
    fn name(&self) -> &str;
    /// A new, empty file system.
    fn create(&self) -> Result<Arc<dyn FileSystem>, String>;
    /// What a machine that crashed now would find of `fs` (an instance from
    /// [`FileSystemFactory::create`]): a second instance over what `fs` has made durable so
    /// far (a copy of its disk), without anything `fs` holds only in memory. `None`, the
    /// default, for file systems with nothing below them (ramfs) or factories that cannot
    /// make one; cases then skip their durability checks.
    fn durable_view(&self, fs: &Arc<dyn FileSystem>) -> Option<Result<Arc<dyn FileSystem>, String>> {
        let _ = fs;
        None
    }

    /// Whether the file system makes unnamed files (`O_TMPFILE`). When it does not (say why
    /// in the implementation), the case checks that it refuses them with `EOPNOTSUPP`, as
    /// Linux's file systems without them do. Default: true.
    fn makes_unnamed_files(&self) -> bool {
        true
    }
}

/// A test case: a name and a function.
#[derive(Clone, Copy)]
pub struct Case {
    /// A short unique name (`rename_dir_rules`, ...).
    pub name: &'static str,
    /// Runs the case on fresh instances from the factory.
    pub run: fn(&dyn FileSystemFactory) -> Result<(), String>,
}

impl core::fmt::Debug for Case {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every case, in a sensible order (basics first). The last one, `model`, runs
/// [`run_model`] with [`ModelConfig::QUICK`].
pub const CASES: &[Case] = cases::ALL;

/// Counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

/// Runs `cases` and calls `report` after each one.
pub fn run_cases(
    factory: &dyn FileSystemFactory,
    cases: &[Case],
    report: &mut dyn FnMut(&str, &Result<(), String>),
) -> Report {
    let mut counts = Report::default();
    for case in cases {
        let result = (case.run)(factory);
        if result.is_ok() {
            counts.passed += 1;
        } else {
            counts.failed += 1;
        }
        report(case.name, &result);
    }
    counts
}

/// Runs every case in [`CASES`].
pub fn run_all(factory: &dyn FileSystemFactory, report: &mut dyn FnMut(&str, &Result<(), String>)) -> Report {
    run_cases(factory, CASES, report)
}

/// The case named `name`.
pub fn case(name: &str) -> Option<Case> {
    CASES.iter().copied().find(|c| c.name == name)
}
