//! go-sse-broker's README, walked as its users do: each endpoint with GET
//! (query) and POST (JSON), each response field.

use super::*;
use serde_json::json;

#[tokio::test]
async fn create_token_by_get_post_and_form() {
    let server = start().await;
    // GET /token?uid=1965
    let t = ok(get(&server, "/token?uid=1965").await);
    let t = t.as_str().expect("result is the token string");
    assert_eq!(t.split('.').count(), 3, "a JWT: {t}");
    // POST JSON {"uid": "1986", "device": "my computer 1"}
    let bound = ok(post(
        &server,
        "/token",
        json!({"uid": "1986", "device": "my computer 1"}),
    )
    .await);
    let bound = bound.as_str().expect("token").to_string();
    // A urlencoded form too (what `curl -d` sends).
    let resp = server
        .http
        .post(server.url("/token"))
        .bearer_auth(API_TOKEN)
        .form(&[("uid", "1987"), ("ttl", "60")])
        .send()
        .await
        .expect("form");
    assert_eq!(resp.headers()["cache-control"], "no-store", "a credential");
    assert!(ok(answer(resp).await).is_string());

    // The device-bound token opens its device's stream, and only that.
    let mut s = events(&server, &bound, "my computer 1", None).await;
    let other = server
        .http
        .get(server.url(&format!("/events?token={bound}&device=another")))
        .send()
        .await
        .expect("events");
    assert_eq!(refused(401, answer(other).await), "Invalid device");
    assert_eq!(ok(get(&server, "/send?uid=1986&data=hi").await), 1);
    assert_eq!(s.expect_event().await.data, "hi");
    server.stop().await;
}

#[tokio::test]
async fn send_to_uids_devices_and_everyone_with_events() {
    let server = start().await;
    let mut u1935 = connect(&server, "1935", "phone").await;
    let mut ax001 = connect(&server, "alice", "ax001").await;
    let mut ax002 = connect(&server, "bob", "ax002").await;

    // GET /send?uid=1935&data=hello → an unnamed event (onmessage).
    assert_eq!(ok(get(&server, "/send?uid=1935&data=hello").await), 1);
    let e = u1935.expect_event().await;
    assert_eq!((e.event.as_str(), e.data.as_str()), ("message", "hello"));
    assert!(!e.id.is_empty(), "every event has an id to resume after");

    // POST {"device": "ax001,ax002", "event": "custom-event", "data": "hello"}
    let result = ok(post(
        &server,
        "/send",
        json!({"device": "ax001,ax002", "event": "custom-event", "data": "hello"}),
    )
    .await);
    assert_eq!(result, 2, "result = the devices it reached");
    for s in [&mut ax001, &mut ax002] {
        let e = s.expect_event().await;
        assert_eq!(
            (e.event.as_str(), e.data.as_str()),
            ("custom-event", "hello")
        );
    }

    // uid and device lists together, and neither (everyone).
    assert_eq!(
        ok(get(&server, "/send?uid=1935,alice&device=ax002&data=x").await),
        3
    );
    assert_eq!(ok(post(&server, "/send", json!({"data": "all"})).await), 3);
    for s in [&mut u1935, &mut ax001, &mut ax002] {
        assert_eq!(s.expect_event().await.data, "x");
        assert_eq!(s.expect_event().await.data, "all");
    }
    // Lines stay lines.
    ok(get(&server, "/send?uid=1935&data=a%0Ab").await);
    assert_eq!(u1935.expect_event().await.data, "a\nb");
    server.stop().await;
}

