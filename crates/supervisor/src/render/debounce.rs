//! [`RenderDebouncer`]: re-renders the views during a run, off the scheduling path.
//!
//! Callers (the engine's outcome handler, the interactive session) call
//! [`RenderDebouncer::request`] as often as they like; it only sets a flag and wakes a background
//! thread, never blocks on rendering. The thread renders at most once per interval, never two
//! renders at a time, and coalesces every request made meanwhile into the next render.
//! [`RenderDebouncer::flush`] (or [`RenderDebouncer::finish`] through a shared reference, e.g.
//! an `Arc`) renders once more and joins the thread: use it at the end of a run.
//!
//! Time comes from a [`Clock`]: the [`SystemClock`] in production, a [`ManualClock`] in tests,
//! which only moves when told to, so the interval can be checked without wall-clock windows
//! ([`RenderDebouncer::wait_idle`] says when the thread has settled).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::load::NodeCache;
use super::{RenderReport, render_all_cached};

/// A source of time for the debouncer.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
    /// How long the render thread may block before it looks at the time again, when the next
    /// render is `remaining` away: `Some(remaining)` for a clock that moves by itself, `None`
    /// for one that wakes the thread through [`Clock::on_advance`] instead.
    fn timeout(&self, remaining: Duration) -> Option<Duration>;
    /// Registers `wake`, to be called after the time moved (a clock that moves by itself never
    /// calls it).
    fn on_advance(&self, wake: Box<dyn Fn() + Send + Sync>);
}

/// The real, monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    fn timeout(&self, remaining: Duration) -> Option<Duration> {
        Some(remaining)
    }
    fn on_advance(&self, _wake: Box<dyn Fn() + Send + Sync>) {}
}

/// A clock that stands still until [`ManualClock::advance`] moves it (for tests).
#[derive(Default)]
pub struct ManualClock {
    now: Mutex<Duration>,
    wakers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the time forward by `by` and wakes whoever waits on it.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += by;
        for wake in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn timeout(&self, _remaining: Duration) -> Option<Duration> {
        None
    }
    fn on_advance(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(wake);
    }
}

/// The default minimum time between two renders.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    pending: bool,
    shutdown: bool,
    /// The thread is blocked (waiting for a request or for the interval) and has handled
    /// everything that happened before it blocked. Cleared by whatever wakes it.
    idle: bool,
    renders: u64,
    last: Option<Result<RenderReport, String>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the render thread.
    wake: Condvar,
    /// Tells [`RenderDebouncer::wait_idle`] that the thread blocked.
    settled: Condvar,
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
    /// A debouncer that runs [`render_all`](super::render_all) on `workdir` at most once per `interval`
    /// (failures are logged with `tracing` and kept in [`RenderDebouncer::last_result`]).
    pub fn new(workdir: impl Into<PathBuf>, interval: Duration) -> Self {
        let workdir = workdir.into();
        let mut cache = NodeCache::default();
        Self::with_renderer(
            interval,
            Box::new(move || match render_all_cached(&workdir, &mut cache) {
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

    /// A debouncer that calls `render` (instead of [`render_all`](super::render_all)) at most once per `interval`.
    pub fn with_renderer(interval: Duration, render: RenderFn) -> Self {
        Self::with_clock(interval, render, Arc::new(SystemClock::default()))
    }

    /// A debouncer that calls `render` at most once per `interval` of `clock`'s time.
    ///
    /// If the thread cannot be started (the system is out of threads), a warning is logged and
    /// nothing is rendered: requests are ignored and [`RenderDebouncer::finish`] returns `None`.
    pub fn with_clock(interval: Duration, render: RenderFn, clock: Arc<dyn Clock>) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            settled: Condvar::new(),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        clock.on_advance(Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                // Under the lock, so a thread between its time check and its wait is not missed.
                shared.lock().idle = false;
                shared.wake.notify_all();
            }
        }));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("render-debouncer".into())
            .spawn(move || {
                run(&thread_shared, interval, render, clock);
                // Gone for good: nothing more will happen, so it is as settled as it gets.
                thread_shared.lock().idle = true;
                thread_shared.settled.notify_all();
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(
                    "cannot start the render thread ({e}); views are not re-rendered during the run"
                );
                None
            }
        };
        RenderDebouncer {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Blocks until the render thread has handled every request and clock change made so far
    /// and is waiting (for a request or for the interval), or until `timeout` passes (real
    /// time). Returns whether it settled. Meant for tests and for callers that want to read
    /// the views just rendered.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while !st.idle {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .settled
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }

    /// Asks for a render soon. Returns at once; requests made while a render is pending or in
    /// flight are coalesced into one. Ignored after [`RenderDebouncer::finish`].
    pub fn request(&self) {
        let mut st = self.shared.lock();
        if st.shutdown {
            return;
        }
        st.pending = true;
        st.idle = false;
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

impl std::fmt::Debug for RenderDebouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("RenderDebouncer")
            .field("pending", &st.pending)
            .field("renders", &st.renders)
            .finish_non_exhaustive()
    }
}

/// Blocks the render thread on `wake` (marking it idle for [`RenderDebouncer::wait_idle`]),
/// for at most `timeout` when given.
fn block<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, State> {
    st.idle = true;
    shared.settled.notify_all();
    let mut st = match timeout {
        Some(d) => shared
            .wake
            .wait_timeout(st, d)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0),
        None => shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
    };
    st.idle = false;
    st
}

fn run(shared: &Shared, interval: Duration, mut render: RenderFn, clock: Arc<dyn Clock>) {
    let mut last_start: Option<Duration> = None;
    loop {
        {
            let mut st = shared.lock();
            // Wait for a request.
            while !st.pending && !st.shutdown {
                st = block(shared, st, None);
            }
            if !st.pending {
                return; // shutdown without a final render
            }
            // Respect the interval, unless shutting down (the final render goes at once).
            while !st.shutdown {
                let Some(t) = last_start else { break };
                let due = t + interval;
                let now = clock.now();
                if now >= due {
                    break;
                }
                st = block(shared, st, clock.timeout(due - now));
            }
            if !st.pending {
                return; // dropped while waiting
            }
            st.pending = false;
        }
        last_start = Some(clock.now());
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
