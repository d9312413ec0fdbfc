//! Black-box tests of the REST API and the SSE stream over real sockets.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn create_publish_subscribe_delete() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    assert_eq!(stream.status, 200);
    let published = server
        .publish_ok(&id, json!({"type": "greet", "message": "hello\nworld"}))
        .await;
    let event = stream.expect_event().await;
    assert_eq!(event.id, published);
    assert_eq!(event.event, "greet");
    assert_eq!(event.data, "hello\nworld");
    server.stop().await;
}
