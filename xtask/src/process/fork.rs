//! Forks: the parent VM saved with QEMU's migration and loaded into a spare QEMU started
//! ahead of time (see [`super`]'s module docs): the spare's life and a fork's steps.

use super::{ChildQemu, EAGAIN, ForkTiming, Outbox, Qmp, SIGKILL, Shared, alive, clear_ram, lock, write_line};
use crate::Result;
use libos_process_protocol::{Event, HostMessage, Pid, Reply};
use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

/// A QEMU started ahead of a fork, waiting for a state to load (`-incoming defer`).
pub(super) struct Spare {
    process: ChildQemu,
    qemu: u32,
    control: UnixStream,
    qmp: Qmp,
    daemons: Option<crate::virtiofs::Daemons>,
}

impl Spare {
    /// Kills it and its virtiofsd.
    pub(super) fn stop(mut self) {
        self.process.kill();
        crate::qemu::untrack(self.qemu);
        if let Some(mut daemons) = self.daemons.take() {
            daemons.stop();
        }
    }
}

/// The spare QEMU of the next fork.
pub(super) enum SpareSlot {
    /// None (before the first fork, or starting one failed).
    Empty,
    /// One is starting (a fork waits for it rather than start another).
    Starting,
    /// One is waiting for its state.
    Ready(Spare),
}

