//! `adapters-test-child WORKDIR`: the engine of a configured workdir in a child process, as
//! `supervisor run` runs it (signals handled, 5 s grace), for the integration tests that kill
//! it (`Fixture::spawn_engine`). Exit 0 when the run ended, 1 when it could not run; the
//! report goes to stderr.

use std::path::PathBuf;
use std::time::Duration;

use autoresearch_adapters::session::{Session, SessionOptions, resolve_config};

fn main() {
    let Some(wd) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: adapters-test-child WORKDIR");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(async {
        let config = match resolve_config(&wd, None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("child engine: {e}");
                return 1;
            }
        };
        let options = SessionOptions {
            grace_period: Duration::from_secs(5),
            handle_signals: true,
        };
        let session = match Session::open(&wd, config, &options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("child engine: {e}");
                return 1;
            }
        };
        match session.run().await {
            Ok(report) => {
                eprintln!("child engine: {:?} {:?}", report.status, report.stop_reason);
                0
            }
            Err(e) => {
                eprintln!("child engine failed: {e}");
                1
            }
        }
    });
    std::process::exit(code);
}