#[tokio::test]
async fn events_with_headers_instead_of_the_query() {
    let server = start().await;
    let t = token(&server, "hdr", None).await;
    let mut s = SseStream::open(
        server
            .http
            .get(server.url("/events"))
            .header("X-SSE-TOKEN", &t)
            .header("X-SSE-DEVICE", "my computer 1"),
    )
    .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.expect_event().await.event, "sys_connected");
    ok(get(&server, "/send?uid=hdr&data=one").await);
    let first = s.expect_event().await;
    ok(get(&server, "/send?uid=hdr&data=two").await);
    assert_eq!(s.expect_event().await.data, "two");
    drop(s);

    // X-SSE-ID resumes after the event it names.
    let mut again = SseStream::open(
        server
            .http
            .get(server.url("/events"))
            .header("X-SSE-Token", &t)
            .header("X-SSE-Device", "my computer 1")
            .header("X-SSE-ID", &first.id),
    )
    .await;
    assert_eq!(again.expect_event().await.event, "sys_connected");
    assert_eq!(again.expect_event().await.data, "two");

    // Without token or device: 401.
    let resp = server
        .http
        .get(server.url("/events?device=d"))
        .send()
        .await
        .expect("events");
    assert_eq!(
        refused(401, answer(resp).await),
        "token and device is required"
    );
    server.stop().await;
}

