//! Floods of bad input (a stuck wedge scanner, a script on stdin) must not fill the disk.
//!
//! Two rules, decided here in memory and applied by [`crate::store::record`] inside the scan's
//! transaction (docs/terminal.md, "Floods"):
//!
//! * **Same input again.** A rejection whose input text and recorded fields equal those of the
//!   rejection just recorded, at most [`REPEAT_WITHIN_MS`] after that input, raises that
//!   event's `count` instead of adding a row — as long as it is still the last event of the log
//!   and no upload has taken it yet (sealed events never change, see `store::seal_for_upload`).
//! * **Per-minute cap.** Past `rejections_per_minute` new rejection rows in one minute of
//!   terminal time, a rejection goes into one `capped` event per (verdict, service day, source,
//!   meal kind, repeat mark, and voucher for `already_served`) of that minute, counted up.
//!
//! Served (`ok`) scans are never folded and never capped. Every scan still gets its verdict on
//! screen and on stdout.

use chrono::NaiveDate;
use shared::calendar::MealKind;
use shared::verdict::Verdict;
use shared::wire::ScanSource;
use std::collections::HashMap;
use uuid::Uuid;

/// A repeat of the same input counts into the previous event when it comes this soon after it.
pub const REPEAT_WITHIN_MS: i64 = 1000;
/// Default of the `rejections_per_minute` setting.
pub const DEFAULT_REJECTIONS_PER_MINUTE: u32 = 600;

/// The recorded fields of a rejection: two scans are one event only when all of them agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowKey {
    pub verdict: Verdict,
    pub service_day: NaiveDate,
    pub source: ScanSource,
    pub meal_kind: MealKind,
    pub voucher_id: Option<Uuid>,
    pub key_id: Option<String>,
    pub repeat: bool,
}

impl RowKey {
    /// The key of the capped event this rejection goes into: a capped event names a voucher
    /// only for `already_served` (which the server requires, and which only vouchers served
    /// today can produce), and no key id. Any other flood of distinct tokens lands in one row.
    pub fn capped(&self) -> RowKey {
        let keeps_voucher = self.verdict == Verdict::AlreadyServed;
        RowKey {
            voucher_id: self.voucher_id.filter(|_| keeps_voucher),
            key_id: None,
            ..self.clone()
        }
    }
}

/// Where a rejection goes, tried in this order by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The previous event, for the same input again: folded into only while it is still the
    /// last event of the log.
    pub same_input: Option<i64>,
    /// Over the cap: the capped event of this minute with the same key, if there is one.
    pub capped_event: Option<i64>,
    /// Over the cap: a new row, if needed, is a capped one (with [`RowKey::capped`] fields).
    pub capped: bool,
}

/// What became of a rejection in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    /// A new event row (capped or not).
    Row { seq: i64, capped: bool },
    /// Counted into the previous event ([`Placement::same_input`]).
    SameInput { seq: i64 },
    /// Counted into the capped event of its key ([`Placement::capped_event`]).
    CappedEvent { seq: i64 },
}

#[derive(Debug, Clone)]
struct Last {
    seq: i64,
    key: RowKey,
    input: String,
    at_ms: i64,
}

/// The guard's memory. One per open terminal; a restart starts it from the log
/// ([`Guard::seed`]), so a script that starts a process per scan is bounded as well.
#[derive(Debug, Clone)]
pub struct Guard {
    cap: u32,
    minute: i64,
    new_rows: u32,
    capped: HashMap<RowKey, i64>,
    last: Option<Last>,
}

/// A rejection row of the current minute, as [`Guard::seed`] reads it from the log.
#[derive(Debug, Clone)]
pub struct SeedRow {
    pub seq: i64,
    pub key: RowKey,
    pub capped: bool,
    /// Still open to folding (not sealed for an upload).
    pub open: bool,
}

impl Guard {
    pub fn new(cap: u32) -> Guard {
        Guard {
            cap,
            minute: i64::MIN,
            new_rows: 0,
            capped: HashMap::new(),
            last: None,
        }
    }

    /// Starts from the rejection rows the log holds for the minute of `now`.
    pub fn seed(cap: u32, now: i64, rows: impl IntoIterator<Item = SeedRow>) -> Guard {
        let mut g = Guard::new(cap);
        g.roll(now);
        for r in rows {
            if r.capped {
                if r.open {
                    g.capped.insert(r.key, r.seq);
                }
            } else {
                g.new_rows = g.new_rows.saturating_add(1);
            }
        }
        g
    }

    fn roll(&mut self, now: i64) {
        let minute = now.div_euclid(60);
        if minute != self.minute {
            self.minute = minute;
            self.new_rows = 0;
            self.capped.clear();
        }
    }

