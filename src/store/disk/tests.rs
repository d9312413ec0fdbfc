//! The same conformance checks for every engine (and, for `find`, the
//! memory log too), through the `Store` and `TopicLog` traits only: what
//! one engine passes, the other must too, including across a reopen.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DiskSettings, DiskStore, Durability, EngineKind};
use crate::secret::Secret;
use crate::store::{Commit, Retention, Store, StoredEvent, TopicLog, TopicRecord, now_ms};

fn record(id: &str, retention: Retention) -> TopicRecord {
    TopicRecord {
        id: id.to_string(),
        token: Secret::new("token"),
        persist: true,
        created_at_ms: 1,
        retention,
    }
}

fn event(seq: u64, id: &str) -> StoredEvent {
    StoredEvent {
        seq,
        id: Arc::from(id),
        frame: bytes::Bytes::from(format!("id: {id}\ndata: {seq}\n\n")),
        published_at_ms: now_ms(),
    }
}

async fn append(log: &Arc<dyn TopicLog>, e: StoredEvent) {
    match log.append(e) {
        Commit::Done => {}
        Commit::Pending(f) => f.await.unwrap(),
    }
}

fn open(dir: &Path, engine: EngineKind) -> Arc<DiskStore> {
    DiskStore::open(DiskSettings {
        dir: dir.to_path_buf(),
        engine,
        durability: Durability::Sync,
    })
    .unwrap()
}

async fn conformance(engine: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), engine);
    let rec = record(
        "t1",
        Retention {
            max_events: Some(5),
            ..Retention::default()
        },
    );
    store.save_topic(&rec).unwrap();
    let log = store.open_log(&rec).unwrap();
    assert_eq!(log.bounds(), None);
    assert_eq!(log.last_seq(), 0);
    for seq in 1..=8 {
        let id = if seq == 6 {
            "custom".to_string()
        } else {
            seq.to_string()
        };
        append(&log, event(seq, &id)).await;
    }
    assert_eq!(log.bounds(), Some((4, 8)));
    assert_eq!(log.usage().0, 5);
    assert_eq!(log.last_seq(), 8);
    let seqs: Vec<u64> = log
        .read_after(5, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![6, 7, 8]);
    assert_eq!(log.read_after(0, 2).unwrap().len(), 2);
    assert_eq!(log.read_after(u64::MAX, 2).unwrap().len(), 0);
    assert_eq!(log.find("custom").unwrap(), Some(6));
    assert_eq!(log.find("7").unwrap(), Some(7));
    assert_eq!(log.find("6").unwrap(), None, "seq 6 has a publisher id");
    assert_eq!(log.find("2").unwrap(), None, "trimmed");
    assert_eq!(&*log.read_after(5, 1).unwrap()[0].id, "custom");
    store.flush().unwrap();

    // Reopen: same records, same history, same sequence.
    drop(log);
    drop(store);
    let store = reopen(dir.path(), engine).await;
    let records = store.load_topics().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].retention.max_events, Some(5));
    assert!(records[0].token.matches("token"));
    let log = store.open_log(&records[0]).unwrap();
    assert_eq!(log.bounds(), Some((4, 8)));
    assert_eq!(log.last_seq(), 8);

    // Destroy drops everything, including the stored sequence.
    store.delete_topic("t1").unwrap();
    log.destroy().unwrap();
    assert!(log.read_after(0, 10).unwrap().is_empty());
    assert!(store.load_topics().unwrap().is_empty());
    let log = store.open_log(&rec).unwrap();
    assert_eq!((log.bounds(), log.last_seq()), (None, 0));
}

