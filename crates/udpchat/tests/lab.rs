//! `udpchat lab` through the binary: the diagrams checked in under docs/lab are what the
//! named scenarios draw today, and the HTML report renders in a real browser with one
//! arrow per datagram (Chromium, headless; installed if missing and possible, else the
//! test says why it skipped).

// Test support: a panic with the output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIOS: [&str; 6] = [
    "no-loss",
    "lost-packet",
    "lost-ack",
    "premature-timeout",
    "selective-repeat",
    "restart",
];

fn docs_lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lab")
}

fn lab(args: &[&str]) -> std::process::Output {
    let out = common::run(&[&["lab"], args].concat());
    assert!(out.status.success(), "{out:?}");
    out
}

#[test]
fn the_checked_in_diagrams_are_what_the_scenarios_draw() {
    let dir = common::temp_home("lab");
    std::fs::create_dir_all(&dir).unwrap();
    for name in SCENARIOS {
        let svg = dir.join(format!("{name}.svg"));
        let out = lab(&[
            "--scenario",
            name,
            "--svg",
            svg.to_str().unwrap(),
            "--text",
            "--width",
            "64",
        ]);
        let text = String::from_utf8(out.stdout).unwrap();
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let kept_svg = std::fs::read_to_string(docs_lab().join(format!("{name}.svg"))).unwrap();
        let kept_text = std::fs::read_to_string(docs_lab().join(format!("{name}.txt"))).unwrap();
        // docs/lab/README.md has the commands that made them.
        assert!(
            drawn == kept_svg && text == kept_text,
            "docs/lab/{name}.* are out of date: run the commands in docs/lab/README.md"
        );
        // One arrow per datagram, one cross per loss.
        let packets = attribute(&drawn, "data-packets");
        assert_eq!(
            drawn.matches(r#"class="packet""#).count(),
            packets,
            "{name}"
        );
        assert_eq!(
            drawn.matches(r#"class="loss""#).count(),
            attribute(&drawn, "data-lost"),
            "{name}"
        );
    }
}

/// The number in the root element's attribute `name`.
fn attribute(svg: &str, name: &str) -> usize {
    let start = svg.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = svg[start..].find('"').unwrap() + start;
    svg[start..end].parse().unwrap()
}

/// The Chromium binary, installing it first if it is missing and we can.
fn chromium() -> Result<String, String> {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(str::to_owned)
    };
    if let Some(b) = find() {
        return Ok(b);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // A fresh machine may have no package lists yet.
    if !apt(&["install", "-y", "-qq", "chromium"]) && apt(&["update", "-qq"]) {
        apt(&["install", "-y", "-qq", "chromium"]);
    }
    find().ok_or_else(|| {
        "Chromium is not installed and `apt-get install chromium` did not work".into()
    })
}

#[test]
fn the_report_renders_in_a_real_browser_with_every_arrow() {
    let browser = match chromium() {
        Ok(b) => b,
        // UDPCHAT_REQUIRE_BROWSER=1 makes a missing browser a failure, not a skip.
        Err(reason) if std::env::var_os("UDPCHAT_REQUIRE_BROWSER").is_some() => panic!("{reason}"),
        Err(reason) => {
            eprintln!("SKIPPED the_report_renders_in_a_real_browser_with_every_arrow: {reason}");
            return;
        }
    };
    let dir = common::temp_home("lab-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let png = dir.join("report.png");
    // A lossy run of its own: more than the textbook's handful of arrows.
    lab(&[
        "--messages",
        "40",
        "--drop",
        "0.2",
        "--ack-drop",
        "0.2",
        "--window",
        "8",
        "--seed",
        "3",
        "--out",
        html.to_str().unwrap(),
    ]);
    let source = std::fs::read_to_string(&html).unwrap();
    let packets = attribute(&source, "data-packets");
    let url = format!("file://{}", html.display());
    let profile = dir.join("chromium-profile");
    let headless = |extra: &[&str]| {
        // timeout(1): a browser that hangs under load fails the test instead of CI.
        Command::new("timeout")
            .arg("120")
            .arg(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    // The DOM after the page's script ran: every arrow is there.
    let dumped = headless(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dumped.stdout);
    assert!(dom.contains("<svg"), "the browser gave no page: {dumped:?}");
    assert!(packets > 10, "{packets}");
    assert_eq!(dom.matches(r#"class="packet""#).count(), packets);
    // And it draws: a screenshot of a real size.
    let shot = headless(&[
        "--window-size=1000,1400",
        &format!("--screenshot={}", png.display()),
    ]);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes: {shot:?}");
}

#[test]
fn two_real_runs_traces_draw_as_one_diagram() {
    let (pa, pb) = (common::free_port(), common::free_port());
    let dir = common::temp_home("lab-trace");
    std::fs::create_dir_all(&dir).unwrap();
    let (ta, tb) = (dir.join("a.qlog"), dir.join("b.qlog"));
    let (ta_s, tb_s) = (ta.to_str().unwrap(), tb.to_str().unwrap());
    let lossy = [
        "--drop",
        "0.2",
        "--ack-drop",
        "0.2",
        "--plaintext",
        "--no-history",
    ];
    let mut a = common::Proc::chat(
        "A",
        pa,
        common::localhost(pb),
        &[&lossy[..], &["--trace", ta_s, "--seed", "1"]].concat(),
    );
    let mut b = common::Proc::chat(
        "B",
        pb,
        common::localhost(pa),
        &[&lossy[..], &["--trace", tb_s, "--seed", "2"]].concat(),
    );
    a.write_lines((0..30).map(|i| format!("line {i}")));
    b.write_lines(["back"]);
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    // Each file is qlog JSON-SEQ: a record separator before each record, a header first,
    // in a version qvis opens; one run is the client and the other the server, so qvis
    // pairs their sends and arrivals.
    let mut vantage = Vec::new();
    for file in [&ta, &tb] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with('\u{1e}'), "{}", file.display());
        let header: serde_json::Value =
            serde_json::from_str(text[1..].lines().next().unwrap()).unwrap();
        assert_eq!(header["qlog_format"], "JSON-SEQ", "{header}");
        assert_eq!(header["qlog_version"], "0.3", "{header}");
        vantage.push(header["trace"]["vantage_point"]["type"].clone());
    }
    vantage.sort_by_key(ToString::to_string);
    assert_eq!(vantage, ["client", "server"]);
    let svg = dir.join("both.svg");
    let out = lab(&[
        "--from-trace",
        ta_s,
        tb_s,
        "--svg",
        svg.to_str().unwrap(),
        "--text",
    ]);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let packets = attribute(&drawn, "data-packets");
    assert!(packets > 5, "{packets}");
    assert_eq!(drawn.matches(r#"class="packet""#).count(), packets);
    // What the simulated loss dropped is drawn lost; the rest arrived on the other side.
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DATA seq 0"), "{text}");
    let dropped_a = a.events_named("dropped_by_simulation").len();
    let dropped_b = b.events_named("dropped_by_simulation").len();
    assert!(
        attribute(&drawn, "data-lost") >= dropped_a + dropped_b,
        "{} lost drawn, {dropped_a} + {dropped_b} dropped",
        attribute(&drawn, "data-lost")
    );
}
