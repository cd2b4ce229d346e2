//! Seed a registry with N machine reports for bench/fleet-status.sh, through the same
//! store code `updraft` uses (`file://` or `s3://`, S3 settings from AWS_* variables).
//!
//!   cargo run --release --example fleet-seed -- REGISTRY_URL APP COUNT
//!
//! The fleet: 80% healthy on 1.1.0, 15% rolled back to 1.0.0 with 1.1.0 blocked, 5%
//! waiting for the rollout on 1.0.0; all written within the last hour.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use updraft::transport::{open_store, TransportOptions};

fn report(app: &str, n: u32, now: SystemTime) -> (String, Vec<u8>) {
    let t =
        |ago: u64| humantime::format_rfc3339_seconds(now - Duration::from_secs(ago)).to_string();
    let machine = format!("{:064x}", u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (current, state, blocked) = match n % 20 {
        0..=15 => ("1.1.0", "healthy", serde_json::json!([])),
        16..=18 => (
            "1.0.0",
            "failed",
            serde_json::json!([{"version": "1.1.0", "reason": "health check http://127.0.0.1:3000/health failed: HTTP 500", "at": t(1800)}]),
        ),
        _ => ("1.0.0", "waiting-for-rollout", serde_json::json!([])),
    };
    let body = serde_json::json!({
        "kind": "report", "schema_version": 1, "machine": machine,
        "hostname": format!("vm-{n:05}"), "app": app, "channel": "prod",
        "target": "x86_64-linux", "updraft_version": "0.1.0",
        "current": current, "previous": "1.0.0", "pending": null, "state": state,
        "channel_version": "1.1.0", "blocked": blocked,
        "last_health": {"ok": state == "healthy", "at": t(600), "message": "1 check"},
        "last_error": null, "last_poll": t(600), "last_activation": t(7200),
        "channel_sequence": 3, "channel_expires": null, "rollout_bucket": n % 10_000,
        "written": t(u64::from(n % 3600)),
    });
    (
        format!("{app}/fleet/prod/{machine}.json"),
        serde_json::to_vec(&body).unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, app, count] = &args[..] else {
        eprintln!("usage: fleet-seed REGISTRY_URL APP COUNT");
        std::process::exit(2);
    };
    let count: u32 = count.parse().expect("COUNT must be a number");
    let store = open_store(url, &TransportOptions::default()).expect("open the registry");
    let now = SystemTime::now();
    let store = store.as_ref();
    let failures = futures_util::stream::iter(0..count)
        .map(|n| async move {
            let (key, bytes) = report(app, n, now);
            store.put(&key, bytes).await.err()
        })
        .buffer_unordered(32)
        .filter_map(|e| async move { e })
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failures.first() {
        eprintln!("{} writes failed, first: {e}", failures.len());
        std::process::exit(1);
    }
    eprintln!("wrote {count} reports under {url}/{app}/fleet/prod/");
}