    /// Rejection rows recorded (not capped) in the current minute.
    pub fn new_rows(&self) -> u32 {
        self.new_rows
    }

    /// Where a rejection with `key` and `input` at terminal time `now` (seconds) and elapsed
    /// time `at_ms` goes.
    pub fn plan(&mut self, key: &RowKey, input: &str, now: i64, at_ms: i64) -> Placement {
        self.roll(now);
        let same_input = self
            .last
            .as_ref()
            .filter(|l| {
                l.key == *key
                    && l.input == input
                    && (0..=REPEAT_WITHIN_MS).contains(&(at_ms - l.at_ms))
            })
            .map(|l| l.seq);
        let capped = self.new_rows >= self.cap;
        Placement {
            same_input,
            capped_event: if capped {
                self.capped.get(&key.capped()).copied()
            } else {
                None
            },
            capped,
        }
    }

    /// Notes where a rejection landed.
    pub fn landed(&mut self, key: &RowKey, input: &str, at_ms: i64, landed: Landed) {
        let seq = match landed {
            Landed::Row { seq, capped: true } => {
                self.capped.insert(key.capped(), seq);
                self.last = None;
                return;
            }
            Landed::CappedEvent { .. } => {
                self.last = None;
                return;
            }
            Landed::Row { seq, capped: false } => {
                self.new_rows = self.new_rows.saturating_add(1);
                seq
            }
            Landed::SameInput { seq } => seq,
        };
        self.last = Some(Last {
            seq,
            key: key.clone(),
            input: input.to_owned(),
            at_ms,
        });
    }

