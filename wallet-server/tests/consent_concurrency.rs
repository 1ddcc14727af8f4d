//! Two server instances on one database never send the same SMS twice: each runs the consent
//! tick and the SMS delivery at the same moment, with its own connection pool.

#[path = "core_support/mod.rs"]
mod common;

use common::*;
use std::collections::HashMap;
use std::sync::Arc;
use wallet_server::consent;
use wallet_server::roster::ImportOptions;
use wallet_server::sms::file::{read_outbox, FileGateway};
use wallet_server::sms::{self, OutgoingSms};
use wallet_server::store::{self, testing, Store};

/// Enough pupils for several claim batches (500 each).
const PUPILS: usize = 1_300;

async fn run_both(stores: &[Arc<dyn Store>; 2], gateway: &Arc<FileGateway>, at: i64) -> usize {
    let s = settings();
    let mut tasks = Vec::new();
    for store in stores {
        let (store, s, gateway) = (store.clone(), s.clone(), gateway.clone());
        tasks.push(tokio::spawn(async move {
            let report = consent::tick(store.as_ref(), &s, at).await.unwrap();
            sms::deliver_due(store.as_ref(), gateway.as_ref(), at)
                .await
                .unwrap();
            report.requested + report.repeated
        }));
    }
    let mut queued = 0;
    for t in tasks {
        queued += t.await.unwrap();
    }
    queued
}

fn by_id(list: &[OutgoingSms]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for s in list {
        *m.entry(s.id.as_str()).or_default() += 1;
    }
    m
}

async fn two_instances(pg: bool) {
    let (first, db) = testing::any(pg).await;
    let second = store::connect(&db.url).await.unwrap();
    let stores = [first.clone(), second];
    let text = wallet_server::roster::sample::csv(PUPILS, 5);
    import(&first, &text, ImportOptions::default()).await;
    let with_phone: i64 = {
        // Eligible pupils with a phone, as the sample roster makes them.
        let mut n = 0;
        for iin in wallet_server::roster::sample::iins(0, PUPILS) {
            let p = first.pupil_by_iin(&iin).await.unwrap().unwrap();
            if p.category.is_eligible() && p.contact_phone.is_some() {
                n += 1;
            }
        }
        n
    };
    assert!(
        with_phone > 500,
        "the test needs several batches: {with_phone}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.jsonl");
    let gateway = Arc::new(FileGateway::new(path.clone()));

    // Day 0: both instances open requests at the same time.
    let queued = run_both(&stores, &gateway, MONDAY_9AM).await;
    assert_eq!(
        queued as i64, with_phone,
        "each request is made by exactly one instance"
    );
    let sent = read_outbox(&path).unwrap();
    assert_eq!(sent.len() as i64, with_phone, "each SMS delivered once");
    assert!(by_id(&sent).values().all(|&n| n == 1));
    let mut per_phone_text: HashMap<(&str, &str), usize> = HashMap::new();
    for s in &sent {
        assert_eq!(s.kind, "consent_request");
        *per_phone_text
            .entry((s.to.as_str(), s.text.as_str()))
            .or_default() += 1;
    }
    assert!(
        per_phone_text.values().all(|&n| n == 1),
        "no request sent twice"
    );

    // Day 3: both instances repeat at the same time.
    let queued = run_both(&stores, &gateway, MONDAY_9AM + 3 * DAY).await;
    assert_eq!(queued as i64, with_phone);
    let sent = read_outbox(&path).unwrap();
    let repeats = sent.iter().filter(|s| s.kind == "consent_repeat").count() as i64;
    assert_eq!(repeats, with_phone);
    assert_eq!(sent.len() as i64, 2 * with_phone);
    assert!(by_id(&sent).values().all(|&n| n == 1));
    assert_eq!(first.unsent_sms_count().await.unwrap(), 0);

    // Day 6: both expire; nothing is sent.
    assert_eq!(run_both(&stores, &gateway, MONDAY_9AM + 6 * DAY).await, 0);
    assert_eq!(read_outbox(&path).unwrap().len() as i64, 2 * with_phone);
    let counts = first.consent_counts("2026-2027").await.unwrap();
    let expired = counts.iter().find(|(s, _)| s == "expired").map(|c| c.1);
    assert_eq!(expired, Some(with_phone));
}

both_backends!(concurrent_ticks_send_each_sms_once, super::two_instances);

async fn delivery_claims(pg: bool) {
    let (first, db) = testing::any(pg).await;
    let second = store::connect(&db.url).await.unwrap();
    let phone = shared::phone::Phone::parse("+77010000001").unwrap();
    for i in 0..1_200 {
        sms::queue(
            first.as_ref(),
            &phone,
            &format!("code {i}"),
            sms::SmsKind::LoginCode,
            100,
        )
        .await
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.jsonl");
    let gateway = Arc::new(FileGateway::new(path.clone()));
    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone(), first.clone(), second] {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            sms::deliver_due(store.as_ref(), gateway.as_ref(), 100)
                .await
                .unwrap()
                .sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1_200);
    let sent = read_outbox(&path).unwrap();
    assert_eq!(sent.len(), 1_200);
    assert!(by_id(&sent).values().all(|&n| n == 1));
    assert_eq!(first.unsent_sms_count().await.unwrap(), 0);
}

both_backends!(
    concurrent_delivery_sends_each_row_once,
    super::delivery_claims
);
