//! A transient full disk: the workdir is a small tmpfs, filled for three seconds while jobs
//! keep finishing. The workflow's writes (node files, `state.json`, `tree.json`) fail with
//! ENOSPC meanwhile; no experiment may be failed or counted against patience for it, nothing
//! written may be torn, and the run goes on once space is back.
//!
//! `runs/` is a second tmpfs mounted inside the workdir (a mount point, not a link): the
//! jobs' own output and the wrapper's `exit_code` live there, because a job that cannot write
//! its own output on a full disk does fail, and that is not what this case is about.
//!
//! Needs root to mount (CI runs as root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::reliability::harness::{Barrier, Release, check_invariants, run_to_end, search_config};
use crate::support::{Fixture, wait_until_async};

/// A tmpfs mounted for the test's life (lazily unmounted when dropped).
pub(super) struct Tmpfs(PathBuf);

impl Tmpfs {
    pub(super) fn mount(dir: &Path, size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "mounting a tmpfs needs root (CI runs the tests as root)"
        );
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs {} failed", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `dir/filler*` until a write fails with ENOSPC.
pub(super) fn fill(dir: &Path) -> u64 {
    let mut written = 0;
    let chunk = vec![0u8; 64 << 10];
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // The last partial pages.
    let mut small = std::fs::File::create(dir.join("filler2")).ok();
    if let Some(s) = small.as_mut() {
        while s.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    }
    let _ = f.sync_all();
    written
}

/// The workdir's filesystem full for three seconds in the middle of a 24-experiment search at
/// concurrency 4: no node fails, every experiment runs once, the run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_for_three_seconds_fails_no_experiment() {
    let fx = Fixture::new();
    let _wd_fs = Tmpfs::mount(&fx.wd, "8m");
    let _runs_fs = Tmpfs::mount(&fx.wd.join("runs"), "64m");
    let max = 24;
    let cfg = fx.config(search_config(&fx, 4, max as u64));
    fx.resolve(Some(cfg));
    let groups = Release::Groups {
        group: 4,
        patience: Duration::from_millis(50),
    };
    let barrier = Barrier::start(&fx, groups);
    let completed = |wd: &Path| {
        std::fs::read_dir(wd.join("engine/nodes"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_to_string(e.path().join("status.txt"))
                            .is_ok_and(|s| s.trim() == "completed")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    // Once 6 experiments are done, jobs are held at the barrier; with at least one waiting
    // the disk is filled, the waiting jobs are released (they end while it is full), and
    // three seconds later the space comes back.
    let window = async {
        let ready = wait_until_async(Duration::from_secs(60), || completed(&fx.wd) >= 6).await;
        assert!(ready, "6 experiments never completed: {:?}", fx.statuses());
        barrier.set(Release::Hold);
        let waiting = wait_until_async(Duration::from_secs(30), || !barrier.waiting().is_empty());
        assert!(waiting.await, "no job waited: {:?}", fx.statuses());
        let bytes = fill(&fx.wd);
        let ended = barrier.release_all().len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = std::fs::remove_file(fx.wd.join("filler"));
        let _ = std::fs::remove_file(fx.wd.join("filler2"));
        barrier.set(groups);
        (bytes, ended)
    };
    // Without the engine's back-off, a run whose every node waits for a retry may end while
    // the disk is still full, and then its final checkpoint fails: that run's end is not
    // judged here, only that the runs after it finish everything.
    let (first, (filled, ended_while_full)) = tokio::join!(fx.session(None).run(), window);
    eprintln!("enospc: first run {first:?}");
    assert!(filled > 0, "the disk was never filled");
    assert!(
        ended_while_full > 0,
        "no job ended while the disk was full: the case tested nothing"
    );
    // Nodes retried after the window continue from their phase (a resume finishes them if the
    // engine's back-off is not there to do it).
    run_to_end(&fx, max, 3).await;
    let tally = check_invariants(&fx, "ENOSPC for 3 s");
    assert_eq!(tally.completed, max, "{:?}", fx.statuses());
    assert_eq!(fx.state()["experiments_failed"], 0);
    for id in fx.node_ids() {
        assert!(
            !fx.node_dir(&id).join("failure.json").exists(),
            "{id} has a failure.json: {}",
            fx.failure(&id)
        );
    }
    eprintln!("enospc: filled {filled} bytes, {ended_while_full} jobs ended while full, {tally:?}");
}
