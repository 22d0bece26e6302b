//! Section 11: a long history opens at once. A store with a million messages (half
//! ours, half the peer's, as udpchat-store writes them), then what a chat does at start
//! (open and lock the store, load the conversation with its outbox, read the newest 100
//! messages) timed in this process, and `udpchat history --limit 100` timed through
//! the binary, process start included.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use udpchat_proto::StableId;
use udpchat_stack::Record;
use udpchat_store::Store;

use crate::binary::TempHome;
use crate::Report;

const PEER: &str = "key:bench";

/// Section 11.
pub(crate) fn section(
    r: &mut Report,
    messages: usize,
    repeats: usize,
    bin: Option<&Path>,
) -> anyhow::Result<()> {
    let home = TempHome::new("history");
    std::fs::create_dir_all(home.path())?;
    let mut store = Store::open(home.path())?;
    store.load(PEER)?;
    let filled = Instant::now();
    let batch = 1_000;
    for first in (0..messages).step_by(batch) {
        let records: Vec<Record> = (first..(first + batch).min(messages))
            .map(|i| {
                let n = i as u64;
                if i % 2 == 0 {
                    Record::Queued {
                        number: n / 2,
                        text: format!("line {i} of the conversation"),
                    }
                } else {
                    Record::Shown {
                        stable: Some(StableId {
                            origin: 7,
                            number: n / 2,
                        }),
                        text: format!("line {i} of the conversation"),
                        nick: None,
                    }
                }
            })
            .collect();
        store.commit(PEER, None, &records)?;
        // Ours are acknowledged as they go, but for the last few.
        let below = ((first + batch) / 2).saturating_sub(5) as u64;
        store.commit(PEER, None, &[Record::DeliveredBelow { below }])?;
    }
    let fill_s = filled.elapsed().as_secs_f64();
    drop(store);
    let size_mib = std::fs::metadata(home.path().join(udpchat_store::DATABASE))
        .map(|m| m.len() as f64 / (1 << 20) as f64)
        .unwrap_or(0.0);

    let mut opens = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let mut store = Store::open(home.path())?;
        let conversation = store.load(PEER)?;
        let newest = store.history(Some(PEER), None, Some(100))?;
        opens.push(t.elapsed().as_secs_f64() * 1e3);
        if newest.len() != 100 || conversation.outbox.len() != 5 {
            bail!(
                "history read {} messages and an outbox of {}",
                newest.len(),
                conversation.outbox.len()
            );
        }
    }
    let mut through_binary = Vec::new();
    if let Some(bin) = bin {
        for _ in 0..repeats {
            let t = Instant::now();
            let out = Command::new(bin)
                .args(["history", "--json", "--limit", "100", "--home"])
                .arg(home.path())
                .stdin(Stdio::null())
                .output()
                .context("running udpchat history")?;
            through_binary.push(t.elapsed().as_secs_f64() * 1e3);
            let lines = out.stdout.iter().filter(|&&b| b == b'\n').count();
            if !out.status.success() || lines != 100 {
                bail!("udpchat history printed {lines} lines: {out:?}");
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let open_ms = median(&mut opens);
    let binary_ms = median(&mut through_binary);
    r.line(format!(
        "11. history: {messages} messages written in {fill_s:.1} s ({:.0} messages/s in batches of {batch}; {size_mib:.0} MiB); opening it as a chat does (lock, load the conversation and its outbox, the newest 100 messages) {open_ms:.1} ms (median of {repeats}, min {:.1}, max {:.1}); `udpchat history --limit 100 --json` through the binary, process start included: {}",
        messages as f64 / fill_s,
        opens.first().copied().unwrap_or(f64::NAN),
        opens.last().copied().unwrap_or(f64::NAN),
        if through_binary.is_empty() {
            "not measured (udpchat not built)".to_owned()
        } else {
            format!("{binary_ms:.1} ms")
        }
    ));
    r.goal(
        "a history of 1M messages opens (store, conversation, newest 100)",
        format!("{open_ms:.1} ms"),
        "< 100 ms",
        open_ms < 100.0,
    );
    Ok(())
}
