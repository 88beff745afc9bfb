//! A QMP connection (QEMU's JSON control protocol): what the process host stops, saves,
//! loads and continues VMs with.

use super::START_TIMEOUT;
use crate::Result;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A QMP connection (QEMU's JSON control protocol).
pub(super) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Reads the greeting and enters command mode.
    pub(super) fn new(stream: UnixStream) -> Result<Qmp> {
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        let mut qmp = Qmp { reader: BufReader::new(stream.try_clone()?), writer: stream };
        let mut greeting = String::new();
        qmp.reader.read_line(&mut greeting)?;
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value (events in between are skipped).
    pub(super) fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        writeln!(self.writer, "{}", json!({ "execute": command, "arguments": arguments }))?;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(format!("QEMU closed QMP during {command}").into());
            }
            let reply: Value = serde_json::from_str(&line)?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(format!("QMP {command}: {error}").into());
            }
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    /// Saves the stopped VM's state to `file` and waits until the save completed.
    pub(super) fn migrate_to(&mut self, file: &Path) -> Result<()> {
        self.execute("migrate-set-capabilities", json!({ "capabilities": [{ "capability": "mapped-ram", "state": true }] }))?;
        self.execute("migrate", json!({ "uri": format!("file:{}", file.display()) }))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = self.execute("query-migrate", json!({}))?;
            match status.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some("failed" | "cancelled") => {
                    return Err(format!("saving the VM failed: {}", status.get("error-desc").unwrap_or(&Value::Null)).into());
                }
                _ if Instant::now() > deadline => return Err("saving the VM took too long".into()),
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// Waits until an incoming VM has loaded its state (it is then paused).
    pub(super) fn wait_until_loaded(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = self.execute("query-status", json!({}))?;
            match status.get("status").and_then(Value::as_str) {
                Some("inmigrate") | None => {}
                Some("paused" | "prelaunch" | "postmigrate") => return Ok(()),
                Some(other) => return Err(format!("the child VM is {other} after loading").into()),
            }
            if Instant::now() > deadline {
                return Err("loading the child VM took too long".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
