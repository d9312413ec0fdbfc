//! The tracker through its public API: balance, the grace period (on
//! Tokio's paused clock, so waiting out a grace takes no real time), the
//! shutdown flush, and races of many connections of one device.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    PresenceEvent, PresenceIdentity, PresenceKind, PresenceReason, PresenceSettings,
    PresenceTracker,
};

use PresenceKind::{DeviceOffline, DeviceOnline, UserOffline, UserOnline};

const GRACE: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);

fn tracker(grace: Duration) -> (PresenceTracker, mpsc::UnboundedReceiver<PresenceEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let settings = PresenceSettings { grace, node: None };
    (PresenceTracker::new(settings, Arc::new(tx)), rx)
}

fn who(user: &str, device: Option<&str>) -> PresenceIdentity {
    PresenceIdentity {
        app: "shop".into(),
        user: user.into(),
        device: device.map(str::to_string),
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<PresenceEvent>) -> Vec<PresenceEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn kinds(events: &[PresenceEvent]) -> Vec<(PresenceKind, PresenceReason)> {
    events.iter().map(|e| (e.kind, e.reason)).collect()
}

/// Per user and per device: online, offline, online, ... never two of a
/// kind in a row; and every online was followed by its offline.
fn assert_balanced(events: &[PresenceEvent]) {
    let mut online = std::collections::HashMap::new();
    for e in events {
        let key = match e.kind {
            UserOnline | UserOffline => (e.user.clone(), None),
            DeviceOnline | DeviceOffline => (e.user.clone(), e.device.clone()),
        };
        let was = online.insert(key.clone(), e.kind.is_online());
        assert_ne!(
            was,
            Some(e.kind.is_online()),
            "{key:?} got {:?} twice",
            e.kind
        );
        assert!(was.is_some() || e.kind.is_online(), "{key:?} offline first");
    }
    assert!(online.values().all(|on| !on), "still online: {online:?}");
}

#[tokio::test]
async fn without_grace_offline_follows_the_last_close_at_once() {
    let (t, mut rx) = tracker(Duration::ZERO);
    let a = t.open(who("u1", Some("phone")), "c1");
    let b = t.open(who("u1", Some("laptop")), "c2");
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (UserOnline, PresenceReason::Connected),
            (DeviceOnline, PresenceReason::Connected),
            (DeviceOnline, PresenceReason::Connected),
        ]
    );
    assert_eq!(events[2].device.as_deref(), Some("laptop"));
    assert_eq!(events[2].connection_id, "c2");
    assert_eq!(t.counts().users, 1);
    assert_eq!(t.counts().devices, 2);

    a.close(PresenceReason::Kicked);
    let events = drain(&mut rx);
    assert_eq!(kinds(&events), [(DeviceOffline, PresenceReason::Kicked)]);
    assert_eq!(events[0].device.as_deref(), Some("phone"));
    assert!(t.is_online("shop", "u1"));

    drop(b); // unclosed: disconnected
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (DeviceOffline, PresenceReason::Disconnected),
            (UserOffline, PresenceReason::Disconnected),
        ]
    );
    assert_eq!(events[1].connection_id, "c2");
    assert!(!t.is_online("shop", "u1"));
    assert_eq!(t.counts(), Default::default());
}

#[tokio::test]
async fn a_connection_without_device_moves_only_its_user() {
    let (t, mut rx) = tracker(Duration::ZERO);
    let c = t.open(who("u1", None), "c1");
    c.close(PresenceReason::Expired);
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (UserOnline, PresenceReason::Connected),
            (UserOffline, PresenceReason::Expired),
        ]
    );
    assert!(events.iter().all(|e| e.device.is_none()));
}

#[tokio::test(start_paused = true)]
async fn flapping_within_the_grace_is_silent() {
    let (t, mut rx) = tracker(GRACE);
    t.open(who("u1", Some("phone")), "c1")
        .close(PresenceReason::Disconnected);
    assert_eq!(drain(&mut rx).len(), 2, "the two onlines");
    for n in 0..10 {
        tokio::time::sleep(GRACE - MS).await;
        t.open(who("u1", Some("phone")), &format!("r{n}"))
            .close(PresenceReason::Expired);
    }
    tokio::time::sleep(GRACE - MS).await;
    let kept = t.open(who("u1", Some("phone")), "last");
    tokio::time::sleep(GRACE * 10).await;
    assert!(drain(&mut rx).is_empty(), "no offline/online noise");
    assert!(t.is_online("shop", "u1"));
    drop(kept);
}

#[tokio::test(start_paused = true)]
async fn offline_comes_when_the_grace_runs_out_with_the_closing_reason() {
    let (t, mut rx) = tracker(GRACE);
    let c = t.open(who("u1", Some("phone")), "c1");
    drain(&mut rx);
    let before = crate::store::now_ms();
    c.close(PresenceReason::TakenOver);
    tokio::time::sleep(GRACE - MS).await;
    assert!(drain(&mut rx).is_empty(), "not before the grace");
    assert!(t.is_online("shop", "u1"), "still online during the grace");
    tokio::time::sleep(2 * MS).await;
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (DeviceOffline, PresenceReason::TakenOver),
            (UserOffline, PresenceReason::TakenOver),
        ]
    );
    for e in &events {
        assert_eq!(e.connection_id, "c1");
        assert_eq!(e.device.as_deref(), Some("phone"));
        // When the connection closed (wall clock), not when the grace ran out.
        assert!(e.at >= before && e.at <= crate::store::now_ms());
    }
    assert_eq!(t.counts(), Default::default());
}