/// The previous store's writer thread closes the engine's files just
/// after the last handle goes; wait for it (with a deadline).
async fn reopen(dir: &Path, engine: EngineKind) -> Arc<DiskStore> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match DiskStore::open(DiskSettings {
            dir: dir.to_path_buf(),
            engine,
            durability: Durability::Sync,
        }) {
            Ok(store) => return store,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn redb_conformance() {
    conformance(EngineKind::Redb).await;
}

#[tokio::test]
async fn sled_conformance() {
    conformance(EngineKind::Sled).await;
}

/// Retention for the `find` checks: four events.
fn four() -> Retention {
    Retention {
        max_events: Some(4),
        ..Retention::default()
    }
}

/// `find` names the OLDEST retained event with an id, whatever mix of
/// server-made and publisher-chosen ids, as retention trims. The same
/// for every log; ends holding 9 "order-1", 10 "12", 11 "11", 12 "12".
async fn find_contract(log: &Arc<dyn TopicLog>) {
    // Server ids only.
    for seq in 1..=3 {
        append(log, event(seq, &seq.to_string())).await;
    }
    assert_eq!(log.find("1").unwrap(), Some(1));
    assert_eq!(log.find("3").unwrap(), Some(3));
    assert_eq!(log.find("4").unwrap(), None, "not published yet");
    assert_eq!(log.find("01").unwrap(), None, "not the server's spelling");
    // A publisher's "1", newer than the server's 1: the server's wins.
    append(log, event(4, "1")).await;
    assert_eq!(log.find("1").unwrap(), Some(1));
    assert_eq!(log.find("4").unwrap(), None, "seq 4 has a publisher id");
    // Seq 1 is trimmed: the publisher's "1" is now the oldest.
    append(log, event(5, "order-1")).await;
    assert_eq!(log.bounds(), Some((2, 5)));
    assert_eq!(log.find("1").unwrap(), Some(4));
    // A reused publisher id: the oldest occurrence.
    append(log, event(6, "order-1")).await;
    append(log, event(7, "7")).await;
    assert_eq!(log.find("order-1").unwrap(), Some(5));
    append(log, event(8, "8")).await;
    assert_eq!(log.find("1").unwrap(), None, "both \"1\"s trimmed");
    assert_eq!(log.find("order-1").unwrap(), Some(5));
    // Its oldest occurrence trimmed: the next one.
    append(log, event(9, "order-1")).await;
    assert_eq!(log.find("order-1").unwrap(), Some(6));
    // A publisher's "12" older than the server's 12: the publisher's.
    append(log, event(10, "12")).await;
    append(log, event(11, "11")).await;
    append(log, event(12, "12")).await;
    find_final(log);
}

/// What `find` answers once [`find_contract`] has run (and after reopen).
fn find_final(log: &Arc<dyn TopicLog>) {
    assert_eq!(log.bounds(), Some((9, 12)));
    assert_eq!(log.find("12").unwrap(), Some(10));
    assert_eq!(log.find("11").unwrap(), Some(11));
    assert_eq!(log.find("10").unwrap(), None, "seq 10 has a publisher id");
    assert_eq!(log.find("order-1").unwrap(), Some(9));
    assert_eq!(log.find("8").unwrap(), None, "trimmed");
    assert_eq!(log.find("13").unwrap(), None);
}

/// Destroyed: nothing is found.
fn find_destroyed(log: &Arc<dyn TopicLog>) {
    for id in ["12", "11", "order-1", "9"] {
        assert_eq!(log.find(id).unwrap(), None, "{id} after destroy");
    }
}

#[tokio::test]
async fn memory_find() {
    let log: Arc<dyn TopicLog> = crate::store::memory::MemoryLog::new(four());
    find_contract(&log).await;
    log.destroy().unwrap();
    find_destroyed(&log);
}

async fn disk_find(engine: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), engine);
    let rec = record("f", four());
    store.save_topic(&rec).unwrap();
    let log = store.open_log(&rec).unwrap();
    find_contract(&log).await;
    store.flush().unwrap();
    drop(log);
    drop(store);

    // Reopened, the index is rebuilt from disk and keeps working.
    let store = reopen(dir.path(), engine).await;
    let log = store.open_log(&rec).unwrap();
    find_final(&log);
    append(&log, event(13, "order-1")).await;
    assert_eq!(log.find("order-1").unwrap(), Some(13), "9 trimmed");
    assert_eq!(log.find("12").unwrap(), Some(10));
    append(&log, event(14, "14")).await;
    assert_eq!(log.find("12").unwrap(), Some(12), "10 trimmed");
    assert_eq!(log.find("14").unwrap(), Some(14));

    store.delete_topic("f").unwrap();
    log.destroy().unwrap();
    find_destroyed(&log);
    assert_eq!(log.find("14").unwrap(), None);
}

#[tokio::test]
async fn redb_find() {
    disk_find(EngineKind::Redb).await;
}

#[tokio::test]
async fn sled_find() {
    disk_find(EngineKind::Sled).await;
}

fn aging() -> Retention {
    Retention {
        max_age: Some(Duration::from_millis(200)),
        ..Retention::default()
    }
}

/// Age-based retention (the writer's timer for disk logs, lazily for the
/// memory log) drops events from the index too.
async fn find_after_aging(log: &Arc<dyn TopicLog>) {
    append(log, event(1, "a")).await;
    append(log, event(2, "2")).await;
    assert_eq!(log.find("a").unwrap(), Some(1));
    assert_eq!(log.find("2").unwrap(), Some(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.find("a").unwrap().is_some() || log.find("2").unwrap().is_some() {
        assert!(Instant::now() < deadline, "aged events are never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.usage().0, 0);
    append(log, event(3, "a")).await;
    assert_eq!(log.find("a").unwrap(), Some(3));
}

#[tokio::test]
async fn memory_find_after_aging() {
    let log: Arc<dyn TopicLog> = crate::store::memory::MemoryLog::new(aging());
    find_after_aging(&log).await;
}

async fn disk_find_after_aging(engine: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), engine);
    let rec = record("aged", aging());
    store.save_topic(&rec).unwrap();
    let log = store.open_log(&rec).unwrap();
    find_after_aging(&log).await;
}

#[tokio::test]
async fn redb_find_after_aging() {
    disk_find_after_aging(EngineKind::Redb).await;
}

#[tokio::test]
async fn sled_find_after_aging() {
    disk_find_after_aging(EngineKind::Sled).await;
}
