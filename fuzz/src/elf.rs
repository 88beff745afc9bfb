//! ELF loading plans: [`posix_shim::elf::plan`] on any bytes, for both machines. A plan it
//! accepts must be one the loader can carry out without harm: page runs page-aligned, sorted,
//! disjoint and never writable and executable; copies inside the file and inside the runs; the
//! entry point in an executable run; the whole image within [`posix_shim::elf::MAX_IMAGE`].

use posix_shim::elf::{self, LoadPlan, MAX_IMAGE, Protection};

const PAGE: u64 = 4096;

/// Plans `data` as an x86_64 and as an aarch64 program.
pub fn run(data: &[u8]) {
    for machine in [::elf::abi::EM_X86_64, ::elf::abi::EM_AARCH64] {
        if let Ok(plan) = elf::plan(data, machine) {
            check(&plan, data.len() as u64);
        }
    }
}

fn check(plan: &LoadPlan, file_len: u64) {
    let mut previous_end = 0;
    for run in &plan.runs {
        assert!(run.start % PAGE == 0 && run.end % PAGE == 0 && run.start < run.end, "{run:?}");
        assert!(run.start >= previous_end, "runs overlap or are unsorted: {:?}", plan.runs);
        previous_end = run.end;
    }
    let (first, last) = (plan.runs.first().expect("a plan maps pages"), plan.runs.last().expect("a plan maps pages"));
    assert!(last.end - first.start <= MAX_IMAGE + PAGE, "image of {} bytes", last.end - first.start);
    let mapped = |addr: u64| plan.runs.iter().find(|r| (r.start..r.end).contains(&addr));
    for copy in &plan.copies {
        let file_end = copy.offset.checked_add(copy.len).expect("copy end overflows");
        assert!(file_end <= file_len, "copy past the end of the file: {copy:?}");
        let end = copy.addr.checked_add(copy.len).expect("copy target overflows");
        assert!(mapped(copy.addr).is_some() && mapped(end - 1).is_some(), "copy outside the runs: {copy:?}");
    }
    assert!(mapped(plan.entry).is_some_and(|r| r.protection == Protection::ReadExecute), "entry {:#x}", plan.entry);
}
