//! Reading a fleet's reports from a registry store: one listing (paginated by the
//! store), then a bounded number of GETs at a time, each refused past the report size
//! limit, so ten thousand reports neither open ten thousand connections nor let one
//! hostile object fill memory.

use futures_util::StreamExt;

use crate::registry::fleet::Entry;
use crate::registry::manifest::{self, ChannelDoc, MAX_DOCUMENT_BYTES};
use crate::registry::names::{AppName, Channel};
use crate::registry::report::{
    fleet_prefix, parse_report_key, BadReport, Report, MAX_REPORT_BYTES,
};
use crate::transport::{Store, TransportError};

/// GETs in flight at once: enough to hide a store's latency, few enough for a small
/// CI runner and for request-rate limits.
pub const CONCURRENT_GETS: usize = 16;

/// Every report under `<app>/fleet/` (or only `<app>/fleet/<channel>/`), in key order.
/// Only the listing can fail the whole read; one report that cannot be fetched or
/// parsed becomes a bad entry.
pub async fn reports(
    store: &dyn Store,
    app: &AppName,
    channel: Option<&Channel>,
) -> Result<Vec<Entry>, TransportError> {
    let prefix = match channel {
        Some(c) => format!("{}{c}/", fleet_prefix(app)),
        None => fleet_prefix(app),
    };
    let keys = store.list(&prefix).await?;
    let mut entries: Vec<Entry> = futures_util::stream::iter(keys)
        .map(|key| async move {
            let report = fetch_one(store, app, &key).await;
            report.map(|report| Entry { key, report })
        })
        .buffer_unordered(CONCURRENT_GETS)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

/// One report, or None when it vanished between the listing and the GET (a machine
/// left the fleet, or its channel was cleaned up).
async fn fetch_one(
    store: &dyn Store,
    app: &AppName,
    key: &str,
) -> Option<Result<Report, BadReport>> {
    if parse_report_key(app, key).is_none() {
        return Some(Err(BadReport::NotAReportKey));
    }
    let bytes = match store.get(key, MAX_REPORT_BYTES as u64).await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(TransportError::TooLarge { .. }) => return Some(Err(BadReport::TooBig { size: None })),
        Err(e) => return Some(Err(BadReport::Unreadable { why: e.to_string() })),
    };
    Some(Report::parse(&bytes, app).and_then(|r| r.check_key(key).map(|()| r)))
}

/// A channel document as the registry holds it, parsed but NOT signature-checked: fleet
/// status only displays it. None when there is none, or it is unreadable (then the
/// reports' own `channel_version` stands in).
pub async fn channel_for_display(
    store: &dyn Store,
    app: &AppName,
    channel: &Channel,
) -> Option<ChannelDoc> {
    let key = manifest::channel_key(app, channel);
    let bytes = store.get(&key, MAX_DOCUMENT_BYTES).await.ok()??;
    manifest::parse_channel(&bytes, &key)
        .ok()
        .filter(|d| &d.app == app && &d.channel == channel)
}
