//! Shared helpers of the engine's integration tests: the test workflow, engine set-up, waiting
//! on conditions, reading the event log, and the child-process binary.

pub(crate) mod flow;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoresearch_engine::events::{EventLine, read_events};
use autoresearch_engine::{
    AsyncWorkEngine, CancellationToken, EngineConfig, Event, RunReport, SignalHandlerKind, WorkSpec,
};
pub(crate) use flow::{TestFlow, gated, lines, sleeper, spec};

/// An engine configuration for tests: no signal handler.
pub(crate) fn config(dir: &Path, concurrency: usize) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.max_concurrency = concurrency;
    c.signals = SignalHandlerKind::Noop;
    c
}

/// Waits (up to 20 s, polling every 10 ms) until `cond` holds; fails naming `what`.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The engine's events in `<dir>/engine/events.jsonl`.
pub(crate) fn events(dir: &Path) -> Vec<EventLine<Event>> {
    read_events::<Event>(&dir.join("engine/events.jsonl"), 0)
        .expect("events.jsonl readable")
        .0
}

/// A running engine on its own thread, with its workflow and token.
pub(crate) struct Spawned {
    pub(crate) flow: std::sync::Arc<TestFlow>,
    pub(crate) token: CancellationToken,
    pub(crate) handle: std::thread::JoinHandle<RunReport>,
}

/// Starts an engine (concurrency 1) on a thread.
pub(crate) fn spawn_engine(dir: &Path, specs: Vec<WorkSpec>) -> Spawned {
    let engine = AsyncWorkEngine::open(config(dir, 1), TestFlow::new(dir, specs)).expect("open");
    let token = engine.cancellation_token();
    let flow = engine.workflow().clone();
    let handle = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(engine.run())
            .expect("run")
    });
    Spawned {
        flow,
        token,
        handle,
    }
}

/// Starts the child-process binary `engine-test-child` on `dir` with `ENGINE_CHILD_*` settings.
pub(crate) fn spawn_child(dir: &Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engine-test-child"));
    cmd.arg(dir).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child engine")
}

/// Waits for a child to exit; returns its exit status.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "child did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to a child.
pub(crate) fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}
