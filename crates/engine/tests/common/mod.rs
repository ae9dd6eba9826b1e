//! Shared test workflow: specs sleep `ms` milliseconds (cancellable unless `stubborn`), may fail
//! or panic, may spawn children, and log `start <id>` / `done <id>` lines to files in the workdir.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autoresearch_engine::{
    Decision, Outcome, RunContext, StartInfo, WorkError, WorkSpec, Workflow,
};
use serde_json::{Map, Value, json};

pub struct TestFlow {
    pub dir: PathBuf,
    pub initial: Vec<WorkSpec>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub outcomes: Mutex<Vec<(String, String)>>,
    pub starts: Mutex<Vec<(String, bool)>>,
}

impl TestFlow {
    pub fn new(dir: &Path, initial: Vec<WorkSpec>) -> Self {
        TestFlow {
            dir: dir.to_path_buf(),
            initial,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            outcomes: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
        }
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

pub fn spec(id: &str, priority: f64, payload: Value) -> WorkSpec {
    let payload: Map<String, Value> = match payload {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    WorkSpec::new(id, priority, "test", payload).expect("valid test spec")
}

pub fn sleeper(id: &str, priority: f64, ms: u64) -> WorkSpec {
    spec(id, priority, json!({ "ms": ms }))
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
            s.push((spec.id.clone(), ctx.resumed));
        }
        self.log("starts.log", &spec.id);
        let p = &spec.payload;
        let ms = p.get("ms").and_then(Value::as_u64).unwrap_or(0);
        let stubborn = p.get("stubborn").and_then(Value::as_bool).unwrap_or(false);
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        let result = if stubborn {
            sleep.await;
            Ok(())
        } else {
            tokio::select! {
                _ = sleep => Ok(()),
                _ = ctx.cancel.cancelled() => Err(WorkError::Interrupted),
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
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
pub fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