#[tokio::test]
async fn info_for_the_cluster_an_instance_a_user_and_a_device() {
    let server = start().await;
    let _phone = connect(&server, "sssxyd", "xuyd").await;
    let _laptop = connect(&server, "sssxyd", "laptop").await;
    let _other = connect(&server, "other", "xuyd").await;
    let addr = server.base["http://".len()..].to_string();

    // GET /info: the cluster (one node until cluster mode).
    let c = ok(get(&server, "/info").await);
    assert_eq!(
        (
            c["instance_count"].clone(),
            c["user_count"].clone(),
            c["device_count"].clone()
        ),
        (json!(1), json!(2), json!(3)),
        "{c}"
    );
    let node = &c["instances"][0];
    assert_eq!(node["online"], true);
    assert_eq!(node["address"], addr.as_str());
    assert_eq!(node["device_count"], 3);
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert_time(&node["start_time"]);
    // ...one instance by its address (or the README's `ip`).
    let i = ok(get(&server, &format!("/info?address={addr}")).await);
    assert_eq!(
        (i["online"].clone(), i["device_count"].clone()),
        (json!(true), json!(3))
    );
    assert_eq!(ok(get(&server, "/info?ip=127.0.0.1").await)["online"], true);
    let gone = ok(get(&server, "/info?address=10.9.9.9:8080").await);
    assert_eq!(gone["online"], false);

    // POST {"uid": "sssxyd"}: the user and each of its devices.
    let u = ok(post(&server, "/info", json!({"uid": "sssxyd"})).await);
    assert_eq!(
        (u["online"].clone(), u["uid"].clone()),
        (json!(true), json!("sssxyd"))
    );
    assert_time(&u["login_time"]);
    assert_time(&u["last_touch_time"]);
    let devices = u["devices"].as_array().expect("devices");
    let mut names: Vec<&str> = devices
        .iter()
        .map(|d| d["device_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["laptop", "xuyd"]);
    for d in devices {
        assert_device(d, "sssxyd", &addr);
    }

    // GET /info?device=…: one device (with uid to pick the user's own).
    let d = ok(get(&server, "/info?device=xuyd&uid=sssxyd").await);
    assert_eq!(d["online"], true);
    assert_device(&d, "sssxyd", &addr);
    assert_ne!(
        d["device_id"],
        ok(get(&server, "/info?device=xuyd&uid=other").await)["device_id"],
        "the same name is another device for another user"
    );
    assert_eq!(ok(get(&server, "/info?device=xuyd").await)["online"], true);
    let none = ok(get(&server, "/info?device=nowhere").await);
    assert_eq!(
        (none["online"].clone(), none["device_name"].clone()),
        (json!(false), json!("nowhere"))
    );
    let nobody = ok(get(&server, "/info?uid=nobody").await);
    assert_eq!(
        nobody,
        json!({"online": false, "uid": "nobody", "login_time": "", "last_touch_time": "", "devices": []})
    );
    server.stop().await;
}

/// `"YYYY-MM-DD HH:MM:SS"`.
fn assert_time(v: &Value) {
    let t = v.as_str().unwrap_or_else(|| panic!("a time: {v}"));
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    assert!(t.len() == 19 && digits == 14 && &t[10..11] == " ", "{t}");
}

/// Every field of go-sse-broker's `Device`.
fn assert_device(d: &Value, uid: &str, instance: &str) {
    assert_eq!(d["uid"], uid, "{d}");
    let id = d["device_id"].as_str().expect("device_id");
    assert_eq!(id.len(), 32, "{d}");
    assert!(d["device_name"].is_string(), "{d}");
    assert_time(&d["login_time"]);
    assert_time(&d["last_touch_time"]);
    assert_eq!(d["instance_address"], instance, "{d}");
    assert!(
        d["device_address"]
            .as_str()
            .expect("device_address")
            .starts_with("127.0.0.1:"),
        "{d}"
    );
    assert!(d["last_frame_id"].is_string(), "{d}");
}

#[tokio::test]
async fn kick_by_uid_and_device_with_sys_kick_offline() {
    let server = start().await;
    let mut a = connect(&server, "1935", "d1").await;
    let mut b = connect(&server, "1936", "d2").await;
    // GET /kick?uid=1935,1936
    assert_eq!(ok(get(&server, "/kick?uid=1935,1936").await), 2);
    for s in [&mut a, &mut b] {
        let seen = until_end(s).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            (seen[0].event.as_str(), seen[0].data.as_str()),
            ("sys_kick_offline", "")
        );
    }

    // POST {"device": "ax001,ax002", "uid": "1937", "data": "bye"}
    let mut ax001 = connect(&server, "u1", "ax001").await;
    let mut ax002 = connect(&server, "u2", "ax002").await;
    let mut u1937 = connect(&server, "1937", "any").await;
    let mut spared = connect(&server, "u3", "ax003").await;
    let result = ok(post(
        &server,
        "/kick",
        json!({"device": "ax001,ax002", "uid": "1937", "data": "bye"}),
    )
    .await);
    assert_eq!(result, 3);
    for s in [&mut ax001, &mut ax002, &mut u1937] {
        let seen = until_end(s).await;
        assert_eq!(
            seen.last().map(|e| (e.event.as_str(), e.data.as_str())),
            Some(("sys_kick_offline", "bye"))
        );
    }
    ok(get(&server, "/send?data=still-here").await);
    assert_eq!(spared.expect_event().await.data, "still-here");
    // Naming nobody is refused.
    assert!(refused(400, get(&server, "/kick").await).contains("cannot be empty"));
    server.stop().await;
}

#[tokio::test]
async fn a_second_connection_of_a_device_pushes_the_first_off() {
    let server = start().await;
    let mut first = connect(&server, "u", "phone").await;
    let mut second = connect(&server, "u", "phone").await;
    let seen = until_end(&mut first).await;
    assert_eq!(
        seen.iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect::<Vec<_>>(),
        [("sys_extrude_offline", "127.0.0.1")],
        "data is the IP of the connection that took over"
    );
    ok(get(&server, "/send?device=phone&data=to-the-new-one").await);
    assert_eq!(second.expect_event().await.data, "to-the-new-one");
    server.stop().await;
}

#[tokio::test]
async fn streams_end_with_sys_instance_close_when_the_server_stops() {
    let server = start().await;
    let mut s = connect(&server, "u", "phone").await;
    let addr = server.base["http://".len()..].to_string();
    server.stop().await;
    let seen = until_end(&mut s).await;
    assert_eq!(
        seen.iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect::<Vec<_>>(),
        [("sys_instance_close", addr.as_str())]
    );
}

#[tokio::test]
async fn other_methods_get_405_in_the_envelope_and_options_is_answered() {
    let server = start().await;
    for path in ["/token", "/send", "/info", "/kick", "/events"] {
        let resp = server
            .http
            .put(server.url(path))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("PUT");
        let allow = resp.headers()["allow"].to_str().expect("allow").to_string();
        assert!(allow.contains("GET"), "{path}: {allow}");
        assert!(refused(405, answer(resp).await).contains("PUT"), "{path}");
        let resp = server
            .http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .send()
            .await
            .expect("OPTIONS");
        // Answered, by the CORS layer or the profile, and never fatal.
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    server.stop().await;
}
