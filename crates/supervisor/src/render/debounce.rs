//! [`RenderDebouncer`]: re-renders the views during a run, off the scheduling path.
//!
//! Callers (the engine's outcome handler, the interactive session) call
//! [`RenderDebouncer::request`] as often as they like; it only sets a flag and wakes a background
//! thread, never blocks on rendering. The thread renders at most once per interval, never two
//! renders at a time, and coalesces every request made meanwhile into the next render.
//! [`RenderDebouncer::flush`] (or [`RenderDebouncer::finish`] through a shared reference, e.g.
//! an `Arc`) renders once more and joins the thread: use it at the end of a run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{RenderReport, render_all};

/// The default minimum time between two renders.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    pending: bool,
    shutdown: bool,
    renders: u64,
    last: Option<Result<RenderReport, String>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A renderer run by [`RenderDebouncer`]'s thread.
pub type RenderFn = Box<dyn FnMut() -> Result<RenderReport, String> + Send + 'static>;

/// Owns a background thread that re-renders the views on request, debounced.
///
/// Dropping it without [`RenderDebouncer::flush`] stops the thread after the render in flight
/// (if any) without a final render, and does not wait for it.
pub struct RenderDebouncer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RenderDebouncer {
    /// A debouncer that runs [`render_all`] on `workdir` at most once per `interval`
    /// (failures are logged with `tracing` and kept in [`RenderDebouncer::last_result`]).
    pub fn new(workdir: impl Into<PathBuf>, interval: Duration) -> Self {
        let workdir = workdir.into();
        Self::with_renderer(
            interval,
            Box::new(move || match render_all(&workdir) {
                Ok(report) => {
                    for w in &report.warnings {
                        tracing::debug!("render: {w}");
                    }
                    Ok(report)
                }
                Err(e) => {
                    tracing::warn!("rendering the views of {} failed: {e}", workdir.display());
                    Err(e.to_string())
                }
            }),
        )
    }

    /// A debouncer that calls `render` (instead of [`render_all`]) at most once per `interval`.
    pub fn with_renderer(interval: Duration, render: RenderFn) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("render-debouncer".into())
            .spawn(move || run(thread_shared, interval, render))
            .expect("spawning the render thread");
        RenderDebouncer {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Asks for a render soon. Returns at once; requests made while a render is pending or in
    /// flight are coalesced into one. Ignored after [`RenderDebouncer::finish`].
    pub fn request(&self) {
        let mut st = self.shared.lock();
        if st.shutdown {
            return;
        }
        st.pending = true;
        drop(st);
        self.shared.wake.notify_one();
    }

    /// How many renders have finished so far.
    pub fn renders(&self) -> u64 {
        self.shared.lock().renders
    }

    /// The outcome of the last finished render.
    pub fn last_result(&self) -> Option<Result<RenderReport, String>> {
        self.shared.lock().last.clone()
    }

    /// Renders once more (after the render in flight, if any, without waiting for the interval)
    /// and joins the thread. Returns the outcome of that final render.
    pub fn flush(self) -> Option<Result<RenderReport, String>> {
        self.finish()
    }

    /// Like [`RenderDebouncer::flush`], through a shared reference (for a debouncer in an `Arc`
    /// that other tasks may still hold). The first call renders once more and joins the
    /// thread; later calls only return the last outcome.
    pub fn finish(&self) -> Option<Result<RenderReport, String>> {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = handle {
            {
                let mut st = self.shared.lock();
                st.pending = true;
                st.shutdown = true;
            }
            self.shared.wake.notify_one();
            let _ = t.join();
        }
        self.shared.lock().last.clone()
    }
}

impl Drop for RenderDebouncer {
    fn drop(&mut self) {
        let running = self.thread.get_mut().map(|t| t.is_some()).unwrap_or(false);
        if running {
            let mut st = self.shared.lock();
            st.shutdown = true;
            st.pending = false;
            drop(st);
            self.shared.wake.notify_one();
        }
    }
}

fn run(shared: Arc<Shared>, interval: Duration, mut render: RenderFn) {
    let mut last_start: Option<Instant> = None;
    loop {
        {
            let mut st = shared.lock();
            // Wait for a request.
            while !st.pending && !st.shutdown {
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if !st.pending {
                return; // shutdown without a final render
            }
            // Respect the interval, unless shutting down (the final render goes at once).
            while !st.shutdown {
                let Some(t) = last_start else { break };
                let due = t + interval;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                st = shared
                    .wake
                    .wait_timeout(st, due - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            if !st.pending {
                return; // dropped while waiting
            }
            st.pending = false;
        }
        last_start = Some(Instant::now());
        let outcome = catch_unwind(AssertUnwindSafe(&mut render))
            .unwrap_or_else(|_| Err("the renderer panicked".to_owned()));
        let mut st = shared.lock();
        st.renders += 1;
        st.last = Some(outcome);
        if st.shutdown && !st.pending {
            return;
        }
    }
}
