//! A broker failure reaches the API caller as what it is: 503 `unavailable` when Redis cannot be
//! reached (retry with the same id), 500 `internal` when Redis refused the command; the node
//! logs each such answer once, with its cause, and writes nothing.

use crate::common::NodeProcess;
use roomcast_publisher::layout;
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_503_refused_is_500_and_each_is_logged_once_with_its_cause() {
    let mut redis = RedisServer::start();
    let node = NodeProcess::start(&[("ROOMCAST_REDIS_URL", &redis.url())]);
    let gw = &node.gateway;

    // A key of the wrong type under the room's position: the publish script fails in Redis.
    let mut c = redis.connection().unwrap();
    let position = layout::position_key(&layout::channel("", "dialog:wrongtype"));
    let _: () = redis::cmd("SET").arg(&position).arg("not a hash").query(&mut c).unwrap();
    let (status, reply) = gw.api("publish", &json!({"room": "dialog:wrongtype", "event": "e"})).await;
    assert_eq!((status, reply["error"].as_str()), (500, Some("internal")), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("WRONGTYPE"), "the cause is named: {reply}");
    let history = layout::history_key(&layout::channel("", "dialog:wrongtype"));
    let exists: u32 = redis::cmd("EXISTS").arg(&history).query(&mut c).unwrap();
    assert_eq!(exists, 0, "nothing was written");

    redis.kill();
    let (status, reply) = gw.api("publish", &json!({"room": "dialog:down", "event": "e"})).await;
    assert_eq!((status, reply["error"].as_str()), (503, Some("unavailable")), "{reply}");

    let failures = || node.log().into_iter().filter(|l| l.contains("API request failed")).collect::<Vec<_>>();
    eventually("both failures to be logged", async || failures().len() == 2).await;
    let logged = failures();
    assert!(logged[0].contains("status=500") && logged[0].contains("WRONGTYPE"), "{logged:?}");
    assert!(
        logged[1].contains("status=503") && logged[1].contains("broker unavailable: redis unavailable"),
        "{logged:?}"
    );
}
