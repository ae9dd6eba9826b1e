//! `supervisor serve` in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver): the pages of a live run, a job finishing during the test, filtering,
//! sorting, the tree, an experiment's live log, and the control buttons. Screenshots of every
//! page go to `target/dashboard-screenshots/`.
//!
//! Ignored by default (`needs chromium`); CI runs them with `--include-ignored`.

use crate::serve_support;
use crate::support;

use serve_support::{Browser, Dashboard, gated_lab, http, open_gate, start_engine};
use support::{SeedDef, listed_ids};

/// The seeds of the live run: `a` (2), `zero` (fails), `b` (3), `c` (5), `d` (4), in that order.
const LIVE_SEEDS: &[SeedDef<'static>] = &[
    ("a", 2, 1.0),
    ("zero", 0, 2.0),
    ("b", 3, 3.0),
    ("c", 5, 4.0),
    ("d", 4, 5.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn the_pages_follow_a_live_run() {
    let lab = gated_lab();
    for v in [1, 2, 0] {
        open_gate(&lab, v);
    }
    let _engine = start_engine(&lab, "wd", LIVE_SEEDS);
    // Baseline, a and zero finish; b runs (its gate is closed); c and d wait.
    lab.wait_running("wd", "003_b", 2);
    let d = Dashboard::start(&lab.root, "wd", &[]);
    let b = Browser::start().await;

    // Overview: the right best, the chart with every finished experiment.
    b.open(&d.url).await;
    b.wait_js(
        "the best value",
        "document.getElementById('best-value')?.textContent === '2'",
    )
    .await;
    let best = b
        .js("return document.getElementById('best-value').textContent")
        .await;
    assert_eq!(best, "2");
    let text = b.js("return document.body.innerText").await.to_string();
    assert!(text.contains("001_a"), "{text}");
    assert!(text.contains("running"), "{text}");
    let points = b
        .js("return document.getElementById('progress').dataset.points")
        .await;
    assert_eq!(points, "3");
    b.screenshot("overview").await;

    // The table: a job finishing appears without a reload, and in the chart.
    b.open(&format!("{}/w/wd/table", d.base)).await;
    b.wait_js(
        "the table rows",
        "document.querySelectorAll('#nodes tbody tr').length === 6",
    )
    .await;
    b.js("window.__marker = 'same page'; return 1").await;
    let status_of_b = "document.querySelector('#nodes tr[data-id=\"003_b\"]')?.className";
    assert!(
        b.js(&format!("return {status_of_b}"))
            .await
            .to_string()
            .contains("st-running")
    );
    b.screenshot("table-before").await;
    open_gate(&lab, 3);
    b.wait_js(
        "003_b completed in the table",
        &format!("({status_of_b} || '').includes('st-completed')"),
    )
    .await;
    assert_eq!(
        b.js("return window.__marker").await,
        "same page",
        "the page was reloaded"
    );
    let row = b
        .js("return document.querySelector('#nodes tr[data-id=\"003_b\"]').innerText")
        .await
        .to_string();
    assert!(row.contains('3'), "{row}");
    // Back to the overview by its tab (no reload): the chart has the new point, the best is 3.
    b.js("document.querySelector('#tabs a[href=\"/w/wd\"]').click(); return 1")
        .await;
    b.wait_js(
        "the new best in the overview",
        "document.getElementById('best-value')?.textContent === '3'",
    )
    .await;
    b.wait_js(
        "003_b in the chart",
        "window.__ar.progress && window.__ar.progress.points.some(p => p.id === '003_b' && p.improved)",
    )
    .await;
    assert_eq!(b.js("return window.__marker").await, "same page");
    b.wait_js(
        "the chart redrawn",
        "document.getElementById('progress').dataset.points === '4'",
    )
    .await;
    b.screenshot("overview-after-a-job-finished").await;

    // Filtering and sorting.
    b.open(&format!("{}/w/wd/table", d.base)).await;
    let rows =
        "Array.from(document.querySelectorAll('#nodes tbody tr')).map(r => r.dataset.id).join(',')";
    b.wait_js("all rows", &format!("{rows}.split(',').length === 6"))
        .await;
    b.js("document.querySelector('#status-filter [data-status=\"failed\"]').click(); return 1")
        .await;
    b.wait_js("only the failure", &format!("{rows} === '002_zero'"))
        .await;
    b.screenshot("table-failed-only").await;
    b.js("document.querySelector('#status-filter [data-status=\"failed\"]').click(); return 1")
        .await;
    b.wait_js("all rows again", &format!("{rows}.split(',').length === 6"))
        .await;
    let input = b
        .client
        .find(fantoccini::Locator::Css("#filter-text"))
        .await
        .expect("filter box");
    input.send_keys("zero").await.expect("typing");
    b.wait_js("the text filter", &format!("{rows} === '002_zero'"))
        .await;
    assert!(
        b.js("return location.search")
            .await
            .to_string()
            .contains("q=zero"),
        "the filter is in the address"
    );
    input.clear().await.expect("clearing");
    b.js("const i = document.getElementById('filter-text'); i.dispatchEvent(new Event('input')); return 1")
        .await;
    b.wait_js("all rows again", &format!("{rows}.split(',').length === 6"))
        .await;
    // A parameter range.
    b.js("const i = document.querySelector('input[name=\"min.v\"]'); i.value = '3'; i.dispatchEvent(new Event('change')); return 1")
        .await;
    b.wait_js(
        "the range filter",
        &format!("{rows} === '003_b,004_c,005_d'"),
    )
    .await;
    b.js("const i = document.querySelector('input[name=\"min.v\"]'); i.value = ''; i.dispatchEvent(new Event('change')); return 1")
        .await;
    // Sort by score: ascending, then descending with a second click.
    let head = "document.querySelector('#nodes th[data-sort=\"value\"]')";
    b.wait_js("all rows again", &format!("{rows}.split(',').length === 6"))
        .await;
    b.js(&format!("{head}.click(); return 1")).await;
    b.wait_js(
        "ascending by score",
        &format!("{rows}.startsWith('000_baseline,001_a,003_b')"),
    )
    .await;
    b.js(&format!("{head}.click(); return 1")).await;
    b.wait_js(
        "descending by score",
        &format!("{rows}.startsWith('003_b,001_a,000_baseline')"),
    )
    .await;
    b.screenshot("table-sorted").await;

    // The tree: every node drawn, coloured by status; a click opens the node's page.
    b.open(&format!("{}/w/wd/tree", d.base)).await;
    b.wait_js(
        "the tree",
        "document.querySelectorAll('#tree g.node').length === 6",
    )
    .await;
    let fills = b
        .js("return Array.from(document.querySelectorAll('#tree g.node')).map(g => g.dataset.id + '=' + g.querySelector('rect:not([fill=none])').getAttribute('fill')).join(' ')")
        .await
        .to_string();
    assert!(fills.contains("002_zero=#d62728"), "failed is red: {fills}");
    assert!(
        fills.contains("003_b=#2ca02c"),
        "improved is green: {fills}"
    );
    assert!(fills.contains("005_d=#ffffff"), "queued is white: {fills}");
    assert!(fills.contains("004_c=#1f77b4"), "running is blue: {fills}");
    let best = b
        .js("return document.querySelector('#tree g.node.best').dataset.id")
        .await;
    assert_eq!(best, "003_b");
    b.screenshot("tree").await;
    let node = b
        .client
        .find(fantoccini::Locator::Css("#tree g.node[data-id=\"004_c\"]"))
        .await
        .expect("node 004_c");
    node.click().await.expect("click a node");

    // The running experiment's page: its log tail grows live.
    b.wait_js(
        "the node page",
        "location.pathname === '/w/wd/node/004_c' && document.querySelector('main[data-ready]')",
    )
    .await;
    b.wait_js(
        "the log tail",
        "(document.getElementById('log-stdout')?.textContent || '').includes('tick')",
    )
    .await;
    let ticks = "(document.getElementById('log-stdout').textContent.match(/tick/g) || []).length";
    let before = b.js(&format!("return {ticks}")).await.as_u64().unwrap();
    b.wait_js("more ticks", &format!("{ticks} > {before}"))
        .await;
    let text = b.js("return document.body.innerText").await.to_string();
    assert!(text.contains("hypothesis"), "{text}");
    assert!(text.contains("job.sh 5"), "the command: {text}");
    b.screenshot("node-running").await;
    open_gate(&lab, 5);
    b.wait_js(
        "its result",
        "(document.getElementById('node-value')?.textContent || '').includes('score = 5')",
    )
    .await;
    b.wait_js(
        "the end of its log",
        "document.getElementById('log-stdout').textContent.includes('METRIC score=5')",
    )
    .await;
    b.screenshot("node-finished").await;
    // A failed experiment's page.
    b.open(&format!("{}/w/wd/node/002_zero", d.base)).await;
    b.wait_js(
        "the failure",
        "document.body.innerText.includes('nonzero_exit')",
    )
    .await;
    b.wait_js(
        "its stderr",
        "(document.getElementById('log-stderr')?.textContent || '').includes('no score for 0')",
    )
    .await;
    b.screenshot("node-failed").await;

    let errors = b.js("return window.__ar.errors").await;
    assert_eq!(errors, serde_json::json!([]), "script errors in the page");
    b.close().await;
    lab.open_gate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn control_buttons_only_with_allow_control() {
    let lab = gated_lab();
    let _engine = start_engine(&lab, "wd", support::SEEDS);
    lab.wait_running("wd", "000_baseline", 3);
    let b = Browser::start().await;

    // Read-only: no buttons, and the endpoint refuses even a request made from the page.
    let d = Dashboard::start(&lab.root, "wd", &[]);
    b.open(&d.url).await;
    b.wait_js(
        "the queue",
        "document.querySelectorAll('#queue tr').length === 3",
    )
    .await;
    let buttons = b
        .js("return document.querySelectorAll('#queue button, #stop-button').length")
        .await;
    assert_eq!(buttons, 0);
    let status = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/w/wd/queue/bump', {method: 'POST', headers: {'content-type': 'application/json'},
               body: JSON.stringify({id: '003_c', priority: -50})}).then(r => done(r.status));",
            Vec::new(),
        )
        .await
        .expect("fetch from the page");
    assert_eq!(status, 403);
    assert_eq!(
        listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout),
        ["001_a", "002_b", "003_c"]
    );
    b.screenshot("overview-read-only").await;
    drop(d);

    // With --allow-control and the URL's token: "Run next" moves 003_c to the front.
    let d = Dashboard::start(&lab.root, "wd", &["--allow-control"]);
    assert!(d.url.contains("?token="));
    b.open(&d.url).await;
    b.wait_js(
        "the buttons",
        "document.querySelectorAll('#queue tr[data-id=\"003_c\"] button.bump').length === 1",
    )
    .await;
    assert_eq!(
        b.js("return location.search").await,
        "",
        "the token is taken out of the address"
    );
    b.screenshot("overview-control").await;
    b.js("document.querySelector('#queue tr[data-id=\"003_c\"] button.bump').click(); return 1")
        .await;
    b.wait_js(
        "the new queue order on the page",
        "Array.from(document.querySelectorAll('#queue tr')).map(r => r.dataset.id).join(',') === '003_c,001_a,002_b'",
    )
    .await;
    assert_eq!(
        listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout),
        ["003_c", "001_a", "002_b"]
    );
    let flash = b
        .js("return document.querySelector('.flash').textContent")
        .await
        .to_string();
    assert!(flash.contains("003_c"), "{flash}");
    b.screenshot("overview-after-bump").await;

    // The same page opened without the token shows no buttons and says why.
    b.open(&format!("{}/w/wd", d.base)).await;
    // The cookie from the first visit still authorizes this browser; a fresh request without it
    // is refused.
    let c = http();
    let r = c
        .post(format!("{}/api/w/wd/queue/drop", d.base))
        .json(&serde_json::json!({"id": "001_a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    b.close().await;
    lab.open_gate();
}

/// The job of the search run: a throughput that grows with workers and has a best chunk size;
/// chunks above 3000 run out of memory.
const SEARCH_JOB: &str = r#"w=$1; c=$2
echo "running with workers=$w chunk=$c"
if [ "$c" -gt 3000 ]; then echo "chunk $c too large: out of memory" >&2; exit 3; fi
t=$(awk -v w=$w -v c=$c 'BEGIN{ printf "%.3f", 100*log(w+1)*log(c)/(1+(c/1500)^2) + (w*7 % 5) }')
echo "METRIC throughput=$t"
echo "METRIC latency_ms=$(awk -v t=$t 'BEGIN{printf "%.3f", 10000/t}')"
echo "METRIC mem_mb=$(( w * 40 + c / 8 ))"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn a_search_run_on_every_page() {
    let lab = support::Lab::new();
    lab.write("bench.sh", SEARCH_JOB);
    let cfg = serde_json::json!({
        "objective": {"metric": "throughput", "direction": "maximize", "min_improvement": 0.01},
        "job": {"command": "sh bench.sh {workers} {chunk}", "cwd": lab.root, "timeout_s": 60},
        "search_space": {"workers": [1, 2, 4, 8, 16],
                         "chunk": {"min": 16, "max": 4096, "scale": "log", "type": "int"}},
        "baseline": {"workers": 1, "chunk": 64},
        "seeds": [{"name": "big_chunks", "params": {"workers": 2, "chunk": 1024}, "priority": -10},
                  {"name": "huge_chunks", "params": {"workers": 2, "chunk": 4000}, "priority": -5}],
        "planner": {"kind": "search"},
        "limits": {"max_experiments": 24, "patience": 12, "max_concurrency": 2}
    });
    let path = lab.write("cfg.json", &cfg.to_string());
    lab.sup(&[
        "run",
        "wd",
        "--config",
        path.to_str().unwrap(),
        "--no-render",
    ])
    .ok();
    let d = Dashboard::start(&lab.root, "wd", &[]);
    let c = http();
    let o = serve_support::get_json(&c, &format!("{}/api/w/wd/overview", d.base)).await;
    let total = o["counts"]["total"].as_u64().unwrap();
    assert!(total >= 10, "{o:#}");
    let best_id = o["best"]["id"].as_str().unwrap().to_string();
    let b = Browser::start().await;

    b.open(&d.url).await;
    b.wait_js(
        "the chart",
        "Number(document.getElementById('progress')?.dataset.points) > 0",
    )
    .await;
    let shown = b
        .js("return document.getElementById('best-value').textContent")
        .await;
    let value = o["best"]["value"].as_f64().unwrap();
    let shown: f64 = shown.as_str().unwrap().parse().unwrap();
    assert!(
        (shown - value).abs() <= 1e-5 * value.abs(),
        "{shown} vs {value}"
    );
    b.screenshot("search-overview").await;

    b.open(&format!("{}/w/wd/table?sort=value&desc=1", d.base))
        .await;
    let first = b
        .js("return document.querySelector('#nodes tbody tr').dataset.id")
        .await;
    // The highest value, which is not always the best: only a counted improvement (by
    // `min_improvement`, confirmed when within the noise) becomes the best (docs/noise.md).
    let mut top: Option<(f64, String)> = None;
    for e in std::fs::read_dir(lab.path("wd/engine/nodes")).unwrap() {
        let e = e.unwrap();
        let r: serde_json::Value = std::fs::read(e.path().join("result.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(v) = r["primary"].as_f64()
            && top.as_ref().is_none_or(|t| v > t.0)
        {
            top = Some((v, e.file_name().to_string_lossy().into_owned()));
        }
    }
    assert_eq!(
        first,
        serde_json::json!(top.unwrap().1),
        "sorted by throughput, the highest first"
    );
    b.screenshot("search-table").await;

    b.open(&format!("{}/w/wd/tree", d.base)).await;
    let nodes = b
        .js("return document.querySelectorAll('#tree g.node').length")
        .await;
    assert_eq!(nodes.as_u64(), Some(total));
    let edges = b
        .js("return document.querySelectorAll('#tree .edges path').length")
        .await;
    assert_eq!(
        edges.as_u64(),
        Some(total - 3),
        "every node but the three roots has an edge"
    );
    let fits = b
        .js("return document.querySelector('#tree g.viewport').getAttribute('transform')")
        .await;
    b.js("document.querySelector('.card button[title=\"zoom in\"]').click(); return 1")
        .await;
    let zoomed = b
        .js("return document.querySelector('#tree g.viewport').getAttribute('transform')")
        .await;
    assert_ne!(fits, zoomed, "the zoom button zooms");
    b.js("document.querySelector('.card button[title=\"show all\"]').click(); return 1")
        .await;
    b.screenshot("search-tree").await;

    b.open(&format!("{}/w/wd/node/{best_id}", d.base)).await;
    b.wait_js(
        "its log",
        "(document.getElementById('log-stdout')?.textContent || '').includes('METRIC throughput')",
    )
    .await;
    b.screenshot("search-node").await;
    b.open(&format!("{}/w/wd/node/002_huge_chunks", d.base))
        .await;
    b.wait_js(
        "the failure",
        "document.body.innerText.includes('out of memory')",
    )
    .await;
    let errors = b.js("return window.__ar.errors").await;
    assert_eq!(errors, serde_json::json!([]));
    b.close().await;
}
