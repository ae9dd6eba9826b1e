//! `supervisor serve` over plain HTTP: the API on workdirs made by real runs, paging,
//! filtering and sorting on the server, the live feed, torn and appearing files, the access
//! rules (read-only, `--allow-control` with its token and origin check, the token on a
//! non-loopback address) and bad arguments. The browser tests are in `serve_browser.rs`.

use crate::serve_support;
use crate::support;

use serde_json::Value;
use serve_support::{
    Dashboard, Sse, eventually, gated_lab, get, get_json, http, open_gate, start_engine,
};
use support::{Lab, SEEDS, assert_same, listed_ids, snapshot};

fn ids(page: &Value) -> Vec<String> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_a_finished_run_and_writes_nothing() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let wd = lab.path("wd");
    let before = snapshot(&wd);
    let d = Dashboard::start(&lab.root, "wd", &[]);
    assert!(
        d.token.is_none(),
        "read-only on loopback needs no token: {}",
        d.url
    );
    assert!(d.banner.contains("read-only"), "{}", d.banner);
    let c = http();
    let api = format!("{}/api/w/wd", d.base);

    let info = get_json(&c, &format!("{}/api/info", d.base)).await;
    assert_eq!(info["mode"], "single");
    assert_eq!(info["single"], "wd");
    assert_eq!(info["control"]["enabled"], false);

    let o = get_json(&c, &format!("{api}/overview")).await;
    assert_eq!(o["status"], "stopped", "{o:#}");
    assert_eq!(o["best"]["id"], "003_c");
    assert_eq!(o["best"]["value"], 4.0);
    assert_eq!(o["baseline"]["value"], 1.0);
    assert_eq!(o["change_pct"], 300.0);
    assert_eq!(o["counts"]["total"], 4);
    assert_eq!(o["counts"]["completed"], 4);
    assert_eq!(o["metric"], "score");
    assert_eq!(o["other_metrics"], serde_json::json!(["other"]));
    assert!(o["stop_reason"].is_string(), "{o:#}");

    let p = get_json(&c, &format!("{api}/progress")).await;
    let points = p["points"].as_array().unwrap();
    let order: Vec<&str> = points.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(order, ["000_baseline", "001_a", "002_b", "003_c"]);
    assert_eq!(points[3]["best"], 4.0);
    assert_eq!(p["others"][0][0], "other");
    assert_eq!(p["others"][0][1][3], 40.0);

    let t = get_json(&c, &format!("{api}/tree")).await;
    assert_eq!(t["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(
        t["nodes"][t["best"].as_u64().unwrap() as usize]["id"],
        "003_c"
    );

    let n = get_json(&c, &format!("{api}/nodes/003_c")).await;
    assert_eq!(n["params"]["v"], 4);
    assert_eq!(n["result"]["metrics"]["score"], 4.0);
    assert_eq!(n["best"], true);
    assert_eq!(n["job"]["attempt"], 1);
    assert!(n["command"].as_str().unwrap().contains("job.sh"), "{n:#}");
    assert!(n["commits"].is_null(), "no code change, no diff: {n:#}");
    let (status, body) = get(&c, &format!("{api}/nodes/009_nope")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no node"), "{body}");

    // The log tail of a finished job, then nothing new after its offset.
    let log = get_json(&c, &format!("{api}/nodes/003_c/log/stdout")).await;
    assert_eq!(log["state"], "ok");
    assert_eq!(log["reset"], true);
    assert!(
        log["text"].as_str().unwrap().contains("METRIC score=4"),
        "{log}"
    );
    let offset = log["offset"].as_u64().unwrap();
    let again = get_json(&c, &format!("{api}/nodes/003_c/log/stdout?offset={offset}")).await;
    assert_eq!(again["text"], "");
    assert_eq!(again["offset"], offset);
    let (status, _) = get(&c, &format!("{api}/nodes/003_c/log/other")).await;
    assert_eq!(status, 404);

    let (status, csv) = get(&c, &format!("{api}/csv")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(
        lines[0].starts_with("node_id,name,parent_id,status,score,other,duration_s,improved,v,"),
        "{csv}"
    );

    // Pages and assets.
    for path in [
        "/",
        "/w/wd",
        "/w/wd/table",
        "/w/wd/node/003_c",
        "/assets/app.js",
        "/assets/dejavu-sans.ttf",
    ] {
        let (status, _) = get(&c, &format!("{}{path}", d.base)).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _) = get(&c, &format!("{}/api/w/other/overview", d.base)).await;
    assert_eq!(status, 404);

    drop(d);
    assert_same(&before, &snapshot(&wd), "serving the dashboard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_pages_filters_and_sorts_on_the_server() {
    let lab = Lab::new();
    lab.open_gate();
    // Baseline v=1 and one seed per other value; v=0 fails.
    let seeds: Vec<(&str, i64, f64)> = vec![
        ("s0", 0, 1.0),
        ("s2", 2, 2.0),
        ("s3", 3, 3.0),
        ("s4", 4, 4.0),
        ("s5", 5, 5.0),
        ("s6", 6, 6.0),
        ("s7", 7, 7.0),
        ("s8", 8, 8.0),
        ("s9", 9, 9.0),
    ];
    let cfg = serde_json::to_string(&lab.config(&seeds, 20)).unwrap();
    let cfg = lab.write("cfg.json", &cfg);
    lab.sup(&[
        "run",
        "wd",
        "--config",
        cfg.to_str().unwrap(),
        "--no-render",
    ]);
    let d = Dashboard::start(&lab.root, "wd", &[]);
    let c = http();
    let api = format!("{}/api/w/wd", d.base);

    // Pages of 3 cover every node once, in creation order.
    let mut seen = Vec::new();
    for offset in [0, 3, 6, 9] {
        let p = get_json(&c, &format!("{api}/nodes?limit=3&offset={offset}")).await;
        assert_eq!(p["total"], 10);
        assert_eq!(p["matched"], 10);
        assert!(p["rows"].as_array().unwrap().len() <= 3);
        seen.extend(ids(&p));
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "creation order");
    assert_eq!(seen[0], "000_baseline");

    // Sorting by the primary metric, both ways; the failure (no value) goes last both times.
    let p = get_json(&c, &format!("{api}/nodes?sort=value&desc=1")).await;
    let rows = ids(&p);
    assert_eq!(rows[0], "009_s9");
    assert_eq!(rows[9], "001_s0");
    let p = get_json(&c, &format!("{api}/nodes?sort=value")).await;
    assert_eq!(ids(&p)[0], "000_baseline");
    assert_eq!(ids(&p)[9], "001_s0");
    let p = get_json(&c, &format!("{api}/nodes?sort=p:v&desc=1&limit=2")).await;
    assert_eq!(ids(&p), ["009_s9", "008_s8"]);

    // Filters: status, text, parameter range, and all of them in the CSV.
    let p = get_json(&c, &format!("{api}/nodes?status=failed")).await;
    assert_eq!(ids(&p), ["001_s0"]);
    assert!(
        p["rows"][0]["failure"]
            .as_str()
            .unwrap()
            .starts_with("nonzero_exit"),
        "{p:#}"
    );
    let p = get_json(&c, &format!("{api}/nodes?q=S7")).await;
    assert_eq!(ids(&p), ["007_s7"]);
    let p = get_json(&c, &format!("{api}/nodes?min.v=3&max.v=5")).await;
    assert_eq!(ids(&p), ["003_s3", "004_s4", "005_s5"]);
    assert_eq!(p["matched"], 3);
    let p = get_json(&c, &format!("{api}/nodes?status=completed&min.v=8")).await;
    assert_eq!(ids(&p), ["008_s8", "009_s9"]);
    let (_, csv) = get(&c, &format!("{api}/csv?min.v=3&max.v=5&sort=value&desc=1")).await;
    let first: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(first, ["005_s5", "004_s4", "003_s3"]);

    // Bad requests name the field.
    for (q, says) in [
        ("limit=0", "limit: expected 1 to 1000"),
        ("status=done", "status: expected"),
        ("min.v=lots", "min.v: expected a number"),
    ] {
        let (status, body) = get(&c, &format!("{api}/nodes?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_tells_of_a_finished_job() {
    let lab = serve_support::gated_lab();
    let mut engine = start_engine(&lab, "wd", &[("a", 2, 1.0), ("b", 3, 2.0)]);
    lab.wait_running("wd", "000_baseline", 2);
    let d = Dashboard::start(&lab.root, "wd", &[]);
    let c = http();
    let api = format!("{}/api/w/wd", d.base);

    let mut feed = Sse::open(&c, &format!("{api}/events")).await;
    let (name, data) = feed.next().await;
    assert_eq!(name, "update");
    let first: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(first["status"], "running");
    let v0 = first["version"].as_u64().unwrap();

    // The running job's log grows while it runs: appended lines come after the offset.
    let first = get_json(&c, &format!("{api}/nodes/000_baseline/log/stdout")).await;
    let offset = first["offset"].as_u64().unwrap_or(0);
    let url = format!("{api}/nodes/000_baseline/log/stdout?offset={offset}");
    let more = eventually("more lines of the running job", || async {
        let next = get_json(&c, &url).await;
        match next["text"].as_str() {
            Some(t) if t.contains("tick") => Ok(next),
            _ => Err(next.to_string()),
        }
    })
    .await;
    assert_eq!(more["reset"], false, "{more}");
    assert!(more["offset"].as_u64().unwrap() > offset);

    open_gate(&lab, 1);
    // Updates arrive until one names the baseline's completion.
    let mut seen = Vec::new();
    loop {
        let (name, data) = feed.next().await;
        assert_eq!(name, "update");
        let u: Value = serde_json::from_str(&data).unwrap();
        assert!(u["version"].as_u64().unwrap() > v0);
        let done = u["events"].as_array().unwrap().iter().any(|e| {
            e["id"] == "000_baseline" && e["event"].as_str().unwrap().ends_with("completed")
        });
        seen.push(u);
        if done {
            break;
        }
    }
    let p = get_json(&c, &format!("{api}/nodes?status=completed")).await;
    assert_eq!(ids(&p), ["000_baseline"]);
    let o = get_json(&c, &format!("{api}/overview")).await;
    assert_eq!(o["best"]["id"], "000_baseline");
    assert_eq!(o["running"][0]["id"], "001_a", "{o:#}");

    lab.open_gate();
    engine.expect_exit(0);
    eventually("the dashboard to see the engine stop", || async {
        let o = get_json(&c, &format!("{api}/overview")).await;
        if o["status"] == "stopped" && o["counts"]["completed"] == 3 {
            Ok(())
        } else {
            Err(format!("{} {}", o["status"], o["counts"]))
        }
    })
    .await;
}

/// Copies a folder tree (files only; the copy of a workdir a user might make).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&p, &dest);
        } else if e.file_type().unwrap().is_file() {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_lines_and_appearing_files_are_read_as_they_come() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    copy_tree(&lab.path("wd"), &lab.path("copy"));
    let copy = lab.path("copy");
    // A copy taken while the engine wrote: a torn event line, a torn result, a lost status.
    let events = copy.join("engine/events.jsonl");
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("{\"ts\":\"2026-12-01T00:00:00Z\",\"event\":\"warn");
    std::fs::write(&events, &text).unwrap();
    let result = copy.join("engine/nodes/002_b/result.json");
    let full = std::fs::read(&result).unwrap();
    std::fs::write(&result, &full[..full.len() / 2]).unwrap();
    std::fs::remove_file(copy.join("engine/nodes/001_a/status.txt")).unwrap();
    let before = snapshot(&copy);

    let d = Dashboard::start(&lab.root, "copy", &[]);
    let c = http();
    let api = format!("{}/api/w/copy", d.base);
    let o = get_json(&c, &format!("{api}/overview")).await;
    assert_eq!(o["best"]["id"], "003_c");
    let warnings = o["warnings"].to_string();
    assert!(warnings.contains("002_b/result.json"), "{warnings}");
    assert!(warnings.contains("001_a/status.txt"), "{warnings}");
    let p = get_json(&c, &format!("{api}/nodes")).await;
    assert_eq!(p["total"], 4);
    let n = get_json(&c, &format!("{api}/nodes/002_b")).await;
    assert!(n["result"].is_null(), "{n:#}");
    assert_same(&before, &snapshot(&copy), "serving a torn copy");

    // The torn line is completed and a node appears: both are seen without a restart.
    let mut feed = Sse::open(&c, &format!("{api}/events")).await;
    let (_, data) = feed.next().await;
    let v0 = serde_json::from_str::<Value>(&data).unwrap()["version"]
        .as_u64()
        .unwrap();
    text.push_str("ing\",\"message\":\"the torn line, now whole\"}\n");
    std::fs::write(&events, &text).unwrap();
    let new_node = copy.join("engine/nodes/004_d");
    std::fs::create_dir_all(&new_node).unwrap();
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(copy.join("engine/nodes/003_c/spec.json")).unwrap())
            .unwrap();
    spec["node_id"] = "004_d".into();
    spec["name"] = "d".into();
    std::fs::write(new_node.join("spec.json"), spec.to_string()).unwrap();
    std::fs::write(new_node.join("status.txt"), "queued\n").unwrap();
    loop {
        let (_, data) = feed.next().await;
        let u: Value = serde_json::from_str(&data).unwrap();
        assert!(u["version"].as_u64().unwrap() > v0);
        if u["events"].to_string().contains("the torn line, now whole") {
            break;
        }
    }
    eventually("the new node in the table", || async {
        let p = get_json(&c, &format!("{api}/nodes?status=queued")).await;
        if ids(&p) == ["004_d"] {
            Ok(())
        } else {
            Err(p["rows"].to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_control_and_foreign_hosts() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let before = snapshot(&lab.path("wd"));
    let d = Dashboard::start(&lab.root, "wd", &[]);
    let c = http();
    for path in ["queue/bump", "queue/drop", "stop"] {
        let r = c
            .post(format!("{}/api/w/wd/{path}", d.base))
            .json(&serde_json::json!({"id": "003_c", "priority": -5}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("--allow-control"), "{body}");
    }
    // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) is refused.
    let r = c
        .get(format!("{}/api/info", d.base))
        .header("host", format!("attacker.example:{}", d.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("DNS rebinding"));
    let r = c
        .get(format!("{}/api/info", d.base))
        .header("host", format!("localhost:{}", d.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_same(
        &before,
        &snapshot(&lab.path("wd")),
        "refused control requests",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_needs_the_token_and_the_origin_then_bumps_drops_and_stops() {
    let lab = gated_lab();
    let mut engine = start_engine(&lab, "wd", SEEDS);
    lab.wait_running("wd", "000_baseline", 3);
    let d = Dashboard::start(&lab.root, "wd", &["--allow-control"]);
    let token = d
        .token
        .clone()
        .expect("the URL carries a token with --allow-control");
    assert_eq!(token.len(), 32);
    assert!(d.banner.contains("control on"), "{}", d.banner);
    let c = http();
    let api = format!("{}/api/w/wd", d.base);
    let origin = d.base.clone();
    let bump = serde_json::json!({"id": "003_c", "priority": -100});

    // Reading needs no token on loopback; the page knows it may not steer without one.
    let o = get_json(&c, &format!("{api}/overview")).await;
    assert_eq!(
        o["control"],
        serde_json::json!({"enabled": true, "authorized": false})
    );

    // No token, a wrong one, or another site's origin: refused, nothing changes.
    for (tok, org) in [
        (None, Some(origin.as_str())),
        (Some("0".repeat(32)), Some(origin.as_str())),
        (Some(token.clone()), Some("http://attacker.example")),
    ] {
        let mut req = c.post(format!("{api}/queue/bump")).json(&bump);
        if let Some(t) = &tok {
            req = req.header("x-autoresearch-token", t);
        }
        if let Some(o) = org {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "token {tok:?} origin {org:?}");
    }
    assert_eq!(
        listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout),
        ["001_a", "002_b", "003_c"]
    );

    // With the token (header, or the cookie set by opening the URL) and our origin: done, through
    // the same path as `supervisor queue`.
    let r = c
        .post(format!("{api}/queue/bump"))
        .header("x-autoresearch-token", &token)
        .header("origin", &origin)
        .json(&bump)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout),
        ["003_c", "001_a", "002_b"]
    );
    let opened = c.get(&d.url).send().await.unwrap();
    let cookie = opened
        .headers()
        .get("set-cookie")
        .expect("opening the URL sets the token cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = c
        .post(format!("{api}/queue/drop"))
        .header("cookie", &cookie)
        .header("origin", &origin)
        .json(&serde_json::json!({"id": "001_a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout),
        ["003_c", "002_b"]
    );
    let o: Value = c
        .get(format!("{api}/overview"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["control"]["authorized"], true);

    // A bad id is refused with a reason; stop interrupts the engine like `supervisor stop`.
    let r = c
        .post(format!("{api}/queue/bump"))
        .header("x-autoresearch-token", &token)
        .json(&serde_json::json!({"id": "../x", "priority": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = c
        .post(format!("{api}/stop"))
        .header("x-autoresearch-token", &token)
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    engine.wait();
    assert_eq!(lab.status("wd")["status"], "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_address_needs_the_token_for_everything() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let d = Dashboard::start(&lab.root, "wd", &["--bind", "0.0.0.0"]);
    assert!(d.banner.contains("not a loopback address"), "{}", d.banner);
    let token = d.token.clone().expect("the URL carries the token");
    // Requests go to the loopback address only.
    let base = d.loopback();
    let c = http();
    for path in [
        "/",
        "/api/info",
        "/api/w/wd/overview",
        "/assets/app.js",
        "/api/w/wd/events",
    ] {
        let (status, body) = get(&c, &format!("{base}{path}")).await;
        assert_eq!(status, 403, "{path} without the token: {body}");
        assert!(body.contains("needs its token"), "{body}");
    }
    let (status, _) = get(&c, &format!("{base}/api/info?token={}", "f".repeat(32))).await;
    assert_eq!(status, 403, "a wrong token");
    let r = c
        .get(format!("{base}/?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let r = c
        .get(format!("{base}/api/w/wd/overview"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(format!("{base}/api/info"))
        .header("x-autoresearch-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_workdirs_is_listed_and_each_is_served() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    lab.finished_workdir("runs/night");
    let d = Dashboard::start(&lab.root, ".", &[]);
    let c = http();
    let info = get_json(&c, &format!("{}/api/info", d.base)).await;
    assert_eq!(info["mode"], "folder");
    let list = get_json(&c, &format!("{}/api/workdirs", d.base)).await;
    let keys: Vec<&str> = list["workdirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["runs/night", "wd"]);
    assert_eq!(list["workdirs"][0]["status"], "stopped");
    let o = get_json(&c, &format!("{}/api/w/runs%2Fnight/overview", d.base)).await;
    assert_eq!(o["best"]["id"], "003_c");
    // A run started later shows up.
    lab.finished_workdir("later");
    let o = get_json(&c, &format!("{}/api/w/later/overview", d.base)).await;
    assert_eq!(o["counts"]["total"], 4);
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let lab = Lab::new();
    lab.sup(&["serve", "nowhere"]).readable_error(2);
    lab.finished_workdir("wd");
    let out = lab.sup(&["serve", "wd", "--bind", "my-laptop"]);
    out.readable_error(2);
    assert!(out.stderr.contains("--bind"), "{}", out.stderr);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = lab.sup(&["serve", "wd", "--port", &port]);
    out.readable_error(1);
    assert!(out.stderr.contains("--port"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_dashboard_with_its_streams_open() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let mut d = Dashboard::start(&lab.root, "wd", &[]);
    let c = http();
    let mut feed = Sse::open(&c, &format!("{}/api/w/wd/events", d.base)).await;
    feed.next().await;
    let mut other = Sse::open(&c, &format!("{}/api/w/wd/events", d.base)).await;
    other.next().await;
    assert_eq!(d.terminate(), Some(0));
}
