//! Streaming `engine/events.jsonl` into the session: a tail that starts at the end of the file
//! (only what happens from now on is shown), one formatted line per interesting event, and a
//! background thread that prints them above the prompt and notices an engine that went away
//! without saying so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use autoresearch_adapters::config::format_number;
use autoresearch_adapters::model::NodeResult;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::events::{NodeEvent, RunEvent, RunEventLine};
use autoresearch_engine::Event;
use autoresearch_engine::events::{EditResult, read_events};

use super::style;

/// How often the tail looks for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// How often the thread checks that the engine still holds its lock.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(2);

/// An incremental reader of `engine/events.jsonl`.
#[derive(Debug, Clone)]
pub struct EventTail {
    path: PathBuf,
    offset: u64,
}

impl EventTail {
    /// A tail that will only report events appended after now.
    pub fn from_end(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        EventTail { path, offset }
    }

    /// Events appended since the last call (a torn last line waits for the next call; lines
    /// of unknown events are skipped).
    pub fn poll(&mut self) -> std::io::Result<Vec<RunEventLine>> {
        let (events, offset) = read_events::<RunEvent>(&self.path, self.offset)?;
        self.offset = offset;
        Ok(events)
    }
}

/// The path of the event log of a workdir.
pub fn events_path(workdir: &Path) -> PathBuf {
    workdir.join("engine").join("events.jsonl")
}

/// One line for an event, or `None` for events not worth showing (queued, phase changes, and
/// the engine's completion events, which the node events describe better).
/// `metric` names the primary metric (for completed nodes).
pub fn format_event(wd: &Workdir, metric: &str, line: &RunEventLine) -> Option<String> {
    let body = match &line.event {
        RunEvent::Engine(ev) => engine_line(wd, ev)?,
        RunEvent::Node(ev) => node_line(wd, metric, ev)?,
    };
    let time = super::local_time::clock(Some(&line.ts));
    Some(if time.is_empty() {
        body
    } else {
        format!("{} {body}", style::dim(&time))
    })
}

fn engine_line(wd: &Workdir, ev: &Event) -> Option<String> {
    Some(match ev {
        Event::EngineStarted { pid, resumed } => {
            let what = if *resumed {
                "engine resumed"
            } else {
                "engine started"
            };
            format!("{what} (pid {pid})")
        }
        Event::EngineStopped { reason } => match reason {
            Some(r) => format!("engine stopped: {r}"),
            None => "engine stopped".to_string(),
        },
        Event::EngineInterrupted { reason } => match reason {
            Some(r) => style::red(&format!("engine interrupted: {r}")),
            None => "engine interrupted (running jobs keep going; `start` resumes)".to_string(),
        },
        Event::SpecStarted { id, resumed } => {
            if *resumed {
                format!("▶ {id} started (resumed)")
            } else {
                format!("▶ {id} started")
            }
        }
        // A failure the workflow did not record itself (no failure.json): say it here.
        Event::SpecFailed { id, error, .. } if !wd.node_failure(id).exists() => {
            style::red(&format!("✗ {id} failed ({})", one_line(error)))
        }
        Event::SpecCancelled { id } => format!("■ {id} interrupted (it resumes with the engine)"),
        Event::SpecBumped { id, priority } => {
            format!("queue: {id} now has priority {}", format_number(*priority))
        }
        Event::SpecDropped { id } => format!("queue: {id} dropped"),
        Event::CheckpointEdit {
            result, message, ..
        } => {
            let result = match result {
                EditResult::Applied => "applied",
                EditResult::Rejected => "rejected",
            };
            format!("checkpoint edit {result}: {message}")
        }
        Event::Warning { message, .. } => style::yellow(&format!("warning: {message}")),
        Event::SpecQueued { .. }
        | Event::SpecPhase { .. }
        | Event::SpecCompleted { .. }
        | Event::SpecFailed { .. } => return None,
    })
}

fn node_line(wd: &Workdir, metric: &str, ev: &NodeEvent) -> Option<String> {
    Some(match ev {
        NodeEvent::NodeCompleted {
            id,
            primary,
            improved,
        } => {
            let duration = std::fs::read(wd.node_result(id))
                .ok()
                .and_then(|b| serde_json::from_slice::<NodeResult>(&b).ok())
                .map(|r| format!(" in {:.1}s", r.duration_s))
                .unwrap_or_default();
            let line = format!(
                "✓ {id} completed: {metric}={}{duration}",
                format_number(*primary)
            );
            if *improved {
                format!("{line}  {}", style::green("★ new best"))
            } else {
                line
            }
        }
        NodeEvent::NodeFailed { id, kind, message } => style::red(&format!(
            "✗ {id} failed ({}: {})",
            kind.as_str(),
            one_line(message)
        )),
        NodeEvent::PlannerFailed { id, message } => style::yellow(&format!(
            "warning: planner failure (planning from {id}): {}",
            one_line(message)
        )),
        NodeEvent::NodeStarted { .. } => return None,
    })
}

/// The first line of a message, shortened to 200 characters.
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("").trim();
    if first.chars().count() > 200 {
        let cut: String = first.chars().take(199).collect();
        format!("{cut}…")
    } else {
        first.to_string()
    }
}

/// Prints a line above the prompt (rustyline's external printer) or on stdout.
pub type Printer = Box<dyn FnMut(String) + Send>;

