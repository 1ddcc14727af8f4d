//! Whatever a wedge scanner (or a cat on the keyboard) types: no panic, one verdict line per
//! non-blank input line, and one logged event per verdict.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::stream::{scan_stream, Format};
use common::*;
use proptest::prelude::*;
use shared::wire::VoucherStatus;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_lines_never_panic_and_get_one_verdict_each(
        lines in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..200),
                "[A-Za-z0-9_-]{140}".prop_map(String::into_bytes),
                "[ \t\r]{0,5}".prop_map(String::into_bytes),
            ],
            0..8,
        ),
        json in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let world = World::new();
            let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(monday_noon());
            let t = enrolled_terminal(dir.path(), &server, "P", "P", &clock).await;
            let input = lines.join(&b'\n');
            let expected = input
                .split(|b| *b == b'\n')
                .filter(|l| !String::from_utf8_lossy(l).trim().is_empty())
                .count();
            let mut out = Vec::new();
            let format = if json { Format::Json } else { Format::Text };
            let stats = scan_stream(&t, &input[..], &mut out, format, None).await.unwrap();
            let text = String::from_utf8(out).unwrap();
            prop_assert_eq!(text.lines().count(), expected);
            prop_assert_eq!(stats.lines as usize, expected);
            for line in text.lines() {
                let code = if json {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    v["verdict"].as_str().unwrap().to_owned()
                } else {
                    line.split(' ').next().unwrap().to_owned()
                };
                prop_assert!(code.parse::<shared::Verdict>().is_ok(), "{}", line);
            }
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
                .fetch_one(t.pool()).await.unwrap();
            prop_assert_eq!(n as usize, expected);
            Ok(())
        })?;
    }
}
