//! Commands wrapping axum routes: failures answered as 503 / 504 responses.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, routing::get};
use http::{Request, Response, StatusCode};
use tokio::sync::Semaphore as Gate;
use tower::{ServiceBuilder, ServiceExt};
use tower_hystrix::{
    Command, HttpClassifier, HystrixEventType as Ev, Registry, http::ErrorResponseLayer,
};

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn body_text(res: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn rejections_are_503_and_timeouts_504() {
    let gate = Arc::new(Gate::new(0));
    let command = Command::builder("Route")
        .classifier(HttpClassifier)
        .semaphore(1)
        .timeout(Duration::from_millis(200))
        .registry(&Registry::new())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/wait",
            get({
                let gate = gate.clone();
                move || async move {
                    gate.acquire().await.unwrap().forget();
                    "released"
                }
            }),
        )
        .route("/fast", get(|| async { "fast" }))
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(command.clone()),
        );

    let held = tokio::spawn(app.clone().oneshot(get_req("/wait")));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let full = app.clone().oneshot(get_req("/fast")).await.unwrap();
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(body_text(full).await.contains("execution semaphore full"));

    let timed_out = held.await.unwrap().unwrap();
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        body_text(timed_out).await,
        "Route: timed out after 200 ms; no fallback"
    );

    let ok = app.clone().oneshot(get_req("/fast")).await.unwrap();
    assert_eq!(
        (ok.status(), body_text(ok).await.as_str()),
        (StatusCode::OK, "fast")
    );

    command.command().circuit().force_open();
    let open = app.oneshot(get_req("/fast")).await.unwrap();
    assert_eq!(open.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(open.headers()[http::header::RETRY_AFTER], "1");

    let counts = command.command().snapshot().cumulative;
    assert_eq!(counts.get(Ev::SemaphoreRejected), 1);
    assert_eq!(counts.get(Ev::Timeout), 1);
    assert_eq!(counts.get(Ev::Success), 1);
    assert_eq!(counts.get(Ev::ShortCircuited), 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_fall_back() {
    let command = Command::builder("Flaky")
        .classifier(HttpClassifier)
        .fallback(|_: (), _| async {
            Ok::<_, std::io::Error>(Response::new(Body::from("from the fallback")))
        })
        .registry(&Registry::new())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(command.clone()),
        );
    let res = app.clone().oneshot(get_req("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "from the fallback");
    // A 4xx is the caller's fault: passed through, no fallback.
    let res = app.oneshot(get_req("/missing")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let counts = command.command().snapshot().cumulative;
    assert_eq!(
        (
            counts.get(Ev::Failure),
            counts.get(Ev::FallbackSuccess),
            counts.get(Ev::BadRequest)
        ),
        (1, 1, 1)
    );
}