#[tokio::test(start_paused = true)]
async fn a_reopen_disarms_and_a_new_close_rearms_from_its_own_time() {
    let (t, mut rx) = tracker(GRACE);
    t.open(who("u1", Some("phone")), "c1")
        .close(PresenceReason::Disconnected);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c2 = t.open(who("u1", Some("phone")), "c2");
    tokio::time::sleep(Duration::from_secs(1)).await;
    c2.close(PresenceReason::Kicked);
    drain(&mut rx);
    // The first close's timer fires now (t=5s) and must find nothing due.
    tokio::time::sleep(GRACE - MS).await;
    assert!(drain(&mut rx).is_empty());
    tokio::time::sleep(2 * MS).await;
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (DeviceOffline, PresenceReason::Kicked),
            (UserOffline, PresenceReason::Kicked),
        ]
    );
    assert_eq!(events[0].connection_id, "c2");
}

#[tokio::test(start_paused = true)]
async fn another_device_keeps_the_user_online_through_the_grace() {
    let (t, mut rx) = tracker(GRACE);
    let phone = t.open(who("u1", Some("phone")), "c1");
    drain(&mut rx);
    phone.close(PresenceReason::Disconnected);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let laptop = t.open(who("u1", Some("laptop")), "c2");
    tokio::time::sleep(GRACE).await;
    assert_eq!(
        kinds(&drain(&mut rx)),
        [
            (DeviceOnline, PresenceReason::Connected),
            (DeviceOffline, PresenceReason::Disconnected),
        ],
        "the user never went offline: no user event"
    );
    drop(laptop);
    tokio::time::sleep(GRACE + MS).await;
    assert_eq!(
        kinds(&drain(&mut rx)),
        [
            (DeviceOffline, PresenceReason::Disconnected),
            (UserOffline, PresenceReason::Disconnected),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_waiting_offlines_and_then_emits_at_once() {
    let (t, mut rx) = tracker(GRACE);
    t.open(who("u1", Some("phone")), "c1")
        .close(PresenceReason::Disconnected);
    t.open(who("u2", None), "c2").close(PresenceReason::Kicked);
    let still_open = t.open(who("u3", Some("tv")), "c3");
    drain(&mut rx);

    assert_eq!(t.shutdown(), 3);
    let mut events = drain(&mut rx);
    assert!(
        events.iter().all(|e| e.reason == PresenceReason::Shutdown),
        "{events:?}"
    );
    events.sort_by_key(|e| (e.user.clone(), e.kind as u8));
    let got: Vec<_> = events.iter().map(|e| (e.user.as_str(), e.kind)).collect();
    assert_eq!(
        got,
        [
            ("u1", UserOffline),
            ("u1", DeviceOffline),
            ("u2", UserOffline)
        ]
    );
    assert!(t.is_online("shop", "u3"));

    still_open.close(PresenceReason::Shutdown);
    assert_eq!(
        kinds(&drain(&mut rx)),
        [
            (DeviceOffline, PresenceReason::Shutdown),
            (UserOffline, PresenceReason::Shutdown),
        ],
        "no grace once shutting down"
    );
    tokio::time::sleep(GRACE * 2).await;
    assert!(drain(&mut rx).is_empty(), "the old timers find nothing due");
    assert_eq!(t.counts(), Default::default());
}

/// 50 threads open and close connections of the same device at once, with
/// no grace so every transition is emitted: each is decided under the lock,
/// so the events alternate strictly and end balanced.
#[tokio::test]
async fn fifty_threads_on_one_device_stay_balanced() {
    let (t, mut rx) = tracker(Duration::ZERO);
    let threads: Vec<_> = (0..50)
        .map(|n| {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let reason = match i % 3 {
                        0 => PresenceReason::Disconnected,
                        1 => PresenceReason::TakenOver,
                        _ => PresenceReason::Kicked,
                    };
                    t.open(who("u1", Some("phone")), &format!("c{n}-{i}"))
                        .close(reason);
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("no panic");
    }
    let events = drain(&mut rx);
    assert!(events.len() >= 4, "{}", events.len());
    assert_balanced(&events);
    assert_eq!(t.counts(), Default::default());
}

/// 50 connections of one device arriving and leaving interleaved, with a
/// grace: one online, one offline, whatever the interleaving.
#[tokio::test(start_paused = true)]
async fn fifty_racing_connections_with_a_grace_make_one_online_and_one_offline() {
    let (t, mut rx) = tracker(GRACE);
    let tasks: Vec<_> = (0..50u64)
        .map(|n| {
            let t = t.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n * 7 % 13)).await;
                let lease = t.open(who("u1", Some("phone")), &format!("c{n}"));
                tokio::time::sleep(Duration::from_millis(n * 11 % 17)).await;
                lease.close(PresenceReason::Disconnected);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no panic");
    }
    tokio::time::sleep(GRACE + MS).await;
    let events = drain(&mut rx);
    assert_eq!(
        kinds(&events),
        [
            (UserOnline, PresenceReason::Connected),
            (DeviceOnline, PresenceReason::Connected),
            (DeviceOffline, PresenceReason::Disconnected),
            (UserOffline, PresenceReason::Disconnected),
        ]
    );
    assert_balanced(&events);
}