/// The streaming thread; dropped or [`stop`](Streamer::stop)ped, it ends within one poll.
#[derive(Debug)]
pub struct Streamer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Streamer {
    /// Starts tailing `tail` in a thread, printing each event line with `print`. `metric` is
    /// the primary metric's name. The thread also reports an engine that stopped holding the
    /// workdir's lock without writing a final event (it crashed or was killed).
    pub fn start(workdir: &Path, metric: String, mut tail: EventTail, mut print: Printer) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = workdir.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("event-stream".into())
            .spawn(move || {
                let wd = Workdir::new(&root);
                let mut up = engine_alive(&root);
                let mut last_check = Instant::now();
                while !flag.load(Ordering::Acquire) {
                    let mut emit = |events: Vec<RunEventLine>, up: &mut bool| {
                        for ev in events {
                            match &ev.event {
                                RunEvent::Engine(Event::EngineStarted { .. }) => *up = true,
                                RunEvent::Engine(
                                    Event::EngineStopped { .. } | Event::EngineInterrupted { .. },
                                ) => *up = false,
                                _ => {}
                            }
                            if let Some(line) = format_event(&wd, &metric, &ev) {
                                print(line + "\n");
                            }
                        }
                    };
                    if let Ok(events) = tail.poll() {
                        emit(events, &mut up);
                    }
                    if last_check.elapsed() >= LIVENESS_INTERVAL {
                        last_check = Instant::now();
                        if up && !engine_alive(&root) {
                            // The final event is written before the lock is released: read
                            // once more before calling it a crash.
                            if let Ok(events) = tail.poll() {
                                emit(events, &mut up);
                            }
                            if up {
                                up = false;
                                print(
                                    style::red(
                                        "the engine is gone without a final event (crashed or killed?); see logs/engine.log — `start` resumes the run",
                                    ) + "\n",
                                );
                            }
                        } else if !up && engine_alive(&root) {
                            up = true;
                        }
                    }
                    std::thread::sleep(POLL_INTERVAL);
                }
            })
            .ok();
        Streamer { stop, handle }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Whether an engine holds the workdir's lock.
pub fn engine_alive(workdir: &Path) -> bool {
    matches!(autoresearch_engine::lock::holder(workdir), Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ev(text: &str) -> RunEventLine {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn tail_starts_at_the_end_and_waits_for_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            "{\"ts\":\"t\",\"event\":\"spec_dropped\",\"id\":\"old\"}\n",
        )
        .unwrap();
        let mut tail = EventTail::from_end(&path);
        assert!(tail.poll().unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(
            f,
            "{{\"ts\":\"t\",\"event\":\"spec_dropped\",\"id\":\"new\"}}\n{{\"ts\":\"t\",\"ev"
        )
        .unwrap();
        let got = tail.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].event,
            RunEvent::Engine(Event::SpecDropped { id: "new".into() })
        );
        writeln!(f, "ent\":\"spec_dropped\",\"id\":\"third\"}}").unwrap();
        let got = tail.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].event,
            RunEvent::Engine(Event::SpecDropped { id: "third".into() })
        );
    }

    #[test]
    fn tail_of_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = EventTail::from_end(dir.path().join("nope.jsonl"));
        assert!(tail.poll().unwrap().is_empty());
    }

    #[test]
    fn formats_engine_and_node_events() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Workdir::new(dir.path());
        std::fs::create_dir_all(wd.node_dir("001_a")).unwrap();
        std::fs::create_dir_all(wd.node_dir("002_b")).unwrap();
        let result = NodeResult {
            primary: Some(12.5),
            improved: true,
            duration_s: 1.25,
            ..Default::default()
        };
        std::fs::write(
            wd.node_result("001_a"),
            serde_json::to_vec(&result).unwrap(),
        )
        .unwrap();
        std::fs::write(wd.node_failure("002_b"), "{}").unwrap();
        let ts = "\"ts\":\"2026-01-02T03:04:05.678Z\"";
        let line = |s: &str| format_event(&wd, "score", &ev(s));
        let started = line(&format!(r#"{{{ts},"event":"spec_started","id":"001_a"}}"#)).unwrap();
        assert!(
            started.contains("03:04:05") && started.contains("001_a started"),
            "{started}"
        );
        let done = line(&format!(
            r#"{{{ts},"event":"node_completed","id":"001_a","primary":12.5,"improved":true}}"#
        ))
        .unwrap();
        assert!(
            done.contains("001_a completed: score=12.5 in 1.2s"),
            "{done}"
        );
        assert!(done.contains("new best"), "{done}");
        assert!(
            line(&format!(
                r#"{{{ts},"event":"spec_completed","id":"001_a"}}"#
            ))
            .is_none()
        );
        let failed = line(&format!(
            r#"{{{ts},"event":"node_failed","id":"002_b","kind":"nonzero_exit","message":"the job exited with status 3\nmore"}}"#
        ))
        .unwrap();
        assert!(
            failed.contains("002_b failed (nonzero_exit: the job exited with status 3)"),
            "{failed}"
        );
        // The engine's failure line is shown only when the workflow recorded none.
        assert!(
            line(&format!(
                r#"{{{ts},"event":"spec_failed","id":"002_b","error":"boom"}}"#
            ))
            .is_none()
        );
        let failed = line(&format!(
            r#"{{{ts},"event":"spec_failed","id":"003_c","error":"boom\nmore"}}"#
        ))
        .unwrap();
        assert!(failed.contains("003_c failed (boom)"), "{failed}");
        assert!(
            line(&format!(
                r#"{{{ts},"event":"spec_queued","id":"001_a","priority":1,"kind":"k"}}"#
            ))
            .is_none()
        );
        let started = line(&format!(
            r#"{{{ts},"event":"engine_started","pid":42,"resumed":true}}"#
        ))
        .unwrap();
        assert!(started.contains("engine resumed (pid 42)"), "{started}");
    }
}