impl Shared {
    /// Copies VM `parent` into a new one. `Ok(None)`: done, and the parent has its reply (sent
    /// before the child runs, so that it knows its child before it can hear that it ended);
    /// `Ok(Some(reply))`: refused with this reply.
    pub(super) fn fork(self: &Arc<Self>, parent: Pid, request: u32) -> Result<Option<Reply>> {
        let (child, qmp) = {
            let mut table = lock(&self.table);
            if table.closing || table.vms.len() >= self.limit {
                return Ok(Some(Reply::Error { errno: EAGAIN }));
            }
            let child = table.next_pid;
            table.next_pid += 1;
            let qmp = table.vms.get(&parent).ok_or("no such parent")?.qmp.clone();
            (child, qmp)
        };
        let state = self.dir.path().join(format!("state-{child}"));
        let started = Instant::now();
        {
            let mut qmp = lock(&qmp);
            qmp.execute("stop", json!({}))?;
            let saved = qmp.migrate_to(&state);
            qmp.execute("cont", json!({}))?;
            saved?;
        }
        let saved_in = started.elapsed();
        let result = self.start_child(child, parent, request, &state);
        let _ = std::fs::remove_file(&state);
        match result {
            Ok(()) => {
                self.prepare_spare();
                let timing = ForkTiming { saved: saved_in, running: started.elapsed() };
                lock(&self.forks).push(timing);
                if std::env::var_os("LIBOS_PROCESS_TRACE").is_some() {
                    eprintln!("process host: fork {parent} -> {child}: saved in {:?}, child running after {:?}", timing.saved, timing.running);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a QEMU for a future child: the parent's command line (see the module docs for
    /// what a child does not share), waiting for a state to load (`-incoming defer`), its
    /// sockets connected.
    fn start_spare(&self) -> Result<Spare> {
        let mut config = self.config.clone();
        if let Some(net) = &mut config.net {
            net.backend = crate::net::NetBackend::User { forwards: Vec::new(), restrict: true };
        }
        for disk in &mut config.disks {
            disk.snapshot = true;
        }
        config.launcher.clear();
        let daemons = if config.shares.is_empty() { None } else { Some(crate::virtiofs::Daemons::start(&config.shares)?) };
        let name = format!("s{}", self.spares_started.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let listeners = self.listen(&name)?;
        let mut command: Command = config.command();
        if let Some(daemons) = &daemons {
            command.args(daemons.qemu_args(config.transport(), &config.memory));
        }
        command.args(self.vm_args(&name));
        command.args(["-incoming", "defer"]);
        let mut process = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let qemu = process.id();
        crate::qemu::track(qemu);
        let console = self.forward_output(process.stdout.take(), process.stderr.take());
        let process = ChildQemu { process, console };
        match self.accept(&listeners, qemu) {
            Ok((control, qmp)) => Ok(Spare { process, qemu, control, qmp, daemons }),
            Err(e) => {
                process.kill();
                crate::qemu::untrack(qemu);
                Err(e)
            }
        }
    }

    /// The spare QEMU started after the last fork (waiting for it if it is still starting), or
    /// a new one.
    fn take_spare(&self) -> Result<Spare> {
        let mut slot = lock(&self.spare);
        while matches!(*slot, SpareSlot::Starting) {
            slot = self.spare_ready.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let taken = std::mem::replace(&mut *slot, SpareSlot::Empty);
        drop(slot);
        match taken {
            SpareSlot::Ready(spare) if alive(spare.qemu) => Ok(spare),
            SpareSlot::Ready(dead) => {
                dead.stop();
                self.start_spare()
            }
            SpareSlot::Empty | SpareSlot::Starting => self.start_spare(),
        }
    }

    /// Starts the next spare in the background (a fork then costs no QEMU start-up); one that
    /// comes up after the run began closing is stopped at once.
    fn prepare_spare(self: &Arc<Self>) {
        {
            let mut slot = lock(&self.spare);
            if !matches!(*slot, SpareSlot::Empty) {
                return;
            }
            *slot = SpareSlot::Starting;
        }
        let shared = self.clone();
        std::thread::spawn(move || {
            let started = shared.start_spare();
            let mut slot = lock(&shared.spare);
            *slot = SpareSlot::Empty;
            match started {
                Ok(spare) if lock(&shared.table).closing => spare.stop(),
                Ok(spare) => *slot = SpareSlot::Ready(spare),
                Err(e) => eprintln!("process host: cannot start a spare QEMU ({e}); the next fork starts one"),
            }
            drop(slot);
            shared.spare_ready.notify_all();
        });
    }

    /// Loads the saved state into a spare QEMU as `child`, tells it who it is, lets it run.
    fn start_child(self: &Arc<Self>, child: Pid, parent: Pid, request: u32, state: &Path) -> Result<()> {
        let Spare { process, qemu, control, mut qmp, daemons } = self.take_spare()?;
        // With mapped-ram a page the parent had zero is not in the file, and loading leaves the
        // destination's page as it is: the spare's RAM must read zero first. It holds what QEMU
        // put there at reset (the kernel image, the device tree): punching the whole RAM file
        // empties it (the spare's CPUs never ran).
        let loaded = clear_ram(qemu)
            .map_err(|e| format!("clearing the spare's RAM: {e}").into())
            .and_then(|()| {
                qmp.execute("migrate-set-capabilities", json!({ "capabilities": [{ "capability": "mapped-ram", "state": true }] }))
            })
            .and_then(|_| qmp.execute("migrate-incoming", json!({ "uri": format!("file:{}", state.display()) })))
            .and_then(|_| qmp.wait_until_loaded());
        let control = self.add_vm(child, parent, qemu, control, qmp, Some(process), daemons)?;
        if let Err(e) = loaded {
            self.kill_vm(child, SIGKILL);
            return Err(e);
        }
        // The copy may hold part of a line the parent was receiving when it was saved (the
        // guest reads the channel byte by byte): an empty line first ends it, so the child's
        // first message starts on a line of its own. (The part is then one malformed line the
        // guest logs and drops.)
        lock(&control).write_all(b"\n")?;
        write_line(&control, &HostMessage::Reply(request, Reply::Child { pid: child, parent }))?;
        let mut out = Outbox::new();
        {
            let mut table = lock(&self.table);
            table.pipes.forked(parent, child, &mut out);
            table.offsets.forked(parent, child);
            // The child runs its parent's program: one more process runs from that file, for
            // every VM (the child counts its parent, which its copied state does not).
            let text = table.vms.get(&parent).and_then(|vm| vm.text);
            if let Some(text) = text {
                if let Some(vm) = table.vms.get_mut(&child) {
                    vm.text = Some(text);
                }
                for &vm in table.vms.keys() {
                    out.push((vm, HostMessage::Event(Event::Text { text, running: true })));
                }
            }
        }
        out.push((parent, HostMessage::Reply(request, Reply::Forked { child })));
        self.send_all(out);
        // The parent knows its child now: a child that cannot run is one that died.
        let qmp = lock(&self.table).vms.get(&child).map(|vm| vm.qmp.clone());
        if let Some(Err(e)) = qmp.map(|qmp| lock(&qmp).execute("cont", json!({}))) {
            eprintln!("process host: process {child} could not start running ({e}); it counts as killed");
            self.kill_vm(child, SIGKILL);
        }
        Ok(())
    }
}
