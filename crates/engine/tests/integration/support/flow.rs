//! The test workflow, shared by the integration tests and the child-process binary: specs
//! sleep `ms` milliseconds (cancellable unless `stubborn`), may wait for the test to open their
//! gate (`gate`; `gate_file`: until the file `open` exists in the workdir), may fail, panic or ask to be retried (`retry`: that many times), may spawn
//! children, may hand `hand` children to the queue while they run (`RunContext::enqueue`), and log `<id>` lines to `starts.log`, `done.log` and `cancelled.log` in the workdir.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autoresearch_engine::{
    Decision, Outcome, RunContext, StartInfo, WorkError, WorkSpec, Workflow,
};
use serde_json::{Map, Value, json};

/// The test workflow.
pub(crate) struct TestFlow {
    pub(crate) dir: PathBuf,
    pub(crate) initial: Vec<WorkSpec>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
    pub(crate) outcomes: Mutex<Vec<(String, String)>>,
    /// `(id, resumed, virtual time)` of every start.
    pub(crate) starts: Mutex<Vec<(String, bool, tokio::time::Instant)>>,
    /// Gates opened by the test (`"*"` opens all).
    gates: tokio::sync::watch::Sender<HashSet<String>>,
    retries: Mutex<HashMap<String, u64>>,
}

impl TestFlow {
    pub(crate) fn new(dir: &Path, initial: Vec<WorkSpec>) -> Self {
        TestFlow {
            dir: dir.to_path_buf(),
            initial,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            outcomes: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
            gates: tokio::sync::watch::Sender::new(HashSet::new()),
            retries: Mutex::new(HashMap::new()),
        }
    }

    /// Lets the gated spec `id` (or every one, with `"*"`) finish.
    pub(crate) fn open_gate(&self, id: &str) {
        self.gates.send_modify(|g| {
            g.insert(id.to_string());
        });
    }

    /// Ids in start order, with their `resumed` flag.
    pub(crate) fn start_order(&self) -> Vec<(String, bool)> {
        self.starts
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, r, _)| (id.clone(), *r))
            .collect()
    }

    fn log(&self, file: &str, line: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file))
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

pub(crate) fn spec(id: &str, priority: f64, payload: Value) -> WorkSpec {
    let payload: Map<String, Value> = match payload {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    WorkSpec::new(id, priority, "test", payload).expect("valid test spec")
}

pub(crate) fn sleeper(id: &str, priority: f64, ms: u64) -> WorkSpec {
    spec(id, priority, json!({ "ms": ms }))
}

/// A spec that runs until the test opens its gate.
pub(crate) fn gated(id: &str, priority: f64) -> WorkSpec {
    spec(id, priority, json!({ "gate": true }))
}

impl Workflow for TestFlow {
    async fn initial_specs(&self, start: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        Ok(if start.resumed {
            Vec::new()
        } else {
            self.initial.clone()
        })
    }

    async fn run(&self, spec: WorkSpec, ctx: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Ok(mut s) = self.starts.lock() {
            s.push((spec.id.clone(), ctx.resumed, tokio::time::Instant::now()));
        }
        self.log("starts.log", &spec.id);
        let p = &spec.payload;
        let hand = p.get("hand").and_then(Value::as_u64).unwrap_or(0);
        let handed: Vec<WorkSpec> = (0..hand)
            .map(|i| sleeper(&format!("{}.h{i}", spec.id), 0.0, 1))
            .collect();
        // Handed twice: the second copy is a duplicate of a queued or running id, skipped.
        ctx.enqueue(handed.clone());
        ctx.enqueue(handed);
        let ms = p.get("ms").and_then(Value::as_u64).unwrap_or(0);
        let stubborn = p.get("stubborn").and_then(Value::as_bool).unwrap_or(false);
        let gated = p.get("gate").and_then(Value::as_bool).unwrap_or(false);
        let gate_file = p
            .get("gate_file")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| self.dir.join("open"));
        let mut gates = self.gates.subscribe();
        let id = spec.id.clone();
        let work = async move {
            if gated {
                let _ = gates.wait_for(|g| g.contains(&id) || g.contains("*")).await;
            }
            // Across processes: the test creates the file `open` in the workdir.
            if let Some(open) = gate_file {
                while !open.exists() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
        };
        let result = if stubborn {
            tokio::pin!(work);
            tokio::select! {
                _ = &mut work => {}
                _ = ctx.cancel.cancelled() => {
                    self.log("cancelled.log", &spec.id);
                    work.await;
                }
            }
            Ok(())
        } else {
            tokio::select! {
                _ = work => Ok(()),
                _ = ctx.cancel.cancelled() => {
                    self.log("cancelled.log", &spec.id);
                    Err(WorkError::Interrupted)
                }
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
        let retry = p.get("retry").and_then(Value::as_u64).unwrap_or(0);
        if retry > 0 {
            let mut r = self.retries.lock().expect("lock");
            let n = r.entry(spec.id.clone()).or_insert(0);
            if *n < retry {
                *n += 1;
                return Err(WorkError::Retry(format!("disk full (attempt {n})")));
            }
        }
        if p.get("panic").and_then(Value::as_bool).unwrap_or(false) {
            panic!("boom in {}", spec.id);
        }
        if p.get("fail").and_then(Value::as_bool).unwrap_or(false) {
            return Err(WorkError::msg(format!("{} failed on purpose", spec.id)));
        }
        self.log("done.log", &spec.id);
        let children = p.get("children").and_then(Value::as_u64).unwrap_or(0);
        let depth = p.get("depth").and_then(Value::as_u64).unwrap_or(0);
        Ok((0..children)
            .filter(|_| depth > 0)
            .map(|i| spec_child(&spec.id, i, ms, children, depth - 1))
            .collect())
    }

    async fn on_outcome(&self, spec: &WorkSpec, outcome: &Outcome) -> Decision {
        let (kind, enqueue) = match outcome {
            Outcome::Completed { children } => ("completed", children.clone()),
            Outcome::Failed { .. } => ("failed", Vec::new()),
            Outcome::Panicked { .. } => ("panicked", Vec::new()),
            Outcome::Cancelled => ("cancelled", Vec::new()),
        };
        if let Ok(mut o) = self.outcomes.lock() {
            o.push((spec.id.clone(), kind.to_string()));
        }
        Decision {
            enqueue,
            stop: None,
        }
    }
}

fn spec_child(parent: &str, i: u64, ms: u64, children: u64, depth: u64) -> WorkSpec {
    spec(
        &format!("{parent}.{i}"),
        0.0,
        json!({ "ms": ms, "children": children, "depth": depth }),
    )
}

/// Lines of a log file in the workdir.
pub(crate) fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
