//! `wordcount`: the root-on-virtio-fs (or root-on-disk) demo.
//!
//! ```sh
//! cp -r apps/wordcount/example /tmp/wc
//! ./x run wordcount --root /tmp/wc      # then: cat /tmp/wc/results/report.txt
//! # or from an ext2 disk made from the same tree:
//! ./x disk create /tmp/wc.img --size 16M --from apps/wordcount/example
//! ./x run wordcount --disk /tmp/wc.img --cmdline root=ext2:vda   # then: debugfs -R "cat /results/report.txt" /tmp/wc.img
//! ```
//!
//! The host directory (or the disk) is the guest's `/`. The app reads `/etc/wordcount.conf`:
//!
//! ```text
//! # comments and blank lines are ignored
//! inputs = /texts/a.txt /texts/b.txt    # files to count (required)
//! output = /results/report.txt          # where the report goes (required; its directory is created)
//! top = 5                               # how many most frequent words to list (default 10)
//! ```
//!
//! and writes a report: lines, words and bytes per input and in total, then the most frequent
//! words (case-folded ASCII letters and digits; ties in alphabetical order). It prints the
//! report too. Exit codes: 0 done, 1 a file could not be read or written, 2 a bad configuration.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use libos::fs;
use libos::println;

libos::main!(main);

const CONFIG: &str = "/etc/wordcount.conf";

struct Config {
    inputs: Vec<String>,
    output: String,
    top: usize,
}

fn parse_config(text: &str) -> Result<Config, String> {
    let (mut inputs, mut output, mut top) = (None, None, 10);
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{CONFIG}:{}: expected `key = value`", number + 1));
        };
        match key.trim() {
            "inputs" => inputs = Some(value.split_whitespace().map(String::from).collect::<Vec<_>>()),
            "output" => output = Some(String::from(value.trim())),
            "top" => top = value.trim().parse().map_err(|_| format!("{CONFIG}:{}: `top` is not a number", number + 1))?,
            other => return Err(format!("{CONFIG}:{}: unknown key `{other}`", number + 1)),
        }
    }
    let inputs = inputs.filter(|i| !i.is_empty()).ok_or_else(|| format!("{CONFIG}: no `inputs`"))?;
    let output = output.filter(|o| o.starts_with('/')).ok_or_else(|| format!("{CONFIG}: no absolute `output` path"))?;
    Ok(Config { inputs, output, top })
}

#[derive(Default)]
struct Counts {
    lines: usize,
    words: usize,
    bytes: usize,
}

fn count(text: &[u8], counts: &mut Counts, frequencies: &mut BTreeMap<String, usize>) {
    counts.bytes += text.len();
    counts.lines += text.iter().filter(|&&b| b == b'\n').count();
    for word in text.split(|b| !b.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        counts.words += 1;
        let word: String = word.iter().map(|b| char::from(b.to_ascii_lowercase())).collect();
        *frequencies.entry(word).or_default() += 1;
    }
}

fn run() -> Result<(), (i32, String)> {
    let text = fs::read_to_string(CONFIG).map_err(|e| (2, format!("cannot read {CONFIG}: {e}")))?;
    let config = parse_config(&text).map_err(|e| (2, e))?;
    let mut report = String::new();
    let mut total = Counts::default();
    let mut frequencies = BTreeMap::new();
    for input in &config.inputs {
        let data = fs::read(input).map_err(|e| (1, format!("cannot read {input}: {e}")))?;
        let mut counts = Counts::default();
        count(&data, &mut counts, &mut frequencies);
        let _ = writeln!(report, "{input}: {} lines, {} words, {} bytes", counts.lines, counts.words, counts.bytes);
        total.lines += counts.lines;
        total.words += counts.words;
        total.bytes += counts.bytes;
    }
    let _ = writeln!(report, "total: {} lines, {} words, {} bytes", total.lines, total.words, total.bytes);
    let mut ranked: Vec<(&String, &usize)> = frequencies.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (word, n) in ranked.into_iter().take(config.top) {
        let _ = writeln!(report, "{n} {word}");
    }
    if let Some((dir, _)) = config.output.rsplit_once('/').filter(|(dir, _)| !dir.is_empty()) {
        fs::create_dir_all(dir).map_err(|e| (1, format!("cannot create {dir}: {e}")))?;
    }
    fs::write(&config.output, report.as_bytes()).map_err(|e| (1, format!("cannot write {}: {e}", config.output)))?;
    libos::print!("{report}");
    println!("wordcount: report written to {}", config.output);
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err((code, why)) => {
            println!("wordcount: {why}");
            code
        }
    }
}