    /// A served scan (or anything else recorded outside these rules) ends a run of the same
    /// input.
    pub fn interrupted(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(verdict: Verdict, voucher: Option<u128>) -> RowKey {
        RowKey {
            verdict,
            service_day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            source: ScanSource::Qr,
            meal_kind: MealKind::Lunch,
            voucher_id: voucher.map(Uuid::from_u128),
            key_id: voucher.map(|_| "0a1b2c3d".to_owned()),
            repeat: false,
        }
    }

    /// The log as the store would keep it: rows (key, capped, count, minute), the last seq
    /// sealed for an upload.
    #[derive(Default)]
    struct Log {
        rows: Vec<(RowKey, bool, i64, i64)>,
        sealed: i64,
    }

    impl Log {
        /// `store::record` for a rejection: the same steps, on a vector.
        fn record(&mut self, k: &RowKey, p: &Placement, minute: i64) -> Landed {
            let last = self.rows.len() as i64;
            if let Some(seq) = p.same_input {
                if seq == last && seq > self.sealed {
                    self.rows[seq as usize - 1].2 += 1;
                    return Landed::SameInput { seq };
                }
            }
            if let Some(seq) = p.capped_event.filter(|_| p.capped) {
                if seq > self.sealed {
                    self.rows[seq as usize - 1].2 += 1;
                    return Landed::CappedEvent { seq };
                }
            }
            let key = if p.capped { k.capped() } else { k.clone() };
            self.rows.push((key, p.capped, 1, minute));
            Landed::Row {
                seq: self.rows.len() as i64,
                capped: p.capped,
            }
        }

        fn serve(&mut self, minute: i64) {
            self.rows
                .push((key(Verdict::Ok, Some(1)), false, 1, minute));
        }

        fn rejections(&self) -> impl Iterator<Item = &(RowKey, bool, i64, i64)> {
            self.rows.iter().filter(|r| r.0.verdict != Verdict::Ok)
        }
    }

    #[test]
    fn the_same_input_within_a_second_is_one_event() {
        let mut g = Guard::new(600);
        let mut log = Log::default();
        let k = key(Verdict::BadFormat, None);
        for i in 0..10_000 {
            let at = i * 5; // 200 inputs a second
            let p = g.plan(&k, "garbage", 1_000 + at / 1000, at);
            let landed = log.record(&k, &p, 0);
            g.landed(&k, "garbage", at, landed);
        }
        // A new minute starts no new row on its own: the run goes on.
        assert_eq!(log.rows.len(), 1);
        assert_eq!(log.rows[0].2, 10_000);
        // A pause longer than a second, or other input, starts a new event.
        let p = g.plan(&k, "garbage", 1_100, 100_000);
        assert_eq!(p.same_input, None);
        let p = g.plan(&k, "other", 1_050, 50_001);
        assert_eq!(p.same_input, None);
    }

    #[test]
    fn a_sealed_event_is_not_folded_into() {
        let mut g = Guard::new(600);
        let mut log = Log::default();
        let k = key(Verdict::BadFormat, None);
        for (i, seal) in [(0, false), (1, true), (2, false)] {
            if seal {
                log.sealed = log.rows.len() as i64;
            }
            let p = g.plan(&k, "x", 1_000, i * 10);
            let landed = log.record(&k, &p, 0);
            g.landed(&k, "x", i * 10, landed);
        }
        let counts: Vec<i64> = log.rows.iter().map(|r| r.2).collect();
        assert_eq!(counts, [1, 2]);
    }

    #[test]
    fn capped_rows_keep_the_voucher_only_for_already_served() {
        let expired = key(Verdict::Expired, Some(7));
        assert_eq!(expired.capped().voucher_id, None);
        assert_eq!(expired.capped().key_id, None);
        let served = key(Verdict::AlreadyServed, Some(7));
        assert_eq!(served.capped().voucher_id, Some(Uuid::from_u128(7)));
        assert_eq!(served.capped().key_id, None);
    }

    #[test]
    fn seeding_counts_the_minute_and_reopens_its_capped_rows() {
        let k = key(Verdict::BadFormat, None);
        let rows = (1..=5).map(|seq| SeedRow {
            seq,
            key: k.clone(),
            capped: seq == 5,
            open: true,
        });
        let mut g = Guard::seed(4, 60_000, rows);
        assert_eq!(g.new_rows(), 4);
        let p = g.plan(&k, "y", 60_010, 0);
        assert_eq!((p.capped, p.capped_event), (true, Some(5)));
        // The next minute starts afresh.
        let p = g.plan(&k, "y", 60_060, 0);
        assert_eq!((p.capped, p.capped_event), (false, None));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Scan { input: u8, verdict: u8, gap_ms: u16 },
        Sync,
        Served,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0u8..6, 0u8..3, 0u16..2500).prop_map(|(input, verdict, gap_ms)| Step::Scan { input, verdict, gap_ms }),
            1 => Just(Step::Sync),
            1 => Just(Step::Served),
        ]
    }

    fn now_of(at_ms: i64) -> i64 {
        1_000_000 + at_ms / 1000
    }

    proptest! {
        /// Whatever arrives: every rejection is counted exactly once, each event's fields are
        /// those of every scan it counts, and new rows per minute stay within the cap plus one
        /// capped row per key (and per sync, which seals them).
        #[test]
        fn every_scan_is_counted_once_and_rows_stay_bounded(
            cap in 1u32..20,
            steps in proptest::collection::vec(step(), 1..400),
        ) {
            let verdicts = [Verdict::BadFormat, Verdict::Expired, Verdict::UnknownKey];
            let mut g = Guard::new(cap);
            let mut log = Log::default();
            let mut at_ms: i64 = 0;
            let mut rejections = 0i64;
            let mut syncs_in = HashMap::<i64, i64>::new();
            for s in &steps {
                match s {
                    Step::Scan { input, verdict, gap_ms } => {
                        at_ms += i64::from(*gap_ms);
                        let now = now_of(at_ms);
                        let k = key(verdicts[*verdict as usize], None);
                        let text = format!("input-{input}");
                        let p = g.plan(&k, &text, now, at_ms);
                        let landed = log.record(&k, &p, now.div_euclid(60));
                        match landed {
                            Landed::SameInput { seq } => prop_assert!(log.rows[seq as usize - 1].0 == k),
                            Landed::CappedEvent { seq } | Landed::Row { seq, capped: true } => {
                                let row = &log.rows[seq as usize - 1];
                                prop_assert!(row.1 && row.0 == k.capped());
                            }
                            Landed::Row { seq, capped: false } => prop_assert!(log.rows[seq as usize - 1].0 == k),
                        }
                        g.landed(&k, &text, at_ms, landed);
                        rejections += 1;
                    }
                    Step::Sync => {
                        log.sealed = log.rows.len() as i64;
                        let now = now_of(at_ms);
                        *syncs_in.entry(now.div_euclid(60)).or_default() += 1;
                    }
                    Step::Served => {
                        log.serve(now_of(at_ms).div_euclid(60));
                        g.interrupted();
                    }
                }
            }
            let total: i64 = log.rejections().map(|r| r.2).sum();
            prop_assert_eq!(total, rejections);
            let mut per_minute = HashMap::<i64, (u32, u32)>::new();
            for (_, capped, _, minute) in log.rejections() {
                let e = per_minute.entry(*minute).or_default();
                if *capped { e.1 += 1 } else { e.0 += 1 }
            }
            for (minute, (plain, capped)) in per_minute {
                prop_assert!(plain <= cap, "minute {minute}: {plain} rows over cap {cap}");
                let syncs = syncs_in.get(&minute).copied().unwrap_or(0) as u32;
                prop_assert!(capped <= verdicts.len() as u32 * (1 + syncs), "minute {minute}: {capped} capped rows");
            }
        }
    }
}
